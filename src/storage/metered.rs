//! A [`Store`] decorator that records what the store does as metrics:
//! query latency per operation, orders created and status changes; and,
//! when traces are exported, a client span per call.
//!
//! Kept out of the backends so that each backend stays about its SQL, and
//! both report the same figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;
use tracing::Instrument;

use chrono::{DateTime, Utc};

use super::{
    Backend, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome, MigrationReport,
    PoolStatus, SchemaState, Store, StoreError, StoreInfo, Updated,
};
use crate::domain::event::{self, Event, EventKind};
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{
    Actor, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order, OrderPatch, Precondition,
    Stats,
};

/// Latency of store operations, by operation and outcome.
pub const QUERY_SECONDS: &str = "commandes_db_query_duration_seconds";
/// Orders created, by status.
pub const ORDERS_CREATED: &str = "commandes_orders_created_total";
/// Status changes, by the status moved to.
pub const STATUS_CHANGES: &str = "commandes_order_status_changes_total";
/// Events written with the changes they describe, by type.
pub const EVENTS_WRITTEN: &str = "commandes_events_written_total";
/// Events written but not given a sequence number yet (PostgreSQL; more
/// than a few for long means a sequencer cannot run, or a transaction
/// holding an event stays open).
pub const EVENTS_UNSEQUENCED: &str = "commandes_events_unsequenced";

fn events_written(kind: EventKind) {
    metrics::counter!(EVENTS_WRITTEN, "type" => kind.as_str()).increment(1);
}

/// Wraps a store and measures it.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    statement_timeout: Option<Duration>,
    /// Raised after each change that wrote events (see
    /// [`MeteredStore::with_write_signal`]).
    written: Option<Arc<Notify>>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> MeteredStore {
        MeteredStore {
            inner,
            statement_timeout: None,
            written: None,
        }
    }

    /// Raises `signal` once each change that wrote events has committed,
    /// so the event stream looks for them at once instead of at its next
    /// poll. The metrics of written events are counted at the same place.
    pub fn with_write_signal(mut self, signal: Arc<Notify>) -> MeteredStore {
        self.written = Some(signal);
        self
    }

    fn events_written(&self, kind: EventKind) {
        events_written(kind);
        if let Some(signal) = &self.written {
            signal.notify_one();
        }
    }

    /// Puts every request-sized operation under `limit` (see
    /// [`super::deadline`]); migrations and bulk transfers are not limited.
    pub fn with_statement_timeout(mut self, limit: Option<Duration>) -> MeteredStore {
        self.statement_timeout = limit;
        self
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let limit = self
            .statement_timeout
            .filter(|_| !matches!(operation, "migrate" | "import" | "export"));
        let bounded = super::deadline::bounded(limit, f);
        if crate::trace_context::exporting() && !tracing::Span::current().is_none() {
            // A client span per call of a request when traces are
            // exported: the operation's name, never its SQL or parameters.
            // (The background loops' polls would only be noise.)
            let span = tracing::info_span!(
                "db",
                otel.name = operation,
                otel.kind = "client",
                db.system.name = db_system(self.inner.backend()),
                db.operation.name = operation,
            );
            timed(operation, bounded).instrument(span).await
        } else {
            timed(operation, bounded).await
        }
    }
}

/// The OpenTelemetry `db.system.name` of a backend.
fn db_system(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgresql",
    }
}

fn outcome<T>(r: &Result<T, StoreError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(StoreError::NotFound) => "not_found",
        Err(StoreError::Forbidden(_)) => "forbidden",
        Err(StoreError::Conflict(_)) => "conflict",
        Err(StoreError::PreconditionFailed(_)) => "precondition_failed",
        Err(StoreError::IdempotencyInProgress | StoreError::IdempotencyMismatch) => "idempotency",
        Err(StoreError::Unavailable(_)) => "unavailable",
        Err(StoreError::Overloaded(_)) => "overloaded",
        Err(StoreError::Backend(_)) => "error",
    }
}

/// Runs `f`, recording its duration under `operation`.
async fn timed<T>(
    operation: &'static str,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = f.await;
    metrics::histogram!(QUERY_SECONDS, "operation" => operation, "outcome" => outcome(&result))
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for MeteredStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.timed("migrate", self.inner.migrate()).await
    }

    async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        let result = self
            .timed("create", self.inner.create(order, key, actor))
            .await;
        if let Ok(Created {
            order,
            replayed: false,
        }) = &result
        {
            metrics::counter!(ORDERS_CREATED, "status" => order.status.as_str()).increment(1);
            self.events_written(EventKind::Created);
        }
        result
    }

    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.timed("purge_expired_keys", self.inner.purge_expired_keys(now))
            .await
    }

    async fn insert_historical(&self, orders: &[HistoricalOrder]) -> Result<u64, StoreError> {
        self.timed("insert_historical", self.inner.insert_historical(orders))
            .await
    }

    async fn get(&self, id: i64, actor: &Actor) -> Result<Order, StoreError> {
        self.timed("get", self.inner.get(id, actor)).await
    }

    async fn get_by_order_id(&self, order_id: &str, actor: &Actor) -> Result<Order, StoreError> {
        self.timed(
            "get_by_order_id",
            self.inner.get_by_order_id(order_id, actor),
        )
        .await
    }

    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError> {
        self.timed("list", self.inner.list(filter, actor)).await
    }

    async fn update(
        &self,
        id: i64,
        patch: &OrderPatch,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError> {
        let result = self
            .timed("update", self.inner.update(id, patch, if_match, actor))
            .await;
        if let Ok(Updated {
            order,
            previous: Some(before),
        }) = &result
        {
            for kind in event::change_kinds(before, order) {
                self.events_written(kind);
            }
            if before.status != order.status {
                metrics::counter!(STATUS_CHANGES, "from" => before.status.as_str(), "to" => order.status.as_str())
                    .increment(1);
            }
        }
        result
    }

    async fn delete(
        &self,
        id: i64,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let result = self
            .timed("delete", self.inner.delete(id, if_match, actor))
            .await;
        if result.is_ok() {
            self.events_written(EventKind::Deleted);
        }
        result
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.timed("events_after", self.inner.events_after(after, limit))
            .await
    }

    async fn history(
        &self,
        id: i64,
        after: i64,
        limit: u32,
        actor: &Actor,
    ) -> Result<Vec<Event>, StoreError> {
        self.timed("history", self.inner.history(id, after, limit, actor))
            .await
    }

    async fn purge_events(
        &self,
        older_than: DateTime<Utc>,
        up_to: Option<i64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        self.timed(
            "purge_events",
            self.inner.purge_events(older_than, up_to, batch),
        )
        .await
    }

    async fn sequence_events(&self) -> Result<u64, StoreError> {
        // Not timed: it runs every few hundred milliseconds, mostly finding
        // nothing to do, and would drown the figures that matter.
        self.inner.sequence_events().await
    }

    async fn unsequenced_events(&self) -> Result<u64, StoreError> {
        let result = self.inner.unsequenced_events().await;
        if let Ok(n) = &result {
            metrics::gauge!(EVENTS_UNSEQUENCED).set(*n as f64);
        }
        result
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        self.timed("stats", self.inner.stats(actor)).await
    }

    async fn daily_figures(
        &self,
        query: &SeriesQuery,
        actor: &Actor,
    ) -> Result<Vec<DayFigures>, StoreError> {
        self.timed("daily_figures", self.inner.daily_figures(query, actor))
            .await
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.timed("info", self.inner.info()).await
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        self.timed("schema_state", self.inner.schema_state()).await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        self.inner.pool_status()
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    async fn import(
        &self,
        rows: tokio::sync::mpsc::Receiver<ImportBatch>,
        options: &ImportOptions,
    ) -> Result<ImportOutcome, StoreError> {
        self.timed("import", self.inner.import(rows, options)).await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        out: tokio::sync::mpsc::Sender<Vec<Order>>,
    ) -> Result<u64, StoreError> {
        self.timed("export", self.inner.export(filter, out)).await
    }

    // The relay's calls are not timed: it makes them every few hundred
    // milliseconds and has figures of its own (crate::relay).

    async fn relay_claim(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        self.inner.relay_claim(name, holder, ttl).await
    }

    async fn relay_advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        self.inner.relay_advance(name, holder, position, ttl).await
    }

    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.relay_release(name, holder).await
    }

    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.inner.relay_position(name).await
    }

    async fn last_event_sequence(&self) -> Result<i64, StoreError> {
        self.inner.last_event_sequence().await
    }
}
