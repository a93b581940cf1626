//! A [`Store`] decorator that records what the store does as metrics:
//! query latency per operation, orders created and status changes.
//!
//! Kept out of the backends so that each backend stays about its SQL, and
//! both report the same figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use super::{
    Backend, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome, MigrationReport,
    PoolStatus, Store, StoreError, StoreInfo, Updated,
};
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

/// Wraps a store and measures it.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    statement_timeout: Option<Duration>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> MeteredStore {
        MeteredStore {
            inner,
            statement_timeout: None,
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
        timed(operation, super::deadline::bounded(limit, f)).await
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
        self.timed("delete", self.inner.delete(id, if_match, actor))
            .await
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        self.timed("stats", self.inner.stats(actor)).await
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.timed("info", self.inner.info()).await
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
}
