//! The events of PostgreSQL (the outbox): writing a change's events in the
//! change's own statement, and the sequencer that numbers them for the feed.
//!
//! Numbers cannot be given at insert: a transaction that drew N-1 may
//! commit after one that drew N, and a reader that saw N would skip it. So
//! an event is inserted unnumbered, and the sequencer (one run at a time,
//! across replicas) numbers the committed ones in insertion order, after
//! everything numbered before: a reader that has seen N never later finds
//! a new event at or below N. Readers of the feed and the histories run it
//! first ([`sequenced_client`]); writers never wait for it. See
//! `sql/postgres/0004_events.sql`.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use super::connect::{Conn, Connections};
use super::errors::map_error;
use super::queries::Param;
use crate::domain::event::{Event, NewEvent};
use crate::storage::{stored_event, StoreError};

/// The events of one change as parallel arrays, bound to the `unnest` of
/// [`with_events`].
pub(super) struct EventArrays {
    ids: Vec<String>,
    kinds: Vec<&'static str>,
    times: Vec<DateTime<Utc>>,
    order_ids: Vec<String>,
    customer_ids: Vec<String>,
    data: Vec<String>,
    traceparents: Vec<Option<String>>,
}

impl EventArrays {
    pub(super) fn new(events: &[NewEvent]) -> EventArrays {
        EventArrays {
            ids: events.iter().map(|e| e.id.clone()).collect(),
            kinds: events.iter().map(|e| e.kind.as_str()).collect(),
            times: events.iter().map(|e| e.time).collect(),
            order_ids: events.iter().map(|e| e.order_id.clone()).collect(),
            customer_ids: events.iter().map(|e| e.customer_id.clone()).collect(),
            data: events.iter().map(|e| e.data.to_string()).collect(),
            traceparents: events.iter().map(|e| e.traceparent.clone()).collect(),
        }
    }

    pub(super) fn push<'a>(&'a self, params: &mut Vec<Param<'a>>) {
        params.push((&self.ids, Type::TEXT_ARRAY));
        params.push((&self.kinds, Type::TEXT_ARRAY));
        params.push((&self.times, Type::TIMESTAMPTZ_ARRAY));
        params.push((&self.order_ids, Type::TEXT_ARRAY));
        params.push((&self.customer_ids, Type::TEXT_ARRAY));
        params.push((&self.data, Type::TEXT_ARRAY));
        params.push((&self.traceparents, Type::TEXT_ARRAY));
    }
}

/// `change` (an update or delete of one order `returning id`) and the
/// insert of its events as one statement: the events exist exactly when the
/// change happened, at no extra round trip. The events' arrays are bound
/// from parameter `$first` on, and inserted in their order (their
/// insertion ids follow it). The statement returns one row: how many
/// orders `change` changed (0 when its condition did not hold).
pub(super) fn with_events(change: &str, first: usize) -> String {
    let p: Vec<String> = (first..first + 7).map(|i| format!("${i}")).collect();
    format!(
        "with changed as ({change}),
         inserted as (
            insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data, traceparent)
            select e.event_id::uuid, e.type, e.time, changed.id, e.order_id, e.customer_id, e.data::jsonb, e.traceparent
            from changed,
                 unnest({}::text[], {}::text[], {}::timestamptz[], {}::text[], {}::text[], {}::text[], {}::text[])
                 with ordinality as e(event_id, type, time, order_id, customer_id, data, traceparent, n)
            order by e.n
         )
         select count(*)::int8 from changed",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
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
/// [`sequenced_client`]). Never waits for the lock.
pub(super) async fn run_sequencer(
    client: &mut deadpool_postgres::Object,
) -> Result<Option<u64>, StoreError> {
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

/// The columns of `commandes_events`, in the order [`row_to_event`] reads
/// them.
pub(super) const EVENT_COLUMNS: &str =
    "sequence, event_id::text, type, time, order_ref, order_id, customer_id, data::text, traceparent";

pub(super) fn row_to_event(row: &Row) -> Result<Event, StoreError> {
    let kind: String = row.try_get(2).map_err(StoreError::backend)?;
    let data: String = row.try_get(7).map_err(StoreError::backend)?;
    stored_event(
        row.try_get(0).map_err(StoreError::backend)?,
        row.try_get(1).map_err(StoreError::backend)?,
        &kind,
        row.try_get(3).map_err(StoreError::backend)?,
        row.try_get(4).map_err(StoreError::backend)?,
        row.try_get(5).map_err(StoreError::backend)?,
        row.try_get(6).map_err(StoreError::backend)?,
        &data,
        row.try_get(8).map_err(StoreError::backend)?,
    )
}

/// A connection on which every event committed before this call has
/// its sequence number, for the feed and the histories: runs the
/// sequencer. While another run holds the sequencer's lock, waits for
/// it without holding a connection (a new try every
/// [`SEQUENCER_RETRY`], each with a connection taken and given back),
/// for at most [`SEQUENCER_WAIT`], then reads anyway (what that run
/// numbers shows up on the next read).
pub(super) async fn sequenced_client(connections: &Connections) -> Result<Conn, StoreError> {
    let give_up = Instant::now() + SEQUENCER_WAIT;
    loop {
        let mut client = connections.client().await?;
        if run_sequencer(&mut client).await?.is_some() || Instant::now() >= give_up {
            return Ok(client);
        }
        drop(client);
        tokio::time::sleep(SEQUENCER_RETRY).await;
    }
}
