//! The relay's lease and position (`commandes_event_relay`): one holder at a
//! time publishes the events, and records how far it got. Times are
//! milliseconds since the Unix epoch.

use rusqlite::{params, Connection, OptionalExtension};

use super::errors::map_error;
use crate::storage::StoreError;

/// Takes or renews the lease `name` for `holder` until `until`, if it is
/// free, expired at `now`, or already `holder`'s; its position if so.
pub(super) fn claim(
    conn: &Connection,
    name: &str,
    holder: &str,
    until: i64,
    now: i64,
) -> Result<Option<i64>, StoreError> {
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
}

/// Moves the position forward (never back) and renews the lease, if
/// `holder` still holds it.
pub(super) fn advance(
    conn: &Connection,
    name: &str,
    holder: &str,
    position: i64,
    until: i64,
) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "update commandes_event_relay
            set position = max(position, ?3), lease_until = ?4
          where name = ?1 and holder = ?2",
    )
    .and_then(|mut s| s.execute(params![name, holder, position, until]))
    .map(|n| n == 1)
    .map_err(map_error)
}

/// Gives the lease up, if `holder` holds it.
pub(super) fn release(conn: &Connection, name: &str, holder: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "update commandes_event_relay set holder = null, lease_until = 0
          where name = ?1 and holder = ?2",
    )
    .and_then(|mut s| s.execute(params![name, holder]))
    .map(|_| ())
    .map_err(map_error)
}

/// The recorded position of the relay `name`, if it has ever run.
pub(super) fn position(conn: &Connection, name: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("select position from commandes_event_relay where name = ?1")
        .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
        .map_err(map_error)
}
