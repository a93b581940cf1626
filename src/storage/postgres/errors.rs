//! What a PostgreSQL failure means: a reason to wait at start-up or to
//! give up ([`Probe`]), an outage (503) or a bug (500) once serving
//! ([`map_error`]).
//!
//! In one place because the same SQLSTATE codes, I/O errors and PgBouncer
//! messages decide both questions.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::storage::{Conflict, StoreError};

/// Why a start-up connection attempt failed, and whether to try again.
pub(super) enum Probe {
    /// Refused, reset, timed out, starting up, too many connections: it
    /// may pass by itself.
    Transient(String),
    /// A wrong password, TLS, an unknown database, …: it will not.
    Fatal(String),
}

pub(super) fn classify_pool_error(e: PoolError) -> Probe {
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(_) => Probe::Transient("timed out connecting".into()),
        other => Probe::Fatal(other.to_string()),
    }
}

/// Sorts a connection failure into [`Probe`].
pub(super) fn classify(e: &tokio_postgres::Error) -> Probe {
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
pub(super) fn map_pool_error(e: PoolError) -> StoreError {
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
pub(super) fn map_error(e: tokio_postgres::Error) -> StoreError {
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

pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The error of a write that sets `order_id`: a 409 naming it when the
/// unique index refuses it, else as [`map_error`].
pub(super) fn map_write_error(e: tokio_postgres::Error, order_id: &str) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(Conflict::DuplicateOrderId(order_id.to_string()))
    } else {
        map_error(e)
    }
}
