//! Idempotency keys: the outcome stored with each key, and the claims of
//! the creates running in this process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::errors::map_error;
use super::queries::row_to_order;
use crate::domain::{format_time, IdempotencyKey, Order};
use crate::storage::StoreError;

/// The unexpired outcome stored with `key`: its fingerprint and order.
pub(super) fn stored_key(
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

/// Stores `created` as the outcome of `key` until `expires`.
pub(super) fn store_key(
    conn: &Connection,
    key: &IdempotencyKey,
    created: &Order,
    expires: &DateTime<Utc>,
) -> Result<(), StoreError> {
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
            format_time(expires),
        ],
    )
    .map_err(map_error)?;
    Ok(())
}

/// Deletes up to 1,000 keys expired at `now`.
pub(super) fn purge_expired_keys(
    conn: &Connection,
    now: &DateTime<Utc>,
) -> Result<u64, StoreError> {
    conn.execute(
        "delete from commandes_idempotency_keys where rowid in
         (select rowid from commandes_idempotency_keys where expires_at <= ?1 limit 1000)",
        [format_time(now)],
    )
    .map(|n| n as u64)
    .map_err(map_error)
}

/// Keys of the creates running in this process.
pub(super) type InFlightKeys = Arc<Mutex<HashSet<(String, String)>>>;

/// A claim on one key of [`InFlightKeys`], released when dropped, whatever
/// happens to the request.
pub(super) struct InFlight {
    set: InFlightKeys,
    entry: (String, String),
}

impl InFlight {
    pub(super) fn claim(set: &InFlightKeys, key: &IdempotencyKey) -> Result<InFlight, StoreError> {
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
