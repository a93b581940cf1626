//! The SQLite backend: a single file (or memory), for demos and small sites.
//!
//! rusqlite is synchronous, so every call runs on threads of this store,
//! never on an async worker. The file is in WAL mode: one writer thread and
//! connection, fed by a queue, and a few reader threads with read-only
//! connections that never wait for it. `synchronous=FULL` makes every
//! acknowledged commit survive a power loss. Amounts are integer cents and
//! times RFC 3339 text with six digits, which sorts as time.
//!
//! Both queues are bounded (`database.sqlite_read_queue`,
//! `sqlite_write_queue`): when one is full a request is refused at once
//! ([`StoreError::Overloaded`], a 503) instead of waiting behind a flood,
//! and a job whose caller has gone (its request ended or its deadline
//! passed) is dropped unrun. A read runs under the operation's deadline
//! ([`super::deadline`]): a progress handler interrupts a statement past
//! it, so the connection is free again at once.

use std::cell::Cell;
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::migrations::{self, Migration};
use super::rules::{self, check_assignable, UpdatePlan};
use super::{
    Backend, Conflict, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome,
    MigrationReport, PoolStatus, Store, StoreError, StoreInfo, StoreOptions, Updated,
};

mod bulk;
use crate::domain::event::{self, Event, NewEvent};
use crate::domain::{
    format_time, now, Actor, Amount, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order,
    OrderPatch, Precondition, SortKey, Stats, Status,
};

const COLUMNS: &str = "id, order_id, customer_id, status, total_cents, created_at, updated_at";

/// A SQLite database file (or a private in-memory database).
pub struct SqliteStore {
    /// To the writer thread, which owns the only writing connection.
    writes: Sender<WriteJob>,
    /// To the reader threads, each owning a read-only connection; `None`
    /// for a memory database, whose reads go to the writer.
    reads: Option<Sender<ReadJob>>,
    readers: usize,
    busy_readers: Arc<AtomicUsize>,
    closed: AtomicBool,
    in_flight: Arc<Mutex<HashSet<(String, String)>>>,
}

/// Page cache per connection, in KiB. Small on purpose: the operating
/// system caches the file for every connection at once, so a large private
/// cache per connection mostly adds resident memory.
const CACHE_KIB: u32 = 512;

/// Most writes committed together.
const MAX_BATCH: usize = 128;

/// Work for the writer thread.
enum WriteJob {
    /// Runs inside the current batch's transaction, under its own
    /// savepoint, and is answered once that transaction has committed.
    Batched(Box<dyn FnOnce(&Connection) -> Delivery + Send>),
    /// Runs alone with the connection (migrations manage their own
    /// transaction).
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
    Exit,
}

/// What a batched job leaves behind: whether its changes are kept, and how
/// to answer it once the commit's outcome is known.
struct Delivery {
    keep: bool,
    answer: Answer,
}

/// Answers a job with the commit's failure, if it failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

enum ReadJob {
    Run(Box<dyn FnOnce(&Connection) + Send>),
    Exit,
}

thread_local! {
    /// The deadline of the job running on this thread's connection, if it
    /// has one: the connection's progress handler interrupts a statement
    /// past it.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Virtual machine steps between two looks at the clock: a point read takes
/// fewer and never looks; a scan looks every few tens of microseconds.
const STEPS_BETWEEN_LOOKS: std::os::raw::c_int = 1000;

/// Makes `conn` interrupt a statement once the deadline of the job running
/// it has passed (`SQLITE_INTERRUPT`: the statement ends, the connection
/// stays usable, and the caller gets [`StoreError::Unavailable`]).
fn interrupt_past_deadline(conn: &Connection) {
    conn.progress_handler(
        STEPS_BETWEEN_LOOKS,
        Some(|| DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() >= t))),
    );
}

/// The deadline of the job running on this thread, until dropped.
struct JobDeadline;

impl JobDeadline {
    fn set(until: Option<Instant>) -> JobDeadline {
        DEADLINE.with(|d| d.set(until));
        JobDeadline
    }
}

impl Drop for JobDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}

/// Queues `job`, or refuses at once when the queue is full.
fn enqueue<J>(queue: &Sender<J>, job: J, full: &'static str) -> Result<(), StoreError> {
    queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StoreError::Overloaded(full),
        TrySendError::Disconnected(_) => closed(),
    })
}

/// Opens the writing connection with the settings every write relies on.
fn open_writer(path: &Path, options: &StoreOptions) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(options.busy_timeout)?;
    // WAL lets readers work while a writer commits; FULL syncs the WAL on
    // every commit, so an acknowledged order survives a power loss.
    conn.query_row("pragma journal_mode = wal", [], |_| Ok(()))?;
    let sync = match options.sqlite_synchronous {
        super::SqliteSync::Full => "full",
        super::SqliteSync::Normal => "normal",
    };
    conn.execute_batch(&format!(
        "pragma synchronous = {sync}; pragma foreign_keys = on; pragma cache_size = -{CACHE_KIB};"
    ))?;
    // Only reads set a deadline here (a memory database's); writes are
    // point changes or small batches, never interrupted (an interrupted
    // change would roll back every job of its group commit).
    interrupt_past_deadline(&conn);
    Ok(conn)
}

/// The writer thread: takes the jobs waiting at that moment (up to
/// [`MAX_BATCH`]) and commits them in one transaction, so one `fsync` serves
/// many requests (group commit). Each job has its own savepoint, so one that
/// fails leaves the others' changes intact; every job is answered only after
/// the commit.
fn writer_loop(mut conn: Connection, jobs: Receiver<WriteJob>) {
    let mut next: Option<WriteJob> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            WriteJob::Exit => return,
            WriteJob::Exclusive(f) => f(&mut conn),
            WriteJob::Batched(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(WriteJob::Batched(job)) => batch.push(job),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_batch(&conn, batch);
            }
        }
    }
}

type BatchedJob = Box<dyn FnOnce(&Connection) -> Delivery + Send>;

fn run_batch(conn: &Connection, batch: Vec<BatchedJob>) {
    if let Err(e) = conn.execute_batch("begin immediate") {
        // The jobs are dropped unrun: each request then learns that its
        // write could not be started (503), and nothing was written.
        tracing::warn!(reason = %describe(&e), "cannot start a SQLite write transaction");
        drop(batch);
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = conn.execute_batch("savepoint job");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
        let keep = matches!(&outcome, Ok(d) if d.keep) && savepoint.is_ok();
        let _ = if keep {
            conn.execute_batch("release job")
        } else {
            conn.execute_batch("rollback to job; release job")
        };
        match outcome {
            Ok(delivery) => answers.push(delivery.answer),
            Err(_) => tracing::error!("a SQLite write job panicked; its changes were rolled back"),
        }
    }
    let failure = conn.execute_batch("commit").err().map(|e| {
        let _ = conn.execute_batch("rollback");
        describe(&e)
    });
    for answer in answers {
        answer(failure.as_deref());
    }
}

fn describe(e: &rusqlite::Error) -> String {
    match map_error_ref(e) {
        Some(reason) => reason,
        None => e.to_string(),
    }
}

/// A reader thread: one read-only connection, jobs from a shared queue.
fn reader_loop(conn: Connection, jobs: Receiver<ReadJob>, busy: Arc<AtomicUsize>) {
    while let Ok(ReadJob::Run(job)) = jobs.recv() {
        busy.fetch_add(1, Ordering::Relaxed);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
        busy.fetch_sub(1, Ordering::Relaxed);
    }
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
        let (writes, write_jobs) = crossbeam_channel::bounded(options.sqlite_write_queue.max(1));
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(writer, write_jobs))?;
        let (reads, read_jobs) = crossbeam_channel::bounded(options.sqlite_read_queue.max(1));
        let busy_readers = Arc::new(AtomicUsize::new(0));
        let count = readers.len();
        for (i, conn) in readers.into_iter().enumerate() {
            let (jobs, busy) = (read_jobs.clone(), busy_readers.clone());
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || reader_loop(conn, jobs, busy))?;
        }
        Ok(SqliteStore {
            writes,
            reads: Some(reads),
            readers: count,
            busy_readers,
            closed: AtomicBool::new(false),
            in_flight: Arc::default(),
        })
    }

    /// A private in-memory database: one connection serves everything,
    /// since another connection would see another database.
    pub async fn open_memory(options: &StoreOptions) -> anyhow::Result<SqliteStore> {
        let conn = Connection::open_in_memory()?;
        interrupt_past_deadline(&conn);
        let (writes, write_jobs) = crossbeam_channel::bounded(options.sqlite_write_queue.max(1));
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, write_jobs))?;
        Ok(SqliteStore {
            writes,
            reads: None,
            readers: 0,
            busy_readers: Arc::default(),
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
        let (tx, rx) = oneshot::channel();
        let job = WriteJob::Batched(Box::new(move |conn| {
            if tx.is_closed() {
                // The caller has gone (its request ended, or its deadline
                // passed and it was answered 503): nobody is told of this
                // write, so it is not made.
                return Delivery {
                    keep: false,
                    answer: Box::new(|_| {}),
                };
            }
            let result = f(conn);
            Delivery {
                keep: result.is_ok(),
                answer: Box::new(move |failure| {
                    let _ = tx.send(match failure {
                        Some(reason) => {
                            result.and(Err(StoreError::Unavailable(reason.to_string())))
                        }
                        None => result,
                    });
                }),
            }
        }));
        enqueue(&self.writes, job, "the SQLite write queue is full")?;
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the write could not be started".into(),
            ))
        })
    }

    /// Runs `f` alone on the writer thread, outside any batch.
    async fn write_exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.check_open()?;
        let (tx, rx) = oneshot::channel();
        let job = WriteJob::Exclusive(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        enqueue(&self.writes, job, "the SQLite write queue is full")?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the write failed".into())))
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
        let Some(reads) = &self.reads else {
            return self
                .write(move |conn| {
                    let _deadline = JobDeadline::set(until);
                    f(conn)
                })
                .await;
        };
        let (tx, rx) = oneshot::channel();
        let job = ReadJob::Run(Box::new(move |conn| {
            if tx.is_closed() {
                // The caller has gone: its request ended, or its deadline
                // passed and it was answered. Skipped unrun.
                return;
            }
            let _deadline = JobDeadline::set(until);
            let _ = tx.send(f(conn));
        }));
        enqueue(reads, job, "the SQLite read queue is full")?;
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::backend(std::io::Error::other(
                "a read job failed",
            )))
        })
    }
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

fn open_reader(path: &Path, busy: std::time::Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(busy)?;
    conn.execute_batch(&format!("pragma cache_size = -{CACHE_KIB};"))?;
    interrupt_past_deadline(&conn);
    Ok(conn)
}

/// Why a statement was interrupted: its operation's deadline passed.
const PAST_DEADLINE: &str = "the statement ran past the statement timeout; interrupted";

/// The outage reason of an error that is one, for logs and answers.
fn map_error_ref(e: &rusqlite::Error) -> Option<String> {
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => Some(PAST_DEADLINE.into()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Some("the SQLite database is locked by another writer".into())
        }
        Some(ErrorCode::CannotOpen | ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => {
            Some(format!("SQLite I/O failure: {e}"))
        }
        _ => None,
    }
}

/// Translates SQLite's errors: a lock held too long is an outage, not a bug,
/// and never shows its raw message to a client.
fn map_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => StoreError::Unavailable(PAST_DEADLINE.into()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable("the SQLite database is locked by another writer".into())
        }
        Some(ErrorCode::CannotOpen | ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => {
            StoreError::Unavailable(format!("SQLite I/O failure: {e}"))
        }
        _ => StoreError::backend(e),
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

fn row_to_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    let status: String = row.get(3)?;
    let cents: i64 = row.get(4)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("stored {what} is invalid").into(),
        )
    };
    Ok(Order {
        id: row.get(0)?,
        order_id: row.get(1)?,
        customer_id: row.get(2)?,
        status: status.parse::<Status>().map_err(|_| bad("status"))?,
        total_amount: Amount::from_cents(cents).ok_or_else(|| bad("amount"))?,
        created_at: parse_time(&row.get::<_, String>(5)?)?,
        updated_at: parse_time(&row.get::<_, String>(6)?)?,
    })
}

/// The order `id`, if it exists and `owner` (when set) is its customer: an
/// order of another customer is not found, in the same statement.
fn select_by_id(conn: &Connection, id: i64, owner: Option<&str>) -> Result<Order, StoreError> {
    conn.prepare_cached(&format!(
        "select {COLUMNS} from commandes where id = ?1 and (?2 is null or customer_id = ?2)"
    ))
    .and_then(|mut s| s.query_row(params![id, owner], row_to_order).optional())
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)
}

fn insert(
    conn: &Connection,
    order: &NewOrder,
    created_at: &DateTime<Utc>,
    updated_at: &DateTime<Utc>,
) -> Result<Order, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "insert into commandes (order_id, customer_id, status, total_cents, created_at, updated_at)
             values (?1, ?2, ?3, ?4, ?5, ?6)
             on conflict (order_id) do nothing
             returning {COLUMNS}"
        ))
        .map_err(map_error)?;
    stmt.query_row(
        params![
            order.order_id,
            order.customer_id,
            order.status.as_str(),
            order.total_amount.cents(),
            format_time(created_at),
            format_time(updated_at),
        ],
        row_to_order,
    )
    .optional()
    .map_err(map_error)?
    .ok_or_else(|| StoreError::Conflict(Conflict::DuplicateOrderId(order.order_id.clone())))
}

/// Stores the events of the change being written, in the same transaction.
/// The sequence is given here: one writer commits in the order it writes
/// (see `0004_events.sql`). In a group commit, a job rolled back to its
/// savepoint takes its events and its numbers with it (`sqlite_sequence`
/// is rolled back too), the next job reuses those numbers, and the whole
/// batch becomes visible at once: readers still see numbers only grow.
fn insert_events(conn: &Connection, events: &[NewEvent]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(map_error)?;
    for e in events {
        stmt.execute(params![
            e.id,
            e.kind.as_str(),
            format_time(&e.time),
            e.order_ref,
            e.order_id,
            e.customer_id,
            e.data.to_string(),
        ])
        .map_err(map_error)?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str =
    "sequence, event_id, type, time, order_ref, order_id, customer_id, data";

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Event, StoreError>> {
    let time = parse_time(&row.get::<_, String>(3)?)?;
    let data: String = row.get(7)?;
    Ok(super::stored_event(
        row.get(0)?,
        row.get(1)?,
        &row.get::<_, String>(2)?,
        time,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        &data,
    ))
}

fn query_events(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Event>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let rows = stmt.query_map(args, row_to_event).map_err(map_error)?;
    let mut events = Vec::new();
    for row in rows {
        events.push(row.map_err(map_error)??);
    }
    Ok(events)
}

/// The unexpired outcome stored with `key`: its fingerprint and order.
fn stored_key(
    conn: &Connection,
    key: &IdempotencyKey,
    now: &DateTime<Utc>,
) -> Result<Option<(String, Order)>, StoreError> {
    conn.prepare_cached(
        "select order_pk, order_id, customer_id, status, total_cents, created_at, updated_at, fingerprint
         from commandes_idempotency_keys where scope = ?1 and key = ?2 and expires_at > ?3",
    )
    .and_then(|mut s| {
        s.query_row(params![key.scope, key.key, format_time(now)], |r| Ok((r.get::<_, String>(7)?, row_to_order(r)?)))
            .optional()
    })
    .map_err(map_error)
}

/// Keys of the creates running in this process; a claim is released when
/// dropped, whatever happens to the request.
struct InFlight {
    set: Arc<Mutex<HashSet<(String, String)>>>,
    entry: (String, String),
}

impl InFlight {
    fn claim(
        set: &Arc<Mutex<HashSet<(String, String)>>>,
        key: &IdempotencyKey,
    ) -> Result<InFlight, StoreError> {
        let entry = (key.scope.clone(), key.key.clone());
        if !set.lock().expect("in-flight lock").insert(entry.clone()) {
            return Err(StoreError::IdempotencyInProgress);
        }
        Ok(InFlight {
            set: set.clone(),
            entry,
        })
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set.lock().expect("in-flight lock").remove(&self.entry);
    }
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row(
        "select exists (select 1 from sqlite_master where type = 'table' and name = 'commandes_schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "select coalesce(max(version), 0) from commandes_schema_migrations",
        [],
        |r| r.get(0),
    )
}

fn apply_migrations(
    conn: &mut Connection,
    history: &'static [Migration],
) -> rusqlite::Result<MigrationReport> {
    // IMMEDIATE takes the write lock up front: a second process waits here
    // (busy timeout) and then finds the work done.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "create table if not exists commandes_schema_migrations (
            version    integer primary key,
            name       text not null,
            applied_at text not null
        )",
    )?;
    let from: i64 = tx.query_row(
        "select coalesce(max(version), 0) from commandes_schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for m in history.iter().filter(|m| m.version > from) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "insert into commandes_schema_migrations (version, name, applied_at) values (?1, ?2, ?3)",
            params![m.version, m.name, format_time(&now())],
        )?;
    }
    tx.commit()?;
    Ok(MigrationReport {
        from,
        to: migrations::latest(history).max(from),
        notes: Vec::new(),
    })
}

/// Builds the `where`, `order by` and `limit` of a list query.
/// `owner`, when set, restricts the list to that customer's orders (on top
/// of any `customer_id` filter, so another customer's list is empty).
fn list_sql(filter: &ListFilter, owner: Option<&str>) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    // Numbers each `?` of `clause` in the order its values are bound.
    let mut push = |clause: &str, values: Vec<Value>| {
        let mut numbered = String::new();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                numbered.push_str(&format!("?{}", args.len() + i));
            }
            numbered.push_str(part);
        }
        args.extend(values);
        clauses.push(numbered);
    };
    if let Some(s) = filter.status {
        push("status = ?", vec![Value::Text(s.as_str().into())]);
    }
    if let Some(c) = &filter.customer_id {
        push("customer_id = ?", vec![Value::Text(c.clone())]);
    }
    if let Some(owner) = owner {
        push("customer_id = ?", vec![Value::Text(owner.to_string())]);
    }
    if let Some(a) = filter.min_amount {
        push("total_cents >= ?", vec![Value::Integer(a.cents())]);
    }
    if let Some(a) = filter.max_amount {
        push("total_cents <= ?", vec![Value::Integer(a.cents())]);
    }
    if let Some(t) = &filter.created_from {
        push("created_at >= ?", vec![Value::Text(format_time(t))]);
    }
    if let Some(t) = &filter.created_to {
        push("created_at <= ?", vec![Value::Text(format_time(t))]);
    }
    let column = match filter.sort.key {
        SortKey::CreatedAt => "created_at",
        SortKey::UpdatedAt => "updated_at",
        SortKey::TotalAmount => "total_cents",
        SortKey::Id => "id",
    };
    let (dir, after) = if filter.sort.descending {
        ("desc", "<")
    } else {
        ("asc", ">")
    };
    if let Some(c) = &filter.cursor {
        // A row value comparison, which the (column, id) indexes serve.
        match filter.sort.key {
            SortKey::Id => push(&format!("id {after} ?"), vec![Value::Integer(c.id)]),
            SortKey::TotalAmount => push(
                &format!("({column}, id) {after} (?, ?)"),
                vec![Value::Integer(c.value), Value::Integer(c.id)],
            ),
            SortKey::CreatedAt | SortKey::UpdatedAt => {
                let time = DateTime::from_timestamp_micros(c.value)
                    .map(|t| format_time(&t))
                    .unwrap_or_default();
                push(
                    &format!("({column}, id) {after} (?, ?)"),
                    vec![Value::Text(time), Value::Integer(c.id)],
                );
            }
        }
    }
    let order = if column == "id" {
        format!("id {dir}")
    } else {
        format!("{column} {dir}, id {dir}")
    };
    let mut sql = format!("select {COLUMNS} from commandes");
    if !clauses.is_empty() {
        sql.push_str(" where ");
        sql.push_str(&clauses.join(" and "));
    }
    args.push(Value::Integer(filter.limit.into()));
    args.push(Value::Integer(filter.skip as i64));
    sql.push_str(&format!(
        " order by {order} limit ?{} offset ?{}",
        args.len() - 1,
        args.len()
    ));
    (sql, args)
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
                    Ok(Created { order: earlier, replayed: true })
                } else {
                    Err(StoreError::IdempotencyMismatch)
                };
            }
            let created = insert(conn, &order, &t, &t)?;
            insert_events(conn, &[event::created(&created, &actor)])?;
            let expires = t + TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1));
            conn.execute(
                "insert or replace into commandes_idempotency_keys
                 (scope, key, fingerprint, order_pk, order_id, customer_id, status, total_cents, created_at, updated_at, expires_at)
                 values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    key.scope,
                    key.key,
                    key.fingerprint,
                    created.id,
                    created.order_id,
                    created.customer_id,
                    created.status.as_str(),
                    created.total_amount.cents(),
                    format_time(&created.created_at),
                    format_time(&created.updated_at),
                    format_time(&expires),
                ],
            )
            .map_err(map_error)?;
            Ok(Created { order: created, replayed: false })
        })
        .await
    }

    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "delete from commandes_idempotency_keys where rowid in
                 (select rowid from commandes_idempotency_keys where expires_at <= ?1 limit 1000)",
                [format_time(&now)],
            )
            .map(|n| n as u64)
            .map_err(map_error)
        })
        .await
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
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "select {COLUMNS} from commandes where order_id = ?1 and (?2 is null or customer_id = ?2)"
            ))
            .and_then(|mut s| s.query_row(params![order_id, owner], row_to_order).optional())
            .map_err(map_error)?
            .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError> {
        let (sql, args) = list_sql(filter, actor.owner.as_deref());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), row_to_order)
                .map_err(map_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_error)
        })
        .await
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
            let (current, next, events) =
                match rules::plan_update(current, &patch, if_match.as_ref(), &actor, now())? {
                    UpdatePlan::Unchanged(order) => {
                        return Ok(Updated {
                            order,
                            previous: None,
                        })
                    }
                    UpdatePlan::Write {
                        current,
                        next,
                        events,
                    } => (current, next, events),
                };
            let updated = conn.execute(
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
            );
            match updated {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Err(StoreError::Conflict(Conflict::DuplicateOrderId(
                        next.order_id,
                    )))
                }
                Err(e) => return Err(map_error(e)),
            }
            insert_events(conn, &events)?;
            Ok(Updated {
                order: next,
                previous: Some(current),
            })
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
        self.read(move |conn| {
            query_events(
                conn,
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where sequence > ?1 order by sequence limit ?2"
                ),
                params![after, limit],
            )
        })
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
        self.read(move |conn| {
            // The owner's events only (the rule of `Event::seen_by`), so
            // that the limit bounds what the caller gets.
            let events = query_events(
                conn,
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where order_ref = ?1 and sequence > ?2 and (?4 is null or customer_id = ?4)
                     order by sequence limit ?3"
                ),
                params![id, after, limit, actor.owner],
            )?;
            // Nothing to show: an empty page of a history the caller may
            // read, or no history for it at all.
            if events.is_empty() {
                let visible: bool = conn
                    .prepare_cached(
                        "select exists (select 1 from commandes
                                        where id = ?1 and (?2 is null or customer_id = ?2))
                             or exists (select 1 from commandes_events
                                        where order_ref = ?1 and (?2 is null or customer_id = ?2))",
                    )
                    .and_then(|mut s| s.query_row(params![id, actor.owner], |r| r.get(0)))
                    .map_err(map_error)?;
                if !visible {
                    return Err(StoreError::NotFound);
                }
            }
            Ok(super::history_seen(events, &actor))
        })
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
        self.write(move |conn| {
            conn.prepare_cached(
                "delete from commandes_events where sequence in
                 (select sequence from commandes_events
                  where time < ?1 and (?2 is null or sequence <= ?2)
                  order by sequence limit ?3)",
            )
            .and_then(|mut s| s.execute(params![format_time(&older_than), up_to, batch]))
            .map(|n| n as u64)
            .map_err(map_error)
        })
        .await
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        let owner = actor.owner.clone();
        self.read(move |conn| {
            let (sql, args) = match &owner {
                // Kept by triggers (migration 0003): four rows, no scan.
                None => (
                    "select status, order_count, total_cents from commandes_stats",
                    vec![],
                ),
                // The counters cover everyone: one customer's figures are
                // summed from its rows (found by the customer index).
                Some(owner) => (
                    "select status, count(*), coalesce(sum(total_cents), 0) from commandes
                     where customer_id = ?1 group by status",
                    vec![Value::Text(owner.clone())],
                ),
            };
            let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
            let mut stats = Stats::default();
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(map_error)?;
            for row in rows {
                let (status, count, cents) = row.map_err(map_error)?;
                let status = status
                    .parse::<Status>()
                    .map_err(|e| StoreError::Backend(Box::new(e)))?;
                stats.add(status, count, cents.into());
            }
            Ok(stats)
        })
        .await
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        self.read(|conn| {
            let version = schema_version(conn).map_err(map_error)?;
            let count = if version > 0 {
                conn.query_row("select count(*) from commandes", [], |r| r.get(0))
                    .map_err(map_error)?
            } else {
                0
            };
            Ok(StoreInfo {
                backend: Backend::Sqlite,
                server_version: format!("SQLite {}", rusqlite::version()),
                schema_version: version,
                order_count: count,
            })
        })
        .await
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|conn| schema_version(conn).map_err(map_error))
            .await
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        // One writer connection plus the readers; "waiting" counts the jobs
        // queued for them.
        let busy = self.busy_readers.load(Ordering::Relaxed).min(self.readers);
        let queued = self.writes.len() + self.reads.as_ref().map_or(0, Sender::len);
        Some(PoolStatus {
            size: 1 + self.readers,
            idle: self.readers - busy,
            waiting: queued,
            max_size: 1 + self.readers,
        })
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Jobs already queued run first; then the threads end and their
        // connections close. A full queue makes these sends wait for room,
        // so they wait on a blocking thread (once the threads have ended,
        // a send fails at once).
        let (writes, reads, readers) = (self.writes.clone(), self.reads.clone(), self.readers);
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writes.send(WriteJob::Exit);
            if let Some(reads) = reads {
                for _ in 0..readers {
                    let _ = reads.send(ReadJob::Exit);
                }
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
        self.write(move |conn| {
            conn.prepare_cached(
                "insert into commandes_event_relay (name, holder, lease_until)
                 values (?1, ?2, ?3)
                 on conflict (name) do update
                    set holder = excluded.holder, lease_until = excluded.lease_until
                    where holder = excluded.holder or lease_until < ?4
                 returning position",
            )
            .and_then(|mut s| {
                s.query_row(params![name, holder, until, now], |r| r.get(0))
                    .optional()
            })
            .map_err(map_error)
        })
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
        self.write(move |conn| {
            conn.prepare_cached(
                "update commandes_event_relay
                    set position = max(position, ?3), lease_until = ?4
                  where name = ?1 and holder = ?2",
            )
            .and_then(|mut s| s.execute(params![name, holder, position, until]))
            .map(|n| n == 1)
            .map_err(map_error)
        })
        .await
    }

    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            conn.prepare_cached(
                "update commandes_event_relay set holder = null, lease_until = 0
                  where name = ?1 and holder = ?2",
            )
            .and_then(|mut s| s.execute(params![name, holder]))
            .map(|_| ())
            .map_err(map_error)
        })
        .await
    }

    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached("select position from commandes_event_relay where name = ?1")
                .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
                .map_err(map_error)
        })
        .await
    }

    async fn last_event_sequence(&self) -> Result<i64, StoreError> {
        // AUTOINCREMENT keeps the highest number ever given here, pruned
        // rows included.
        self.read(|conn| {
            conn.prepare_cached(
                "select coalesce((select seq from sqlite_sequence
                                   where name = 'commandes_events'), 0)",
            )
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(map_error)
        })
        .await
    }
}

/// Now, in milliseconds since the Unix epoch (the relay lease's clock).
fn unix_millis() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_sql_numbers_its_placeholders() {
        let filter = ListFilter {
            status: Some(Status::Pending),
            min_amount: Amount::from_cents(100),
            ..ListFilter::default()
        };
        let (sql, args) = list_sql(&filter, None);
        assert!(sql.contains("status = ?1 and total_cents >= ?2"), "{sql}");
        assert!(
            sql.ends_with("order by created_at desc, id desc limit ?3 offset ?4"),
            "{sql}"
        );
        assert_eq!(args.len(), 4);
    }

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
        until(|| store.busy_readers.load(Ordering::Relaxed) == 1).await;
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
        until(|| store.reads.as_ref().unwrap().len() == 2).await;
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
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = tokio::sync::oneshot::channel::<()>();
        let holding = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .write_exclusive(move |_| {
                        let _ = started.send(());
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            }
        });
        running.await.unwrap();
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
        until(|| store.writes.len() == 1).await;
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
        // A write queued after it has run: so has the gone caller's job.
        store.write(|_| Ok(())).await.unwrap();
        assert!(matches!(
            store.get_by_order_id("GONE", &Actor::system()).await,
            Err(StoreError::NotFound)
        ));
    }

    /// Every sort, in both directions, on a first page and on a `cursor`
    /// page, reads an index in order: SQLite never sorts the table.
    #[test]
    fn every_sort_is_read_from_an_index() {
        use crate::domain::filter::{Cursor, Sort};
        let mut conn = Connection::open_in_memory().unwrap();
        apply_migrations(&mut conn, migrations::SQLITE).unwrap();
        for key in [
            SortKey::CreatedAt,
            SortKey::UpdatedAt,
            SortKey::TotalAmount,
            SortKey::Id,
        ] {
            for descending in [false, true] {
                for cursor in [None, Some(Cursor { value: 5, id: 3 })] {
                    let filter = ListFilter {
                        sort: Sort { key, descending },
                        cursor,
                        skip: 10,
                        ..ListFilter::default()
                    };
                    let (sql, args) = list_sql(&filter, None);
                    let mut stmt = conn.prepare(&format!("explain query plan {sql}")).unwrap();
                    let plan: Vec<String> = stmt
                        .query_map(rusqlite::params_from_iter(args), |r| r.get(3))
                        .unwrap()
                        .collect::<rusqlite::Result<_>>()
                        .unwrap();
                    let plan = plan.join("; ");
                    assert!(
                        !plan.contains("TEMP B-TREE"),
                        "{key:?} desc={descending} cursor={}: {plan}",
                        cursor.is_some()
                    );
                }
            }
        }
    }
}
