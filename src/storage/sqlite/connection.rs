//! Opening connections with the settings each role relies on: the one
//! writing connection, the read-only readers, and the single connection of
//! a memory database.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::interrupt::interrupt_past_deadline;
use crate::storage::{SqliteSync, StoreOptions};

/// Page cache per connection, in KiB. Small on purpose: the operating
/// system caches the file for every connection at once, so a large private
/// cache per connection mostly adds resident memory.
const CACHE_KIB: u32 = 512;

/// Opens the writing connection with the settings every write relies on.
pub(super) fn open_writer(path: &Path, options: &StoreOptions) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(options.busy_timeout)?;
    // WAL lets readers work while a writer commits; FULL syncs the WAL on
    // every commit, so an acknowledged order survives a power loss.
    enable_wal(&conn, options.busy_timeout)?;
    let sync = match options.sqlite_synchronous {
        SqliteSync::Full => "full",
        SqliteSync::Normal => "normal",
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

/// Puts the file in WAL mode, trying again until `timeout` while another
/// process holds it. Two processes opening a new file at once (two
/// `migrate`s, replicas starting together) both take a shared lock and
/// then want the exclusive one to switch the journal; SQLite answers one
/// of them `SQLITE_BUSY` at once rather than run its busy handler, since
/// waiting there could deadlock. Its try ends with its statement, so the
/// next one can wait its turn.
fn enable_wal(conn: &Connection, timeout: Duration) -> rusqlite::Result<()> {
    let until = Instant::now() + timeout;
    loop {
        match conn.query_row("pragma journal_mode = wal", [], |_| Ok(())) {
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < until =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// Opens a read-only connection for a reader thread.
pub(super) fn open_reader(path: &Path, busy: Duration) -> rusqlite::Result<Connection> {
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

/// Opens a private in-memory database, whose one connection serves both
/// writes and reads.
pub(super) fn open_memory() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    interrupt_past_deadline(&conn);
    Ok(conn)
}
