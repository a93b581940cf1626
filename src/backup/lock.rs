//! Who has the database open: the lock file a server holds, and SQLite's
//! own locks.
//!
//! Two signs say that a database is in use, and `backup::restore`
//! refuses on either:
//!
//! - **The lock file** `<database>.lock` (`commandes.db.lock` beside
//!   `commandes.db`). A server holds it shared for its whole life
//!   ([`DatabaseLock::shared`]: several servers or tools may share a
//!   file), a restore holds it exclusively ([`DatabaseLock::exclusive`]).
//!   The lock is the operating system's advisory whole-file lock (`flock`
//!   on Unix), so it goes away with the process, `kill -9` included, and
//!   a stale file never blocks anyone. It covers the moment a server
//!   starts while a restore runs: whichever comes second is refused.
//! - **SQLite's locks**: in WAL mode every open connection holds a shared
//!   lock on the database file for as long as it is open, so a
//!   connection that asks for the exclusive lock ([`exclusive`]) is
//!   refused while any process (a server, even of an older binary that
//!   takes no lock file, or the `sqlite3` shell) has the file open.
//!
//! # What a server does with it
//!
//! At start-up, for a SQLite file (not `sqlite::memory:`, not
//! PostgreSQL), before it opens the store: `DatabaseLock::shared(&path)`,
//! and a refusal to start on [`Error::InUse`] ("a restore of this
//! database is running"). It keeps the value until its store is closed
//! and the store's threads have ended, so that a restore never begins
//! while one of its connections is still open.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::Error;

/// The advisory lock that says "a server serves this database" (shared)
/// or "a restore replaces it" (exclusive). Held until dropped (or the
/// process ends).
#[derive(Debug)]
pub struct DatabaseLock {
    // Held open for the lock; closing it releases the lock.
    _file: File,
    path: PathBuf,
}

impl DatabaseLock {
    /// The lock file of the database at `db_path`: the same name with
    /// `.lock` added.
    pub fn path_for(db_path: &Path) -> PathBuf {
        let mut name = db_path.as_os_str().to_os_string();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// What a server takes for the database at `db_path`, without
    /// waiting (creating the lock file if needed); [`Error::InUse`] while
    /// a restore holds it. Any number of shared holders may hold it.
    pub fn shared(db_path: &Path) -> Result<DatabaseLock, Error> {
        Self::take(db_path, false)
    }

    /// What a restore takes; [`Error::InUse`] while anyone else holds
    /// the lock, shared or exclusively.
    pub fn exclusive(db_path: &Path) -> Result<DatabaseLock, Error> {
        Self::take(db_path, true)
    }

    /// The file is left in place when released: removing it could let two
    /// holders lock two different files of one name.
    fn take(db_path: &Path, exclusive: bool) -> Result<DatabaseLock, Error> {
        let path = Self::path_for(db_path);
        let file = open_lock_file(&path)?;
        let taken = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match taken {
            Ok(()) => Ok(DatabaseLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(Error::InUse(db_path.to_path_buf())),
            Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens (creating it if needed, never truncating it) a file that is only
/// ever locked, not written.
pub(super) fn open_lock_file(path: &Path) -> Result<std::fs::File, Error> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}

/// A connection that holds SQLite's exclusive lock on the database at
/// `db_path` until it is closed; [`Error::InUse`] while any other
/// connection, in any process, has the file open (in WAL mode) or is in a
/// transaction. Opening it recovers and reads a WAL left by a crash, as
/// any first connection would.
pub(crate) fn exclusive(db_path: &Path) -> Result<Connection, Error> {
    let failed = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            Error::InUse(db_path.to_path_buf())
        }
        _ => super::verify::classify(db_path, e),
    };
    let conn = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(failed)?;
    // In exclusive locking mode the first read takes the file's exclusive
    // lock and keeps it (and a WAL database's index lives in this
    // connection's memory, not in the shared `-shm`): it fails at once
    // if anyone else holds even a shared lock.
    conn.pragma_update(None, "locking_mode", "exclusive")
        .map_err(failed)?;
    conn.execute_batch("begin exclusive; commit")
        .map_err(failed)?;
    Ok(conn)
}
