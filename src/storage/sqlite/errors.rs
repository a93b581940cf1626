//! What SQLite's errors mean to a caller: a lock held too long, an
//! interrupted statement or a failing disk is an outage (503), never a raw
//! driver message; anything else is a backend error.

use rusqlite::ErrorCode;

use crate::storage::{Conflict, StoreError};

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
pub(super) fn map_error(e: rusqlite::Error) -> StoreError {
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

/// A failure as one line: the outage reason if it is one, else SQLite's own
/// message (the writer's log, and the reason a failed commit gives).
pub(super) fn describe(e: &rusqlite::Error) -> String {
    match map_error_ref(e) {
        Some(reason) => reason,
        None => e.to_string(),
    }
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE)
}

/// The error of a write that sets `order_id`: a 409 naming it when the
/// unique index refuses it, else as [`map_error`].
pub(super) fn map_write_error(e: rusqlite::Error, order_id: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(Conflict::DuplicateOrderId(order_id.to_string()))
    } else {
        map_error(e)
    }
}
