//! The SQLite backend: a single file (or memory), for demos and small sites.
//!
//! rusqlite is synchronous, so no call runs on an async worker: every one
//! runs on a thread of this store, reached through a bounded queue. The
//! file is in WAL mode, so readers never wait for the writer:
//!
//! - One writer thread owns the only writing connection. It commits the
//!   writes waiting at that moment together (group commit: one transaction
//!   and one `fsync` for up to 128 of them), each under its own savepoint so
//!   that one failure undoes only its own changes, and answers each only
//!   after the commit (`writer.rs`). Migrations and imports run alone on it,
//!   outside any batch.
//! - Up to four reader threads each own a read-only connection and share
//!   one queue of reads (`reader.rs`). A memory database has one connection,
//!   so its reads go to the writer.
//! - Both queues are bounded (`database.sqlite_read_queue`,
//!   `sqlite_write_queue`): when one is full a request is refused at once
//!   ([`StoreError::Overloaded`], a 503) instead of waiting behind a flood,
//!   and a job whose caller has gone (its request ended or its deadline
//!   passed) is dropped unrun. A read runs under the operation's deadline
//!   ([`super::deadline`]): a progress handler interrupts a statement past
//!   it, so the connection is free again at once (`interrupt.rs`).
//!
//! `synchronous=FULL` (the default of `database.sqlite_synchronous`) makes
//! every acknowledged commit survive a power loss.
//! Amounts are integer cents and times RFC 3339 text with six digits, which
//! sorts as time.
//!
//! This file holds the store and its `impl Store`; the SQL lives beside it
//! by table: `queries.rs` (orders), `events.rs`, `keys.rs` (idempotency),
//! `lease.rs` (the relay), `migrate.rs`, `bulk.rs` (import and export);
//! `connection.rs` opens the connections, `errors.rs` maps SQLite's errors
//! and `queue.rs` refuses a job when a queue is full.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::migrations;
use super::rules::{self, check_assignable, UpdatePlan};
use super::{
    Backend, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome, MigrationReport,
    PoolStatus, SchemaState, Store, StoreError, StoreInfo, StoreOptions, Updated,
};
use crate::domain::event::{self, Event};
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{
    format_time, now, Actor, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order,
    OrderPatch, Precondition, Stats,
};

mod bulk;
mod connection;
mod errors;
mod events;
mod interrupt;
mod keys;
mod lease;
mod migrate;
mod queries;
mod queue;
mod reader;
mod writer;

use connection::{open_memory, open_reader, open_writer};
use errors::{map_error, map_write_error};
use events::{events_after, insert_events, last_event_sequence, purge_events};
use interrupt::JobDeadline;
use keys::{purge_expired_keys, store_key, stored_key, InFlight, InFlightKeys};
use migrate::{apply_migrations, schema_state};
use queries::{insert, list_sql, row_to_order, select_by_id, select_by_order_id, COLUMNS};
use reader::Readers;
use writer::Writer;

/// A SQLite database file (or a private in-memory database).
pub struct SqliteStore {
    /// To the writer thread, which owns the only writing connection.
    writer: Writer,
    /// To the reader threads, each owning a read-only connection; `None`
    /// for a memory database, whose reads go to the writer.
    readers: Option<Readers>,
    closed: AtomicBool,
    in_flight: InFlightKeys,
}

impl SqliteStore {
    /// Opens (creating if needed) the file at `path`, with one writer thread
    /// and up to four reader threads (`pool_size`; more do not help a small machine).
    pub async fn open_file(path: &Path, options: &StoreOptions) -> anyhow::Result<SqliteStore> {
        let shown = path.display().to_string();
        let path = path.to_path_buf();
        let opts = options.clone();
        let (writer, readers) = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
            let writer = open_writer(&path, &opts)?;
            let readers = (0..opts.pool_size.clamp(1, 4))
                .map(|_| open_reader(&path, opts.busy_timeout))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((writer, readers))
        })
        .await?
        .map_err(|e| anyhow::anyhow!("cannot open SQLite database {shown}: {e}"))?;
        let writer = Writer::spawn(writer, options.sqlite_write_queue)?;
        let readers = Readers::spawn(readers, options.sqlite_read_queue)?;
        Ok(SqliteStore {
            writer,
            readers: Some(readers),
            closed: AtomicBool::new(false),
            in_flight: Arc::default(),
        })
    }

    /// A private in-memory database: one connection serves everything,
    /// since another connection would see another database.
    pub async fn open_memory(options: &StoreOptions) -> anyhow::Result<SqliteStore> {
        let conn = open_memory()?;
        Ok(SqliteStore {
            writer: Writer::spawn(conn, options.sqlite_write_queue)?,
            readers: None,
            closed: AtomicBool::new(false),
            in_flight: Arc::default(),
        })
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        Ok(())
    }

    /// Runs `f` on the writer thread inside a group-committed transaction;
    /// the answer comes once that transaction has committed (or with the
    /// reason it could not).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        self.writer.write(f).await
    }

    /// Runs `f` alone on the writer thread, outside any batch.
    async fn write_exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        self.writer.write_exclusive(f).await
    }

    /// Runs `f` on a reader thread (or on the writer, for a memory
    /// database), under the current operation's deadline if it has one.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let until = super::deadline::current().map(|scope| scope.deadline());
        let Some(readers) = &self.readers else {
            return self
                .write(move |conn| {
                    let _deadline = JobDeadline::set(until);
                    f(conn)
                })
                .await;
        };
        readers.read(until, f).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        self.write_exclusive(|conn| apply_migrations(conn, migrations::SQLITE).map_err(map_error))
            .await
    }

    async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        check_assignable(actor, &order.customer_id)?;
        let order = order.clone();
        let actor = actor.clone();
        let Some(key) = key.cloned() else {
            return self
                .write(move |conn| {
                    let t = now();
                    let order = insert(conn, &order, &t, &t)?;
                    insert_events(conn, &[event::created(&order, &actor)])?;
                    Ok(Created {
                        order,
                        replayed: false,
                    })
                })
                .await;
        };
        // The writer runs one request at a time, so a second request with
        // the same key would wait and replay; the contract wants a 409 while
        // the first is still running, which only this process can know.
        let _claim = InFlight::claim(&self.in_flight, &key)?;
        self.write(move |conn| {
            let t = now();
            // Already inside the batch's transaction, under this job's savepoint.
            if let Some((fingerprint, earlier)) = stored_key(conn, &key, &t)? {
                return if fingerprint == key.fingerprint {
                    Ok(Created {
                        order: earlier,
                        replayed: true,
                    })
                } else {
                    Err(StoreError::IdempotencyMismatch)
                };
            }
            let created = insert(conn, &order, &t, &t)?;
            insert_events(conn, &[event::created(&created, &actor)])?;
            let expires = t + TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1));
            store_key(conn, &key, &created, &expires)?;
            Ok(Created {
                order: created,
                replayed: false,
            })
        })
        .await
    }

    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(move |conn| purge_expired_keys(conn, &now)).await
    }

    async fn insert_historical(&self, orders: &[HistoricalOrder]) -> Result<u64, StoreError> {
        let orders = orders.to_vec();
        self.write(move |conn| {
            // Already inside the batch's transaction, under this job's savepoint.
            for o in &orders {
                insert(conn, &o.order, &o.created_at, &o.updated_at)?;
            }
            Ok(orders.len() as u64)
        })
        .await
    }

    async fn get(&self, id: i64, actor: &Actor) -> Result<Order, StoreError> {
        let owner = actor.owner.clone();
        self.read(move |conn| select_by_id(conn, id, owner.as_deref()))
            .await
    }

    async fn get_by_order_id(&self, order_id: &str, actor: &Actor) -> Result<Order, StoreError> {
        let order_id = order_id.to_string();
        let owner = actor.owner.clone();
        self.read(move |conn| select_by_order_id(conn, &order_id, owner.as_deref()))
            .await
    }

    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError> {
        let (sql, args) = list_sql(filter, actor.owner.as_deref());
        self.read(move |conn| queries::list(conn, &sql, args)).await
    }

    async fn update(
        &self,
        id: i64,
        patch: &OrderPatch,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError> {
        let patch = patch.clone();
        let if_match = if_match.cloned();
        let actor = actor.clone();
        self.write(move |conn| {
            // Already inside the batch's transaction, under this job's
            // savepoint: the owner check, the precondition and the change
            // see the same row.
            let current = select_by_id(conn, id, actor.owner.as_deref())?;
            let write = match rules::plan_update(current, &patch, if_match.as_ref(), &actor, now())?
            {
                UpdatePlan::Write(write) => write,
                UpdatePlan::Unchanged(order) => return Ok(Updated::unchanged(order)),
            };
            let next = &write.next;
            conn.execute(
                "update commandes
                 set order_id = ?2, customer_id = ?3, status = ?4, total_cents = ?5, updated_at = ?6
                 where id = ?1",
                params![
                    id,
                    next.order_id,
                    next.customer_id,
                    next.status.as_str(),
                    next.total_amount.cents(),
                    format_time(&next.updated_at),
                ],
            )
            .map_err(|e| map_write_error(e, &next.order_id))?;
            insert_events(conn, &write.events)?;
            Ok(write.done())
        })
        .await
    }

    async fn delete(
        &self,
        id: i64,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let if_match = if_match.cloned();
        let actor = actor.clone();
        self.write(move |conn| {
            // Already inside the batch's transaction, under this job's savepoint.
            if if_match.is_some() {
                rules::check_precondition(
                    if_match.as_ref(),
                    &select_by_id(conn, id, actor.owner.as_deref())?,
                )?;
            }
            let deleted = conn
                .prepare_cached(&format!(
                    "delete from commandes where id = ?1 and (?2 is null or customer_id = ?2) returning {COLUMNS}"
                ))
                .and_then(|mut s| s.query_row(params![id, actor.owner], row_to_order).optional())
                .map_err(map_error)?
                .ok_or(StoreError::NotFound)?;
            insert_events(conn, &[event::deleted(&deleted, &actor, now())])?;
            Ok(())
        })
        .await
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.read(move |conn| events_after(conn, after, limit))
            .await
    }

    async fn history(
        &self,
        id: i64,
        after: i64,
        limit: u32,
        actor: &Actor,
    ) -> Result<Vec<Event>, StoreError> {
        let actor = actor.clone();
        self.read(move |conn| events::history(conn, id, after, limit, &actor))
            .await
    }

    async fn purge_events(
        &self,
        older_than: DateTime<Utc>,
        up_to: Option<i64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        // A batched write like any other, short enough not to hold up the
        // requests committed with it.
        self.write(move |conn| purge_events(conn, &older_than, up_to, batch))
            .await
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        let owner = actor.owner.clone();
        self.read(move |conn| queries::stats(conn, owner.as_deref()))
            .await
    }

    async fn daily_figures(
        &self,
        query: &SeriesQuery,
        actor: &Actor,
    ) -> Result<Vec<DayFigures>, StoreError> {
        let (query, owner) = (query.clone(), actor.owner.clone());
        self.read(move |conn| queries::daily_figures(conn, &query, owner.as_deref()))
            .await
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.read(|conn| {
            let state = schema_state(conn).map_err(map_error)?;
            let count = if state.version > 0 {
                conn.query_row("select count(*) from commandes", [], |r| r.get(0))
                    .map_err(map_error)?
            } else {
                0
            };
            Ok(StoreInfo {
                backend: Backend::Sqlite,
                server_version: format!("SQLite {}", rusqlite::version()),
                schema: state,
                order_count: count,
            })
        })
        .await
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        self.read(|conn| schema_state(conn).map_err(map_error))
            .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        // One writer connection plus the readers, all open for the store's
        // life; "waiting" counts the jobs queued for them.
        let (readers, busy, queued) = match &self.readers {
            Some(r) => (r.count(), r.busy().min(r.count()), r.queued()),
            None => (0, 0, 0),
        };
        let writer_busy = usize::from(self.writer.busy());
        Some(PoolStatus {
            size: 1 + readers,
            idle: 1 + readers - busy - writer_busy,
            waiting: self.writer.queued() + queued,
            max_size: 1 + readers,
        })
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Jobs already queued run first; then the threads end and their
        // connections close. A full queue makes these sends wait for room,
        // so they wait on a blocking thread (once the threads have ended,
        // a send fails at once).
        let (writer, readers) = (self.writer.clone(), self.readers.clone());
        let _ = tokio::task::spawn_blocking(move || {
            writer.stop();
            if let Some(readers) = readers {
                readers.stop();
            }
        })
        .await;
    }

    async fn import(
        &self,
        mut rows: tokio::sync::mpsc::Receiver<ImportBatch>,
        options: &ImportOptions,
    ) -> Result<ImportOutcome, StoreError> {
        let options = options.clone();
        // The import is its own transaction, so it runs alone on the writer
        // thread rather than in a group-committed batch.
        self.write_exclusive(move |conn| bulk::import(conn, &mut rows, &options))
            .await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        out: tokio::sync::mpsc::Sender<Vec<Order>>,
    ) -> Result<u64, StoreError> {
        let filter = filter.clone();
        self.read(move |conn| bulk::export(conn, &filter, &out))
            .await
    }

    async fn relay_claim(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let now = unix_millis();
        let until = now + ttl.as_millis() as i64;
        self.write(move |conn| lease::claim(conn, &name, &holder, until, now))
            .await
    }

    async fn relay_advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let until = unix_millis() + ttl.as_millis() as i64;
        self.write(move |conn| lease::advance(conn, &name, &holder, position, until))
            .await
    }

    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| lease::release(conn, &name, &holder))
            .await
    }

    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| lease::position(conn, &name)).await
    }

    async fn last_event_sequence(&self) -> Result<i64, StoreError> {
        self.read(last_event_sequence).await
    }
}

/// Now, in milliseconds since the Unix epoch (the relay lease's clock).
fn unix_millis() -> i64 {
    Utc::now().timestamp_millis()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Status};

    /// "At once", generously.
    const SOON: std::time::Duration = std::time::Duration::from_secs(2);

    /// A store on a new file with one reader and small queues.
    async fn small_store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        let options = StoreOptions {
            pool_size: 1,
            sqlite_read_queue: 2,
            sqlite_write_queue: 1,
            ..StoreOptions::default()
        };
        let store = SqliteStore::open_file(&dir.path().join("q.db"), &options)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    async fn until(mut done: impl FnMut() -> bool) {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_read_queue_refuses_at_once_and_a_gone_caller_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir).await;
        // The only reader is held until `release`.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holding = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .read(move |_| {
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            }
        });
        until(|| store.readers.as_ref().unwrap().busy() == 1).await;
        // Two reads fill the queue; the caller of the first goes away.
        let ran = Arc::new(AtomicBool::new(false));
        let gone = tokio::spawn({
            let (store, ran) = (store.clone(), ran.clone());
            async move {
                store
                    .read(move |_| {
                        ran.store(true, Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            }
        });
        let queued = tokio::spawn({
            let store = store.clone();
            async move { store.read(|_| Ok(7)).await }
        });
        until(|| store.readers.as_ref().unwrap().queued() == 2).await;
        let refused = tokio::time::timeout(SOON, store.read(|_| Ok(()))).await;
        assert!(
            matches!(refused, Ok(Err(StoreError::Overloaded(_)))),
            "not refused at once: {refused:?}"
        );
        gone.abort();
        let _ = gone.await;
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 7);
        assert!(!ran.load(Ordering::SeqCst), "the gone caller's read ran");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_write_queue_refuses_at_once_and_a_gone_caller_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(&dir).await;
        let (release, holding) = writer::hold(&store.writer).await;
        let order = NewOrder {
            order_id: "GONE".into(),
            customer_id: "C".into(),
            status: Status::Pending,
            total_amount: Amount::from_cents(100).unwrap(),
        };
        let gone = tokio::spawn({
            let (store, order) = (store.clone(), order.clone());
            async move { store.create(&order, None, &Actor::system()).await }
        });
        until(|| store.writer.queued() == 1).await;
        let refused =
            tokio::time::timeout(SOON, store.create(&order, None, &Actor::system())).await;
        assert!(
            matches!(refused, Ok(Err(StoreError::Overloaded(_)))),
            "not refused at once: {refused:?}"
        );
        gone.abort();
        let _ = gone.await;
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        // The holding job answers before the writer thread takes the next
        // job: until it does, the queue (room for one) is still full.
        until(|| store.writer.queued() == 0).await;
        // A write queued after it has run: so has the gone caller's job.
        store.write(|_| Ok(())).await.unwrap();
        assert!(matches!(
            store.get_by_order_id("GONE", &Actor::system()).await,
            Err(StoreError::NotFound)
        ));
    }
}
