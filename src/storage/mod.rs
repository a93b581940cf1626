//! The storage seam: one trait, two backends.
//!
//! This module knows no driver. Each backend owns its connections, every SQL
//! string it runs, its row mapping and the translation of its own errors
//! into [`StoreError`]. The rules (transitions, what counts as a no-op) come
//! from [`crate::domain`]; a backend only makes them atomic.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use chrono::{DateTime, Utc};

use crate::domain::event::{Event, EventKind, NewEvent};
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{
    Actor, Amount, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order, OrderPatch,
    OrderRecord, Precondition, Stats, Status,
};

pub mod deadline;
pub mod metered;
pub mod migrations;
pub mod postgres;
pub mod rules;
pub mod sqlite;
mod url;

pub use migrations::SchemaState;
pub use url::DatabaseUrl;

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The schema history this build holds for the backend.
    pub fn history(self) -> &'static [migrations::Migration] {
        match self {
            Backend::Sqlite => migrations::SQLITE,
            Backend::Postgres => migrations::POSTGRES,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Another order already has this `order_id`.
    DuplicateOrderId(String),
    /// The transition rule forbids the change.
    Transition { from: Status, to: Status },
}

/// A store failure, in terms the API can answer with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no such order")]
    NotFound,
    /// The actor may not do this to an order it can see (create one for
    /// another customer, move one to another customer).
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// The same idempotency key is being used by a request still running.
    #[error("idempotency key in use")]
    IdempotencyInProgress,
    /// The idempotency key was first used with a different request.
    #[error("idempotency key reused with another request")]
    IdempotencyMismatch,
    /// `If-Match` did not match; the order as it is now.
    #[error("precondition failed")]
    PreconditionFailed(Box<Order>),
    /// The database cannot be reached or is too busy; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A bound of this process was reached (a full queue of waiting
    /// requests): refused at once, without waiting; retrying shortly may
    /// work. The text names the bound, for the logs.
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// Anything else: a bug or a broken database.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(e))
    }
}

/// The outcome of an update: the order as it now is, and as it was when
/// something changed (`None` for a no-op).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    pub order: Order,
    pub previous: Option<Order>,
}

/// The outcome of a create: the order, and whether it is the replay of an
/// earlier request with the same idempotency key (then the order is as that
/// request created it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub order: Order,
    pub replayed: bool,
}

/// Connection pool figures, for metrics, taken at one instant: `idle` is
/// at most `size`, and the rest of `size` is in use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open now.
    pub size: usize,
    /// Open connections not in use.
    pub idle: usize,
    /// Requests waiting for a connection (not connections).
    pub waiting: usize,
    /// The most connections the pool opens.
    pub max_size: usize,
}

/// What `commandes check` reports.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    pub backend: Backend,
    pub server_version: String,
    pub schema: SchemaState,
    pub order_count: i64,
}

/// What a migration run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Schema version before the run (0: a new database).
    pub from: i64,
    /// Schema version after it: this build's latest, or the database's
    /// own when that is ahead (a run never undoes a later migration).
    pub to: i64,
    /// The oldest schema version whose builds the database accepts after
    /// the run (see [`SchemaState::verdict`]).
    pub compatible_from: i64,
    /// What was done beyond applying the files, one line each (PostgreSQL:
    /// adopting the original service's table).
    pub notes: Vec<String>,
}

/// The use cases the API needs, one method each.
#[async_trait]
pub trait Store: Send + Sync {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies pending migrations; safe to run twice and from two processes.
    async fn migrate(&self) -> Result<MigrationReport, StoreError>;

    /// Creates an order; `Conflict(DuplicateOrderId)` if its `order_id`
    /// exists. With a key, the outcome is stored with it in the same
    /// transaction, and a repeat of the request replays it.
    async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError>;

    /// Deletes idempotency keys that expired before `now`, a batch at a
    /// time; returns how many went.
    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Inserts orders with their own timestamps, all or none (demo data).
    async fn insert_historical(&self, orders: &[HistoricalOrder]) -> Result<u64, StoreError>;

    /// The order `id`, if `actor` may see it (`NotFound` otherwise).
    async fn get(&self, id: i64, actor: &Actor) -> Result<Order, StoreError>;

    async fn get_by_order_id(&self, order_id: &str, actor: &Actor) -> Result<Order, StoreError>;

    /// The orders `filter` admits among those `actor` may see.
    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError>;

    /// Applies `patch` atomically: the current row is read and written in one
    /// transaction, `if_match` is checked against it (`PreconditionFailed`),
    /// and [`Order::apply`] decides what is legal.
    async fn update(
        &self,
        id: i64,
        patch: &OrderPatch,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError>;

    /// Sets the status (a patch of the status alone).
    async fn set_status(
        &self,
        id: i64,
        status: Status,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError> {
        self.update(id, &OrderPatch::status(status), if_match, actor)
            .await
    }

    /// Deletes an order, if `if_match` (checked in the same transaction) allows.
    async fn delete(
        &self,
        id: i64,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<(), StoreError>;

    /// The numbered events above `after`, by ascending sequence, at most
    /// `limit`. A caller that always asks for what follows the last number
    /// it saw gets every committed event exactly once, in order: an event
    /// gets a number only once committed, above every number given before.
    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// A page of order `id`'s history, also once it is deleted (the
    /// deletion is the last event): its events above `after` (a sequence
    /// number), oldest first, at most `limit`, each as [`Event::seen_by`]
    /// lets `actor` read it. The query itself leaves out the events that
    /// are not `actor`'s, so a page is only short at the end. `NotFound`
    /// when `actor` may see neither the order nor any of its events; an
    /// order without events (loaded by an import or as demo data, or older
    /// than the events) has an empty history.
    async fn history(
        &self,
        id: i64,
        after: i64,
        limit: u32,
        actor: &Actor,
    ) -> Result<Vec<Event>, StoreError>;

    /// Deletes up to `batch` numbered events older than `older_than`, and,
    /// with `up_to` (a relay's position), none above it, so nothing
    /// unpublished goes; returns how many went (fewer than `batch`: nothing
    /// is left).
    async fn purge_events(
        &self,
        older_than: DateTime<Utc>,
        up_to: Option<i64>,
        batch: u32,
    ) -> Result<u64, StoreError>;

    /// Numbers the committed events that have no sequence number yet;
    /// returns how many. Backends that number at insert (SQLite) have
    /// nothing to do. Safe to call from every replica at once.
    async fn sequence_events(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// How many stored events have no sequence number yet (for metrics).
    async fn unsequenced_events(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Figures over the orders `actor` may see.
    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError>;

    /// The orders created in `[query.from, query.to)` that `actor` may see
    /// and the query's `status` and `customer_id` admit, counted and summed
    /// per UTC day and status (a `GROUP BY` in the database, over an index
    /// on `created_at`); days without orders are left out.
    async fn daily_figures(
        &self,
        query: &SeriesQuery,
        actor: &Actor,
    ) -> Result<Vec<DayFigures>, StoreError>;

    /// Backend, server version, schema version and order count (counts
    /// every order: for `commandes check`, not for probes).
    async fn info(&self) -> Result<StoreInfo, StoreError>;

    /// The schema version (0: not migrated) and the oldest version of the
    /// builds it accepts, in one small statement over the version table
    /// that costs the same whatever the data: what the readiness probe
    /// asks.
    async fn schema_state(&self) -> Result<SchemaState, StoreError>;

    /// Connection pool figures, where the backend has a pool.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Releases connections; the store answers `Unavailable` afterwards.
    async fn close(&self);

    /// Imports the rows sent on `rows`, all in one transaction: they are
    /// staged as they arrive (memory stays flat), then written with
    /// `options.on_conflict` deciding about `order_id`s and ids already
    /// taken. Nothing is written unless the sender ends with
    /// [`ImportBatch::Commit`] and no row conflicts in a way the mode
    /// refuses; those rows come back in [`ImportOutcome::problems`]
    /// (after [`ImportBatch::Check`], too, and nothing is written).
    async fn import(
        &self,
        rows: tokio::sync::mpsc::Receiver<ImportBatch>,
        options: &ImportOptions,
    ) -> Result<ImportOutcome, StoreError>;

    /// Sends every order `filter` admits on `out`, by ascending id, in
    /// batches, all from one snapshot; returns how many were sent. Stops
    /// early (without an error) when `out` is closed.
    async fn export(
        &self,
        filter: &ExportFilter,
        out: tokio::sync::mpsc::Sender<Vec<Order>>,
    ) -> Result<u64, StoreError>;

    // The broker relay's position and lease (migration 0005). One
    // conditional statement each, no session state: they work through a
    // transaction pooler and from any number of replicas.

    /// Takes the relay `name`'s lease for `ttl` if it is free, expired or
    /// already `holder`'s (then renews it), and returns the stored
    /// position; `None` while another holder has it. A new relay starts
    /// at 0 (everything still stored is published).
    async fn relay_claim(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<i64>, StoreError>;

    /// Moves the position of `name` up to `position` (never down) and
    /// renews the lease for `ttl`, only while `holder` has it; `false`
    /// when it lost the lease (then nothing changed).
    async fn relay_advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
        ttl: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives up `holder`'s lease of `name` (on shutdown), so another
    /// replica takes over without waiting for it to expire.
    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError>;

    /// The stored position of relay `name` (`None`: it never ran).
    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError>;

    /// The highest sequence number given so far (0: none), for the
    /// relay's pending-events figure.
    async fn last_event_sequence(&self) -> Result<i64, StoreError>;
}

/// An event as a backend read it back, checked.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stored_event(
    sequence: i64,
    id: String,
    kind: &str,
    time: DateTime<Utc>,
    order_ref: i64,
    order_id: String,
    customer_id: String,
    data: &str,
    traceparent: Option<String>,
) -> Result<Event, StoreError> {
    let bad = |what: &str| {
        StoreError::backend(std::io::Error::other(format!(
            "stored event {what} is invalid"
        )))
    };
    Ok(Event {
        sequence,
        event: NewEvent {
            id,
            kind: EventKind::parse(kind).ok_or_else(|| bad("type"))?,
            time,
            order_ref,
            order_id,
            customer_id,
            data: serde_json::from_str(data).map_err(|_| bad("data"))?,
            traceparent,
        },
    })
}

/// A history page as `actor` reads it ([`Event::seen_by`]). Both
/// backends answer through here, so no history leaves a store unredacted.
pub(crate) fn history_seen(events: Vec<Event>, actor: &Actor) -> Vec<Event> {
    events
        .into_iter()
        .filter_map(|e| e.seen_by(actor))
        .collect()
}

/// One valid row of an import, and where it came from (for reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// The index of the input file (0 for the first).
    pub file: u32,
    /// The line the row starts on (1-based).
    pub line: u64,
    pub record: OrderRecord,
}

/// What an import's producer sends: rows, then its verdict. A channel that
/// closes without a verdict counts as `Abort`.
#[derive(Debug)]
pub enum ImportBatch {
    Rows(Vec<ImportRow>),
    /// Every row was read: write them (if no conflict forbids it).
    Commit,
    /// Every row was read: look for the conflicts `Commit` would refuse
    /// (in [`OnConflict::Fail`] and [`OnConflict::Update`] modes), report
    /// them, and write nothing (`import --dry-run`). The ids are not
    /// assigned, so no sequence moves.
    Check,
    /// Something was wrong upstream: write nothing.
    Abort,
}

/// What to do with a row whose `order_id` (or `id`) is already taken, in
/// the database or by an earlier row of the same import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Refuse the whole import, listing every such row.
    #[default]
    Fail,
    /// Keep what is there (the first row wins within the import).
    Skip,
    /// Replace the stored order's fields (the last row wins); its `id`
    /// never changes. A row whose `id` belongs to another order is refused.
    Update,
}

/// How to import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub on_conflict: OnConflict,
    /// The most problems reported.
    pub max_problems: usize,
    /// The time given to rows without timestamps (and to updated orders
    /// whose row has no `updated_at`).
    pub now: DateTime<Utc>,
}

/// A row the store refused, or a failure of the whole import (`at` is
/// `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    /// The file index and line of the row.
    pub at: Option<(u32, u64)>,
    pub field: String,
    pub message: String,
    /// The earlier row a repeat refers to (file index and line).
    pub related: Option<(u32, u64)>,
}

impl RowProblem {
    /// Names the earlier row this one repeats.
    pub fn related(mut self, file: i64, line: i64) -> RowProblem {
        self.related = Some((file as u32, line as u64));
        self
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    /// Rows received.
    pub staged: u64,
    pub inserted: u64,
    pub updated: u64,
    /// Whether the transaction was committed.
    pub committed: bool,
    /// Rows refused by `on_conflict` (then nothing was written).
    pub problems: Vec<RowProblem>,
}

impl ImportOutcome {
    /// Rows neither inserted nor updated: skipped conflicts, rows equal to
    /// the stored order, later duplicates within the import.
    pub fn skipped(&self) -> u64 {
        if self.committed {
            self.staged - self.inserted - self.updated
        } else {
            0
        }
    }
}

/// Which orders an export takes: the filters of `GET /commandes` (all
/// bounds inclusive), without paging; the order is always by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    pub status: Option<Status>,
    pub customer_id: Option<String>,
    pub min_amount: Option<Amount>,
    pub max_amount: Option<Amount>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
}

impl From<&ListFilter> for ExportFilter {
    fn from(f: &ListFilter) -> ExportFilter {
        ExportFilter {
            status: f.status,
            customer_id: f.customer_id.clone(),
            min_amount: f.min_amount,
            max_amount: f.max_amount,
            created_from: f.created_from,
            created_to: f.created_to,
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections a PostgreSQL pool holds (and SQLite readers).
    pub pool_size: usize,
    /// Longest wait for a connection, and for connecting.
    pub connect_timeout: Duration,
    /// SQLite: how long a writer waits for a lock held by another process.
    pub busy_timeout: Duration,
    /// SQLite: `FULL` (every commit synced: survives power loss) or
    /// `NORMAL` (faster; a power loss may lose the last commits, a crash of
    /// the process loses nothing).
    pub sqlite_synchronous: SqliteSync,
    /// PostgreSQL: PEM file of the CAs trusted for the server's certificate,
    /// when the URL has no `sslrootcert` (see [`postgres::tls`]).
    pub ca_file: Option<std::path::PathBuf>,
    /// Longest a store operation may run (then it is cancelled:
    /// `Unavailable`); `None`: no limit. Bulk imports, exports and
    /// migrations are not limited. Applied by [`metered::MeteredStore`].
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL: how long [`open`] waits for a database that cannot be
    /// reached yet (refused, starting up, too many connections), retrying
    /// with backoff; zero: one attempt. Other failures (password, TLS) end
    /// the wait at once.
    pub startup_timeout: Duration,
    /// SQLite: most reads waiting for a reader connection (then
    /// `Overloaded`, at once).
    pub sqlite_read_queue: usize,
    /// SQLite: most writes waiting for the writer (then `Overloaded`).
    pub sqlite_write_queue: usize,
    /// PostgreSQL: whether statements are prepared once per connection
    /// and reused (see [`StatementCache`]).
    pub statement_cache: StatementCache,
}

/// SQLite's `synchronous` setting, as offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// PostgreSQL named statements, as offered (`database.statement_cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatementCache {
    /// `on`, unless the URL or the connection says a pooler is in the way.
    #[default]
    Auto,
    /// Each statement prepared once per connection and reused.
    On,
    /// Unnamed statements only (every statement parsed each time): works
    /// through any pooler.
    Off,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            sqlite_synchronous: SqliteSync::Full,
            ca_file: None,
            statement_timeout: Some(Duration::from_secs(5)),
            startup_timeout: Duration::ZERO,
            sqlite_read_queue: 256,
            sqlite_write_queue: 256,
            statement_cache: StatementCache::Auto,
        }
    }
}

/// Opens (but does not migrate) the store the URL names.
pub async fn open(url: &DatabaseUrl, options: &StoreOptions) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match url {
        DatabaseUrl::SqliteFile(path) => {
            Arc::new(sqlite::SqliteStore::open_file(path, options).await?)
        }
        DatabaseUrl::SqliteMemory => Arc::new(sqlite::SqliteStore::open_memory(options).await?),
        DatabaseUrl::Postgres(url) => {
            Arc::new(postgres::PostgresStore::open(url.expose(), options).await?)
        }
    })
}
