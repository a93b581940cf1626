//! The events table: storing the events of a change in its transaction,
//! and reading them back (the feed, one order's history).
//!
//! The sequence is given here: one writer commits in the order it writes
//! (see `0004_events.sql`). In a group commit, a job rolled back to its
//! savepoint takes its events and its numbers with it (`sqlite_sequence`
//! is rolled back too), the next job reuses those numbers, and the whole
//! batch becomes visible at once: readers still see numbers only grow.

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection};

use super::errors::map_error;
use super::queries::parse_time;
use crate::domain::event::{Event, NewEvent};
use crate::domain::{format_time, Actor};
use crate::storage::{history_seen, stored_event, StoreError};

/// Stores the events of the change being written, in the same transaction.
pub(super) fn insert_events(conn: &Connection, events: &[NewEvent]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data, traceparent)
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
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
            e.traceparent,
        ])
        .map_err(map_error)?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str =
    "sequence, event_id, type, time, order_ref, order_id, customer_id, data, traceparent";

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Event, StoreError>> {
    let time = parse_time(&row.get::<_, String>(3)?)?;
    let data: String = row.get(7)?;
    Ok(stored_event(
        row.get(0)?,
        row.get(1)?,
        &row.get::<_, String>(2)?,
        time,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        &data,
        row.get(8)?,
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

/// The feed: up to `limit` events after the sequence number `after`.
pub(super) fn events_after(
    conn: &Connection,
    after: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    query_events(
        conn,
        &format!(
            "select {EVENT_COLUMNS} from commandes_events
             where sequence > ?1 order by sequence limit ?2"
        ),
        params![after, limit],
    )
}

/// The history of order `id` as `actor` may see it; not found when there
/// is nothing of that order the actor may see.
pub(super) fn history(
    conn: &Connection,
    id: i64,
    after: i64,
    limit: u32,
    actor: &Actor,
) -> Result<Vec<Event>, StoreError> {
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
    Ok(history_seen(events, actor))
}

/// Deletes up to `batch` events older than `older_than` (and, when set, not
/// after `up_to`), oldest first.
pub(super) fn purge_events(
    conn: &Connection,
    older_than: &DateTime<Utc>,
    up_to: Option<i64>,
    batch: u32,
) -> Result<u64, StoreError> {
    conn.prepare_cached(
        "delete from commandes_events where sequence in
         (select sequence from commandes_events
          where time < ?1 and (?2 is null or sequence <= ?2)
          order by time limit ?3)",
    )
    .and_then(|mut s| s.execute(params![format_time(older_than), up_to, batch]))
    .map(|n| n as u64)
    .map_err(map_error)
}

/// The highest sequence number ever given.
pub(super) fn last_event_sequence(conn: &Connection) -> Result<i64, StoreError> {
    // AUTOINCREMENT keeps the highest number ever given here, pruned
    // rows included.
    conn.prepare_cached(
        "select coalesce((select seq from sqlite_sequence
                           where name = 'commandes_events'), 0)",
    )
    .and_then(|mut s| s.query_row([], |r| r.get(0)))
    .map_err(map_error)
}
