//! The PostgreSQL backend (production, Supabase): a deadpool pool of
//! tokio-postgres connections.
//!
//! Every statement goes through `query_typed` / `execute_typed`: the
//! parameter types are given with the SQL, so no named prepared statement is
//! ever created. That costs nothing in round trips and keeps the backend
//! working behind a transaction-mode pooler (PgBouncer, Supavisor), which
//! does not keep named statements between transactions. The table keeps the
//! original service's columns: `numeric(10,2)` amounts mapped to
//! `rust_decimal`, `timestamptz` times mapped to `chrono`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

use super::migrations::{self, Migration};
use super::rules::{self, UpdatePlan};
use super::{
    Backend, Conflict, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome,
    MigrationReport, PoolStatus, Store, StoreError, StoreInfo, StoreOptions, Updated,
};

mod adopt;
mod bulk;
pub mod tls;
use crate::domain::event::{self, Event, NewEvent};
use crate::domain::{
    now, Actor, Amount, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order, OrderPatch,
    Precondition, SortKey, Stats, Status,
};

const COLUMNS: &str = "id, order_id, customer_id, status, total_amount, created_at, updated_at";

/// Any key will do, as long as every process uses the same one: it
/// serialises concurrent migration runs (a transaction-level lock, so it is
/// released at commit and works through a transaction pooler).
const MIGRATION_LOCK: i64 = 0x636f_6d6d_616e_6465; // "commande"

/// A PostgreSQL database reached through a connection pool.
pub struct PostgresStore {
    pool: Pool,
    /// For cancel requests, which open a connection of their own.
    tls: Option<tls::Connector>,
}

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

impl PostgresStore {
    /// Builds the pool and waits for the database (see
    /// [`StoreOptions::startup_timeout`]): a database that is down,
    /// starting or full is retried with backoff, logged; any other failure
    /// (password, TLS, unknown database) is returned at once.
    pub async fn open(url: &str, options: &StoreOptions) -> anyhow::Result<PostgresStore> {
        // The libpq TLS parameters come out of the URL first: tokio-postgres
        // refuses `verify-full` and `sslrootcert`.
        let target = tls::prepare(url, options.ca_file.as_deref())?;
        tracing::debug!(tls = %target.summary, "database connection");
        let mut config = target.config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("commandes");
        }
        config.keepalives(true);
        let manager_config = ManagerConfig {
            // `Fast` sends nothing on checkout, and works through a
            // transaction pooler (`Clean` would send `DISCARD ALL`). A
            // connection the server or the pooler closed is seen closed
            // (`is_closed`) and replaced; one broken mid-query fails that
            // query (503) and is then replaced the same way.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match target.tls.clone() {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()?;
        let store = PostgresStore {
            pool,
            tls: target.tls,
        };
        store
            .wait_for_database(options.startup_timeout, options.connect_timeout)
            .await?;
        Ok(store)
    }

    /// Connects and runs `select 1` until it works, for at most `limit`,
    /// with exponential backoff (0.25 s doubling to 5 s). Only the failures
    /// that pass by themselves are retried.
    async fn wait_for_database(&self, limit: Duration, per_try: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        for attempt in 1u32.. {
            let reason = match self.probe(per_try).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(
                            attempts = attempt,
                            waited_ms = started.elapsed().as_millis() as u64,
                            "the database is reachable"
                        );
                    }
                    return Ok(());
                }
                Err(Probe::Fatal(reason)) => {
                    anyhow::bail!("cannot connect to the database: {reason}")
                }
                Err(Probe::Transient(reason)) => reason,
            };
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                if limit.is_zero() {
                    anyhow::bail!("cannot connect to the database: {reason}");
                }
                anyhow::bail!(
                    "the database did not become reachable within {} s ({attempt} attempts; \
                     database.startup_timeout_secs): {reason}",
                    limit.as_secs()
                );
            }
            let pause = delay.min(left);
            tracing::warn!(
                attempt,
                retry_in_ms = pause.as_millis() as u64,
                gives_up_in_s = left.as_secs(),
                reason = %reason,
                "waiting for the database"
            );
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        unreachable!("the loop returns")
    }

    /// One connection attempt and one statement (through a pooler, the
    /// connection alone proves nothing about the database behind it).
    async fn probe(&self, limit: Duration) -> Result<(), Probe> {
        let client = self.pool.get().await.map_err(classify_pool_error)?;
        let guard = Conn::new(client);
        match tokio::time::timeout(limit, guard.query_typed("select 1", &[])).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                guard.discard();
                Err(classify(&e))
            }
            Err(_) => {
                guard.discard();
                cancel(self.tls.clone(), guard.cancel_token());
                Err(Probe::Transient(format!(
                    "no answer within {} s",
                    limit.as_secs_f32()
                )))
            }
        }
    }

    /// A pooled connection for one store operation. Under a deadline
    /// ([`super::deadline`]), the connection signs up with it: on expiry its
    /// query is cancelled on the server (PgBouncer and Supavisor pass cancel
    /// requests on) and the connection is closed rather than reused, since
    /// its state is unknown.
    async fn client(&self) -> Result<Conn, StoreError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map(Conn::new)
            .map_err(map_pool_error)?;
        if let Some(scope) = super::deadline::current() {
            let (tls, token, held) = (self.tls.clone(), conn.cancel_token(), conn.held.clone());
            scope.on_expiry(Box::new(move || {
                // Only while the operation still holds it: an operation
                // may take several connections in turn, and one given back
                // may already serve another request.
                if held.load(Ordering::Acquire) {
                    cancel(tls, token);
                }
            }));
            conn.broken_when(scope);
        }
        Ok(conn)
    }

    /// A connection on which every event committed before this call has
    /// its sequence number, for the feed and the histories: runs the
    /// sequencer. While another run holds the sequencer's lock, waits for
    /// it without holding a connection (a new try every
    /// [`SEQUENCER_RETRY`], each with a connection taken and given back),
    /// for at most [`SEQUENCER_WAIT`], then reads anyway (what that run
    /// numbers shows up on the next read).
    async fn sequenced_client(&self) -> Result<Conn, StoreError> {
        let give_up = Instant::now() + SEQUENCER_WAIT;
        loop {
            let mut client = self.client().await?;
            if run_sequencer(&mut client).await?.is_some() || Instant::now() >= give_up {
                return Ok(client);
            }
            drop(client);
            tokio::time::sleep(SEQUENCER_RETRY).await;
        }
    }
}

/// Sends a cancel request for `token`'s connection, in the background.
fn cancel(tls: Option<tls::Connector>, token: tokio_postgres::CancelToken) {
    tokio::spawn(async move {
        let sent = match tls {
            Some(tls) => token.cancel_query(tls).await,
            None => token.cancel_query(NoTls).await,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %crate::error_chain::error_chain(&e), "cannot send a cancel request");
        }
    });
}

/// A pooled connection that goes back to the pool when dropped, unless it
/// was marked broken or its operation's deadline expired (then it is
/// closed).
struct Conn {
    object: Option<Object>,
    broken: AtomicBool,
    deadline: Option<Arc<super::deadline::Scope>>,
    /// Until dropped: whether the operation still holds it.
    held: Arc<AtomicBool>,
}

impl Conn {
    fn new(object: Object) -> Conn {
        Conn {
            object: Some(object),
            broken: AtomicBool::new(false),
            deadline: None,
            held: Arc::new(AtomicBool::new(true)),
        }
    }

    fn broken_when(&mut self, scope: Arc<super::deadline::Scope>) {
        self.deadline = Some(scope);
    }

    fn discard(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Conn {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.object.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Object {
        self.object.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.held.store(false, Ordering::Release);
        let expired = self.deadline.as_ref().is_some_and(|d| d.expired());
        if expired || self.broken.load(Ordering::Relaxed) {
            if let Some(object) = self.object.take() {
                // Out of the pool; dropping the client closes the connection.
                drop(Object::take(object));
            }
        }
    }
}

/// Why a start-up connection attempt failed, and whether to try again.
enum Probe {
    /// Refused, reset, timed out, starting up, too many connections: it
    /// may pass by itself.
    Transient(String),
    /// A wrong password, TLS, an unknown database, …: it will not.
    Fatal(String),
}

fn classify_pool_error(e: PoolError) -> Probe {
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(_) => Probe::Transient("timed out connecting".into()),
        other => Probe::Fatal(other.to_string()),
    }
}

/// Sorts a connection failure into [`Probe`].
fn classify(e: &tokio_postgres::Error) -> Probe {
    let reason = crate::error_chain::error_chain(e);
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 57P03 cannot_connect_now (starting up, shutting down, recovering),
        // 53300 too_many_connections, 08xxx connection failures; PgBouncer
        // says 08P01 for its own "cannot connect to server" and for a full
        // pool or client limit.
        let transient = code == "57P03"
            || code == "57P01"
            || code.starts_with("53")
            || (code.starts_with("08") && code != "08P01")
            || (code == "08P01" && is_pooler_outage(db.message()));
        return if transient {
            Probe::Transient(reason)
        } else {
            Probe::Fatal(reason)
        };
    }
    if e.is_closed() {
        return Probe::Transient(reason);
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return match io.kind() {
                // Our TLS failures (certificate, host name) are InvalidData.
                InvalidData | InvalidInput | PermissionDenied => Probe::Fatal(reason),
                _ => Probe::Transient(reason),
            };
        }
        source = cause.source();
    }
    if reason.contains("timed out") {
        Probe::Transient(reason)
    } else {
        Probe::Fatal(reason)
    }
}

/// PgBouncer's own messages for a server it cannot reach or a limit hit.
fn is_pooler_outage(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "cannot connect to server",
        "server login has been failing",
        "no more connections allowed",
        "query_wait_timeout",
        "server conn crashed",
        "pgbouncer is shutting down",
        "database is paused",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// Translates pool failures: all of them mean "try again later". A failure
/// to connect is an outage whatever the server said (refused, too many
/// clients, database not accepting connections).
fn map_pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => StoreError::Unavailable(format!(
            "cannot connect: {}",
            crate::error_chain::error_chain(&e)
        )),
        PoolError::Timeout(_) => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Translates driver failures. Connection loss, shutdowns, overload and
/// timeouts are outages (503); everything else is a bug (500). The raw
/// message only ever reaches the logs.
fn map_error(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let transient = code.code().starts_with("08")
            || code.code().starts_with("53")
            || code.code().starts_with("57")
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED;
        return if transient {
            StoreError::Unavailable(format!("{}: {}", code.code(), db.message()))
        } else {
            StoreError::backend(e)
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io || e.to_string().contains("timed out") {
        StoreError::Unavailable(crate::error_chain::error_chain(&e))
    } else {
        StoreError::backend(e)
    }
}

/// Reads and locks the order for the rest of the transaction, and checks
/// `if_match` against it. The row lock makes read-decide-write one atomic
/// step: a concurrent change waits here, then decides against what this one
/// wrote. An order of another customer than `owner` (when set) is not found.
async fn lock_row(
    tx: &deadpool_postgres::Transaction<'_>,
    id: i64,
    owner: Option<&str>,
    if_match: Option<&Precondition>,
) -> Result<Order, StoreError> {
    let row = tx
        .query_typed_opt(
            &format!(
                "select {COLUMNS} from commandes
                 where id = $1 and ($2::varchar is null or customer_id = $2) for update"
            ),
            &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
        )
        .await
        .map_err(map_error)?;
    let current = row
        .as_ref()
        .map_or(Err(StoreError::NotFound), row_to_order)?;
    rules::check_precondition(if_match, &current)?;
    Ok(current)
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn row_to_order(row: &Row) -> Result<Order, StoreError> {
    let status: String = row.try_get(3).map_err(StoreError::backend)?;
    let amount: Decimal = row.try_get(4).map_err(StoreError::backend)?;
    Ok(Order {
        id: row.try_get(0).map_err(StoreError::backend)?,
        order_id: row.try_get(1).map_err(StoreError::backend)?,
        customer_id: row.try_get(2).map_err(StoreError::backend)?,
        status: status.parse().map_err(StoreError::backend)?,
        total_amount: Amount::from_decimal(amount).map_err(StoreError::backend)?,
        created_at: row.try_get(5).map_err(StoreError::backend)?,
        updated_at: row.try_get(6).map_err(StoreError::backend)?,
    })
}

/// Inserts an order; with `actor`, its `order.created` event too, in the
/// same statement (no extra round trip). The event is built before the
/// database has given the order its id: the statement fills it in.
async fn insert<C: tokio_postgres::GenericClient>(
    client: &C,
    order: &NewOrder,
    created_at: &DateTime<Utc>,
    updated_at: &DateTime<Utc>,
    actor: Option<&Actor>,
) -> Result<Order, StoreError> {
    let amount = order.total_amount.to_decimal();
    let status = order.status.as_str();
    let mut params: Vec<Param<'_>> = vec![
        (&order.order_id, Type::VARCHAR),
        (&order.customer_id, Type::VARCHAR),
        (&status, Type::VARCHAR),
        (&amount, Type::NUMERIC),
        (created_at, Type::TIMESTAMPTZ),
        (updated_at, Type::TIMESTAMPTZ),
    ];
    let insert = format!(
        "insert into commandes (order_id, customer_id, status, total_amount, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (order_id) do nothing
         returning {COLUMNS}"
    );
    let created = actor.map(|actor| {
        let placeholder = Order {
            id: 0,
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            status: order.status,
            total_amount: order.total_amount,
            created_at: *created_at,
            updated_at: *updated_at,
        };
        let e = event::created(&placeholder, actor);
        (e.id, e.kind.as_str(), e.time, e.data.to_string())
    });
    let sql = match &created {
        None => insert,
        Some((id, kind, time, data)) => {
            params.push((id, Type::TEXT));
            params.push((kind, Type::TEXT));
            params.push((time, Type::TIMESTAMPTZ));
            params.push((data, Type::TEXT));
            // No row comes out of `o` for a taken order_id: then no event.
            format!(
                "with o as ({insert}),
                 e as (
                    insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
                    select $7::uuid, $8, $9, o.id, o.order_id, o.customer_id,
                           jsonb_set(jsonb_set($10::jsonb, '{{id}}', to_jsonb(o.id)), '{{order,id}}', to_jsonb(o.id))
                    from o
                 )
                 select {COLUMNS} from o"
            )
        }
    };
    let rows = client.query_typed(&sql, &params).await.map_err(map_error)?;
    match rows.first() {
        Some(row) => row_to_order(row),
        None => Err(StoreError::Conflict(Conflict::DuplicateOrderId(
            order.order_id.clone(),
        ))),
    }
}

/// The events of one change as parallel arrays, bound to the `unnest` of
/// [`with_events`].
struct EventArrays {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    times: Vec<DateTime<Utc>>,
    order_ids: Vec<String>,
    customer_ids: Vec<String>,
    data: Vec<String>,
}

impl EventArrays {
    fn new(events: &[NewEvent]) -> EventArrays {
        EventArrays {
            ids: events.iter().map(|e| e.id.clone()).collect(),
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            times: events.iter().map(|e| e.time).collect(),
            order_ids: events.iter().map(|e| e.order_id.clone()).collect(),
            customer_ids: events.iter().map(|e| e.customer_id.clone()).collect(),
            data: events.iter().map(|e| e.data.to_string()).collect(),
        }
    }

    fn push<'a>(&'a self, params: &mut Vec<Param<'a>>) {
        params.push((&self.ids, Type::TEXT_ARRAY));
        params.push((&self.kinds, Type::TEXT_ARRAY));
        params.push((&self.times, Type::TIMESTAMPTZ_ARRAY));
        params.push((&self.order_ids, Type::TEXT_ARRAY));
        params.push((&self.customer_ids, Type::TEXT_ARRAY));
        params.push((&self.data, Type::TEXT_ARRAY));
    }
}

/// `change` (an update or delete of one order `returning id`) and the
/// insert of its events as one statement: the events exist exactly when the
/// change happened, at no extra round trip. The events' arrays are bound
/// from parameter `$first` on, and inserted in their order (their
/// insertion ids follow it).
fn with_events(change: &str, first: usize) -> String {
    let p: Vec<String> = (first..first + 6).map(|i| format!("${i}")).collect();
    format!(
        "with changed as ({change})
         insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
         select e.event_id::uuid, e.type, e.time, changed.id, e.order_id, e.customer_id, e.data::jsonb
         from changed,
              unnest({}::text[], {}::text[], {}::timestamptz[], {}::text[], {}::text[], {}::text[])
              with ordinality as e(event_id, type, time, order_id, customer_id, data, n)
         order by e.n",
        p[0], p[1], p[2], p[3], p[4], p[5]
    )
}

/// Any key will do, as long as every process uses the same one: only one
/// sequencer runs at a time, across replicas (a transaction-level lock,
/// so it works through a transaction pooler).
const SEQUENCER_LOCK: i64 = 0x636f_6d6d_6576_6e74; // "commevnt"

/// Most events one sequencer run numbers.
const SEQUENCE_BATCH: i64 = 5000;

/// Numbers the committed unnumbered events in insertion order, after the
/// counter's last number, and moves the counter on. Runs only under the
/// sequencer lock, in a statement whose snapshot was taken after the lock
/// was acquired: it sees every earlier run's numbers, and only committed
/// events (one still being written stays unnumbered until a later run).
/// Should two runs ever overlap all the same, the counter's row lock orders
/// them and `sequence is null`, checked again on the row as committed,
/// keeps an event from being numbered twice (the later run leaves a gap).
const SEQUENCE_SQL: &str = "
    with pending as materialized (
        select insertion_id, row_number() over (order by insertion_id) as n
        from commandes_events where sequence is null
        order by insertion_id limit $1
    ), counter as (
        update commandes_event_sequencer
        set last_sequence = last_sequence + (select count(*) from pending)
        where id = 1
        returning last_sequence - (select count(*) from pending) as base
    )
    update commandes_events e
    set sequence = counter.base + pending.n
    from pending, counter
    where e.insertion_id = pending.insertion_id and e.sequence is null";

/// How long a reader waits for a sequencer run in progress elsewhere
/// before reading anyway (what that run numbers shows up on its next read).
const SEQUENCER_WAIT: Duration = Duration::from_secs(2);

/// The pause between two tries of a reader waiting for another run.
const SEQUENCER_RETRY: Duration = Duration::from_millis(20);

/// One sequencer run on `client`: how many events it numbered, or `None`
/// when a run in progress elsewhere holds the lock (that run numbers them;
/// a reader that must see them waits for it, see
/// [`PostgresStore::sequenced_client`]). Never waits for the lock.
async fn run_sequencer(client: &mut deadpool_postgres::Object) -> Result<Option<u64>, StoreError> {
    // Served by the partial index: next to nothing when all is numbered.
    let pending: bool = client
        .query_typed(
            "select exists (select 1 from commandes_events where sequence is null)",
            &[],
        )
        .await
        .map_err(map_error)?[0]
        .get(0);
    if !pending {
        return Ok(Some(0));
    }
    // Read committed whatever the server's default: each statement below
    // must see what was committed before it started, the lock included.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(map_error)?;
    let locked: bool = tx
        .query_typed(
            "select pg_try_advisory_xact_lock($1)",
            &[(&SEQUENCER_LOCK, Type::INT8)],
        )
        .await
        .map_err(map_error)?[0]
        .get(0);
    if !locked {
        return Ok(None);
    }
    let n = tx
        .execute_typed(SEQUENCE_SQL, &[(&SEQUENCE_BATCH, Type::INT8)])
        .await
        .map_err(map_error)?;
    tx.commit().await.map_err(map_error)?;
    Ok(Some(n))
}

const EVENT_COLUMNS: &str =
    "sequence, event_id::text, type, time, order_ref, order_id, customer_id, data::text";

fn row_to_event(row: &Row) -> Result<Event, StoreError> {
    let kind: String = row.try_get(2).map_err(StoreError::backend)?;
    let data: String = row.try_get(7).map_err(StoreError::backend)?;
    super::stored_event(
        row.try_get(0).map_err(StoreError::backend)?,
        row.try_get(1).map_err(StoreError::backend)?,
        &kind,
        row.try_get(3).map_err(StoreError::backend)?,
        row.try_get(4).map_err(StoreError::backend)?,
        row.try_get(5).map_err(StoreError::backend)?,
        row.try_get(6).map_err(StoreError::backend)?,
        &data,
    )
}

/// Applies the pending files of `history` in one transaction, under a
/// transaction-level advisory lock (released at commit, so it works
/// through a transaction pooler), adopting the original service's table
/// first if it is there (see [`adopt`]).
async fn apply_migrations(
    client: &mut deadpool_postgres::Object,
    history: &'static [Migration],
) -> Result<MigrationReport, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    // A second process blocks here until the first commits, then sees the
    // versions it recorded and has nothing left to do.
    tx.query_typed(
        "select pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await
    .map_err(map_error)?;
    let notes = adopt::adopt_original(&tx).await.map_err(|e| match e {
        adopt::AdoptError::Db(e) => map_error(e),
        adopt::AdoptError::Refused(r) => StoreError::backend(r),
    })?;
    tx.batch_execute(
        "create table if not exists commandes_schema_migrations (
            version    bigint primary key,
            name       text not null,
            applied_at timestamptz not null default now()
        )",
    )
    .await
    .map_err(map_error)?;
    let from: i64 = tx
        .query_typed(
            "select coalesce(max(version), 0)::int8 from commandes_schema_migrations",
            &[],
        )
        .await
        .map_err(map_error)?[0]
        .get(0);
    for m in history.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql).await.map_err(map_error)?;
        tx.execute_typed(
            "insert into commandes_schema_migrations (version, name) values ($1, $2)",
            &[(&m.version, Type::INT8), (&m.name, Type::TEXT)],
        )
        .await
        .map_err(map_error)?;
    }
    tx.commit().await.map_err(map_error)?;
    for note in &notes {
        tracing::info!(note = %note, "database adopted");
    }
    Ok(MigrationReport {
        from,
        to: migrations::latest(history).max(from),
        notes,
    })
}

/// The filter values a list or an export binds, kept alive while the query
/// runs; both build their `where` from here.
pub(super) struct FilterArgs {
    status: Option<&'static str>,
    customer_id: Option<String>,
    min: Option<Decimal>,
    max: Option<Decimal>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl FilterArgs {
    pub(super) fn new(f: &super::ExportFilter) -> FilterArgs {
        FilterArgs {
            status: f.status.map(Status::as_str),
            customer_id: f.customer_id.clone(),
            min: f.min_amount.map(Amount::to_decimal),
            max: f.max_amount.map(Amount::to_decimal),
            from: f.created_from,
            to: f.created_to,
        }
    }

    /// The `where` conditions, numbering their parameters after those
    /// already in `params`.
    pub(super) fn clauses<'a>(&'a self, params: &mut Vec<Param<'a>>) -> Vec<String> {
        let mut clauses = Vec::new();
        let mut push = |column: &str, op: &str, param: Param<'a>| {
            params.push(param);
            clauses.push(format!("{column} {op} ${}", params.len()));
        };
        if let Some(s) = &self.status {
            push("status", "=", (s, Type::VARCHAR));
        }
        if let Some(c) = &self.customer_id {
            push("customer_id", "=", (c, Type::VARCHAR));
        }
        if let Some(a) = &self.min {
            push("total_amount", ">=", (a, Type::NUMERIC));
        }
        if let Some(a) = &self.max {
            push("total_amount", "<=", (a, Type::NUMERIC));
        }
        if let Some(t) = &self.from {
            push("created_at", ">=", (t, Type::TIMESTAMPTZ));
        }
        if let Some(t) = &self.to {
            push("created_at", "<=", (t, Type::TIMESTAMPTZ));
        }
        clauses
    }
}

/// The values a list query binds, kept alive while the query runs.
struct ListArgs {
    filter: FilterArgs,
    /// The only customer the caller sees, on top of any `customer_id` filter.
    owner: Option<String>,
    cursor_time: Option<DateTime<Utc>>,
    cursor_amount: Option<Decimal>,
    cursor_id: Option<i64>,
    limit: i64,
    skip: i64,
}

impl ListArgs {
    fn new(f: &ListFilter, owner: Option<&str>) -> ListArgs {
        ListArgs {
            filter: FilterArgs::new(&super::ExportFilter::from(f)),
            owner: owner.map(String::from),
            cursor_time: f
                .cursor
                .filter(|_| matches!(f.sort.key, SortKey::CreatedAt | SortKey::UpdatedAt))
                .and_then(|c| DateTime::from_timestamp_micros(c.value)),
            cursor_amount: f
                .cursor
                .filter(|_| f.sort.key == SortKey::TotalAmount)
                .map(|c| Decimal::new(c.value, 2)),
            cursor_id: f.cursor.map(|c| c.id),
            limit: f.limit.into(),
            skip: f.skip as i64,
        }
    }

    /// The SQL and its parameters, numbered in the order they are bound.
    fn sql<'a>(&'a self, filter: &ListFilter) -> (String, Vec<Param<'a>>) {
        let mut params: Vec<Param<'a>> = Vec::new();
        let mut clauses = self.filter.clauses(&mut params);
        if let Some(owner) = &self.owner {
            params.push((owner, Type::VARCHAR));
            clauses.push(format!("customer_id = ${}", params.len()));
        }
        let column = match filter.sort.key {
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::TotalAmount => "total_amount",
            SortKey::Id => "id",
        };
        let (dir, after) = if filter.sort.descending {
            ("desc", "<")
        } else {
            ("asc", ">")
        };
        if let Some(id) = &self.cursor_id {
            // A row value comparison, which the (column, id) indexes serve.
            let key: Option<Param<'a>> = match (&self.cursor_time, &self.cursor_amount) {
                (Some(t), _) => Some((t, Type::TIMESTAMPTZ)),
                (_, Some(a)) => Some((a, Type::NUMERIC)),
                _ => None,
            };
            match key {
                Some(key) => {
                    params.push(key);
                    params.push((id, Type::INT8));
                    clauses.push(format!(
                        "({column}, id) {after} (${}, ${})",
                        params.len() - 1,
                        params.len()
                    ));
                }
                None => {
                    params.push((id, Type::INT8));
                    clauses.push(format!("id {after} ${}", params.len()));
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
        params.push((&self.limit, Type::INT8));
        params.push((&self.skip, Type::INT8));
        sql.push_str(&format!(
            " order by {order} limit ${} offset ${}",
            params.len() - 1,
            params.len()
        ));
        (sql, params)
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut client = self.client().await?;
        apply_migrations(&mut client, migrations::POSTGRES).await
    }

    async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        rules::check_assignable(actor, &order.customer_id)?;
        let mut client = self.client().await?;
        let t = now();
        let Some(key) = key else {
            let order = insert(&***client, order, &t, &t, Some(actor)).await?;
            return Ok(Created {
                order,
                replayed: false,
            });
        };
        let tx = client.transaction().await.map_err(map_error)?;
        // Held until commit: a second request with the same key, on any
        // replica, fails to take it while the first is running (409), and
        // finds the stored outcome once it has committed.
        let lock_name = format!("commandes-idempotency/{}/{}", key.scope, key.key);
        let locked: bool = tx
            .query_typed(
                "select pg_try_advisory_xact_lock(hashtextextended($1, 0))",
                &[(&lock_name, Type::TEXT)],
            )
            .await
            .map_err(map_error)?[0]
            .get(0);
        if !locked {
            return Err(StoreError::IdempotencyInProgress);
        }
        let stored = tx
            .query_typed_opt(
                "select order_pk, order_id, customer_id, status, total_amount, created_at, updated_at, fingerprint
                 from commandes_idempotency_keys where scope = $1 and key = $2 and expires_at > $3",
                &[(&key.scope, Type::TEXT), (&key.key, Type::TEXT), (&t, Type::TIMESTAMPTZ)],
            )
            .await
            .map_err(map_error)?;
        if let Some(row) = stored {
            let fingerprint: String = row.try_get(7).map_err(StoreError::backend)?;
            return if fingerprint == key.fingerprint {
                Ok(Created {
                    order: row_to_order(&row)?,
                    replayed: true,
                })
            } else {
                Err(StoreError::IdempotencyMismatch)
            };
        }
        let created = insert(&*tx, order, &t, &t, Some(actor)).await?;
        let expires = t + TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1));
        let amount = created.total_amount.to_decimal();
        let status = created.status.as_str();
        tx.execute_typed(
            "insert into commandes_idempotency_keys
             (scope, key, fingerprint, order_pk, order_id, customer_id, status, total_amount, created_at, updated_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             on conflict (scope, key) do update set
                fingerprint = excluded.fingerprint, order_pk = excluded.order_pk, order_id = excluded.order_id,
                customer_id = excluded.customer_id, status = excluded.status,
                total_amount = excluded.total_amount, created_at = excluded.created_at,
                updated_at = excluded.updated_at, expires_at = excluded.expires_at",
            &[
                (&key.scope, Type::TEXT),
                (&key.key, Type::TEXT),
                (&key.fingerprint, Type::TEXT),
                (&created.id, Type::INT8),
                (&created.order_id, Type::VARCHAR),
                (&created.customer_id, Type::VARCHAR),
                (&status, Type::VARCHAR),
                (&amount, Type::NUMERIC),
                (&created.created_at, Type::TIMESTAMPTZ),
                (&created.updated_at, Type::TIMESTAMPTZ),
                (&expires, Type::TIMESTAMPTZ),
            ],
        )
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(Created {
            order: created,
            replayed: false,
        })
    }

    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.client().await?;
        client
            .execute_typed(
                "delete from commandes_idempotency_keys where ctid = any(array(
                    select ctid from commandes_idempotency_keys where expires_at <= $1 limit 1000))",
                &[(&now, Type::TIMESTAMPTZ)],
            )
            .await
            .map_err(map_error)
    }

    async fn insert_historical(&self, orders: &[HistoricalOrder]) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_error)?;
        for o in orders {
            // Demo data: restored, not changed, so no events.
            insert(&*tx, &o.order, &o.created_at, &o.updated_at, None).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(orders.len() as u64)
    }

    async fn get(&self, id: i64, actor: &Actor) -> Result<Order, StoreError> {
        let client = self.client().await?;
        let owner = actor.owner.as_deref();
        let row = client
            .query_typed_opt(
                &format!(
                    "select {COLUMNS} from commandes
                     where id = $1 and ($2::varchar is null or customer_id = $2)"
                ),
                &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
            )
            .await
            .map_err(map_error)?;
        row.as_ref().map_or(Err(StoreError::NotFound), row_to_order)
    }

    async fn get_by_order_id(&self, order_id: &str, actor: &Actor) -> Result<Order, StoreError> {
        let client = self.client().await?;
        let owner = actor.owner.as_deref();
        let row = client
            .query_typed_opt(
                &format!(
                    "select {COLUMNS} from commandes
                     where order_id = $1 and ($2::varchar is null or customer_id = $2)"
                ),
                &[(&order_id, Type::VARCHAR), (&owner, Type::VARCHAR)],
            )
            .await
            .map_err(map_error)?;
        row.as_ref().map_or(Err(StoreError::NotFound), row_to_order)
    }

    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError> {
        let args = ListArgs::new(filter, actor.owner.as_deref());
        let (sql, params) = args.sql(filter);
        let client = self.client().await?;
        let rows = client.query_typed(&sql, &params).await.map_err(map_error)?;
        rows.iter().map(row_to_order).collect()
    }

    async fn update(
        &self,
        id: i64,
        patch: &OrderPatch,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_error)?;
        // The owner is checked on the locked row, before anything is decided.
        let current = lock_row(&tx, id, actor.owner.as_deref(), None).await?;
        let (current, next, events) =
            match rules::plan_update(current, patch, if_match, actor, now())? {
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
        let amount = next.total_amount.to_decimal();
        let status = next.status.as_str();
        let events = EventArrays::new(&events);
        let mut params: Vec<Param<'_>> = vec![
            (&id, Type::INT8),
            (&next.order_id, Type::VARCHAR),
            (&next.customer_id, Type::VARCHAR),
            (&status, Type::VARCHAR),
            (&amount, Type::NUMERIC),
            (&next.updated_at, Type::TIMESTAMPTZ),
        ];
        events.push(&mut params);
        let updated = tx
            .execute_typed(
                &with_events(
                    "update commandes
                     set order_id = $2, customer_id = $3, status = $4, total_amount = $5, updated_at = $6
                     where id = $1 returning id",
                    7,
                ),
                &params,
            )
            .await;
        match updated {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(Conflict::DuplicateOrderId(
                    next.order_id,
                )))
            }
            Err(e) => return Err(map_error(e)),
        }
        tx.commit().await.map_err(map_error)?;
        Ok(Updated {
            order: next,
            previous: Some(current),
        })
    }

    async fn delete(
        &self,
        id: i64,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_error)?;
        // The event carries the order as it was: read it under its row
        // lock, then delete it and store the event in one statement.
        let current = lock_row(&tx, id, actor.owner.as_deref(), if_match).await?;
        let events = EventArrays::new(&[event::deleted(&current, actor, now())]);
        let mut params: Vec<Param<'_>> = vec![(&id, Type::INT8)];
        events.push(&mut params);
        tx.execute_typed(
            &with_events("delete from commandes where id = $1 returning id", 2),
            &params,
        )
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let client = self.sequenced_client().await?;
        let limit = i64::from(limit);
        let rows = client
            .query_typed(
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where sequence > $1 order by sequence limit $2"
                ),
                &[(&after, Type::INT8), (&limit, Type::INT8)],
            )
            .await
            .map_err(map_error)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn history(
        &self,
        id: i64,
        after: i64,
        limit: u32,
        actor: &Actor,
    ) -> Result<Vec<Event>, StoreError> {
        let client = self.sequenced_client().await?;
        let limit = i64::from(limit);
        let owner = actor.owner.as_deref();
        // An order's changes are serialised by its row lock, so within one
        // order insertion order is sequence order: the page is read along
        // the (order_ref, insertion_id) index, from the event numbered
        // `after` when it is one of this order's (a `Link` of an earlier
        // page), so a deep page costs what the first one does. Only the
        // owner's events (the rule of `Event::seen_by`), so that the limit
        // bounds what the caller gets.
        let rows = client
            .query_typed(
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where order_ref = $1 and sequence > $2
                       and ($4::varchar is null or customer_id = $4)
                       and insertion_id > coalesce((select insertion_id from commandes_events
                                                    where sequence = $2 and order_ref = $1), 0)
                     order by insertion_id limit $3"
                ),
                &[
                    (&id, Type::INT8),
                    (&after, Type::INT8),
                    (&limit, Type::INT8),
                    (&owner, Type::VARCHAR),
                ],
            )
            .await
            .map_err(map_error)?;
        let events = rows
            .iter()
            .map(row_to_event)
            .collect::<Result<Vec<_>, _>>()?;
        // Nothing to show: an empty page of a history the caller may read,
        // or no history for it at all.
        if events.is_empty() {
            let visible: bool = client
                .query_typed(
                    "select exists (select 1 from commandes
                                    where id = $1 and ($2::varchar is null or customer_id = $2))
                         or exists (select 1 from commandes_events
                                    where order_ref = $1 and ($2::varchar is null or customer_id = $2))",
                    &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
                )
                .await
                .map_err(map_error)?[0]
                .try_get(0)
                .map_err(StoreError::backend)?;
            if !visible {
                return Err(StoreError::NotFound);
            }
        }
        Ok(super::history_seen(events, actor))
    }

    async fn purge_events(
        &self,
        older_than: DateTime<Utc>,
        up_to: Option<i64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let batch = i64::from(batch);
        // Old rows only: writers insert new ones and never wait for this.
        // Unnumbered events are never pruned (no reader has seen them yet).
        client
            .execute_typed(
                "delete from commandes_events where insertion_id = any(array(
                    select insertion_id from commandes_events
                    where time < $1 and sequence is not null
                      and ($2::int8 is null or sequence <= $2) limit $3))",
                &[
                    (&older_than, Type::TIMESTAMPTZ),
                    (&up_to, Type::INT8),
                    (&batch, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)
    }

    async fn sequence_events(&self) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        Ok(run_sequencer(&mut client).await?.unwrap_or(0))
    }

    async fn unsequenced_events(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let n: i64 = client
            .query_typed(
                "select count(*)::int8 from commandes_events where sequence is null",
                &[],
            )
            .await
            .map_err(map_error)?[0]
            .get(0);
        Ok(n as u64)
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        let client = self.client().await?;
        let rows = match &actor.owner {
            None => {
                client
                    .query_typed(
                        // Kept by a trigger (migration 0003): 64 rows, no scan.
                        "select status::text, sum(order_count)::int8, sum(total_amount)::numeric
                         from commandes_stats group by status",
                        &[],
                    )
                    .await
            }
            // The counters cover everyone: one customer's figures are summed
            // from its rows (found by the customer index).
            Some(owner) => client
                .query_typed(
                    "select status::text, count(*)::int8, coalesce(sum(total_amount), 0)::numeric
                         from commandes where customer_id = $1 group by status",
                    &[(owner, Type::VARCHAR)],
                )
                .await,
        }
        .map_err(map_error)?;
        let mut stats = Stats::default();
        for row in rows {
            let status: String = row.try_get(0).map_err(StoreError::backend)?;
            let count: i64 = row.try_get(1).map_err(StoreError::backend)?;
            let mut sum: Decimal = row.try_get(2).map_err(StoreError::backend)?;
            sum.rescale(2);
            let status: Status = status.parse().map_err(StoreError::backend)?;
            stats.add(status, count, sum.mantissa());
        }
        Ok(stats)
    }

    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_typed(
                "select current_setting('server_version'),
                        to_regclass('commandes_schema_migrations') is not null",
                &[],
            )
            .await
            .map_err(map_error)?;
        let server: String = row[0].get(0);
        let migrated: bool = row[0].get(1);
        let (version, count) = if migrated {
            let r = client
                .query_typed(
                    "select (select coalesce(max(version), 0)::int8 from commandes_schema_migrations),
                            (select count(*)::int8 from commandes)",
                    &[],
                )
                .await
                .map_err(map_error)?;
            (r[0].get(0), r[0].get(1))
        } else {
            (0, 0)
        };
        Ok(StoreInfo {
            backend: Backend::Postgres,
            server_version: format!("PostgreSQL {server}"),
            schema_version: version,
            order_count: count,
        })
    }

    async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let version = client
            .query_typed(
                "select coalesce(max(version), 0)::int8 from commandes_schema_migrations",
                &[],
            )
            .await;
        match version {
            Ok(rows) => Ok(rows[0].get(0)),
            // Not migrated at all.
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(0),
            Err(e) => Err(map_error(e)),
        }
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        let s = self.pool.status();
        Some(PoolStatus {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
            max_size: s.max_size,
        })
    }

    async fn close(&self) {
        self.pool.close();
    }

    async fn import(
        &self,
        mut rows: tokio::sync::mpsc::Receiver<ImportBatch>,
        options: &ImportOptions,
    ) -> Result<ImportOutcome, StoreError> {
        let mut client = self.client().await?;
        bulk::import(&mut client, &mut rows, options).await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        out: tokio::sync::mpsc::Sender<Vec<Order>>,
    ) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        bulk::export(&mut client, filter, &out).await
    }

    async fn relay_claim(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let ttl_ms = ttl.as_millis() as i64;
        // The database's clock decides expiry, so replicas with skewed
        // clocks still agree. `clock_timestamp()`, not `now()`: the time of
        // this statement even inside a pooler's longer transaction.
        let row = client
            .query_typed_opt(
                "insert into commandes_event_relay as r (name, holder, lease_until)
                 values ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
                 on conflict (name) do update
                    set holder = excluded.holder, lease_until = excluded.lease_until
                    where r.holder = excluded.holder or r.lease_until < clock_timestamp()
                 returning position",
                &[
                    (&name, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&ttl_ms, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn relay_advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let ttl_ms = ttl.as_millis() as i64;
        let n = client
            .execute_typed(
                "update commandes_event_relay
                    set position = greatest(position, $3),
                        lease_until = clock_timestamp() + $4 * interval '1 millisecond'
                  where name = $1 and holder = $2",
                &[
                    (&name, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&position, Type::INT8),
                    (&ttl_ms, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)?;
        Ok(n == 1)
    }

    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute_typed(
                "update commandes_event_relay set holder = null, lease_until = '-infinity'
                  where name = $1 and holder = $2",
                &[(&name, Type::TEXT), (&holder, Type::TEXT)],
            )
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_typed_opt(
                "select position from commandes_event_relay where name = $1",
                &[(&name, Type::TEXT)],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn last_event_sequence(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_typed_opt(
                "select last_sequence from commandes_event_sequencer where id = 1",
                &[],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }
}
