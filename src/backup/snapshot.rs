//! Taking a backup: copy, sync, verify, rename.

use std::fs::TryLockError;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::lock::open_lock_file;
use super::{backup_name, durable, verify, BackupFile, Error};

/// The lock file that keeps two snapshots out of one folder at once.
const DIR_LOCK: &str = ".commandes-backup.lock";
/// What a snapshot is called until it is verified.
const PARTIAL_SUFFIX: &str = ".partial";

/// How much a copy step writes before it flushes to the disk.
const STEP_BYTES: i64 = 16 * 1024 * 1024;

/// How long a copy retries when SQLite answers "busy" (a reader can be
/// told so for a moment while another connection recovers or restarts
/// the WAL).
const BUSY_FOR_AT_MOST: Duration = Duration::from_secs(30);

/// Takes a consistent backup of the SQLite database at `db_path` (live or
/// not) into the folder `dest_dir`, verifies it, and returns it under its
/// final name. Writers are not blocked (see the [module](super) doc).
///
/// The folder is made if missing. [`Error::Busy`] while another snapshot
/// writes to the same folder; the
/// first thing a snapshot does is remove what an interrupted one left
/// there. On failure no file with a backup's name is left behind.
pub fn snapshot(db_path: &Path, dest_dir: &Path) -> Result<BackupFile, Error> {
    std::fs::create_dir_all(dest_dir).map_err(|e| Error::io(dest_dir, e))?;
    let _lock = lock_dir(dest_dir)?;
    remove_partials(dest_dir)?;
    if !db_path.is_file() {
        return Err(Error::NoDatabase(db_path.to_path_buf()));
    }
    // Named before the copy starts: every commit acknowledged before this
    // time is in the copy.
    let mut time = Utc::now();
    let mut name = backup_name(time);
    while dest_dir.join(&name).exists() {
        // Two backups within one millisecond: the later takes the next.
        time += TimeDelta::milliseconds(1);
        name = backup_name(time);
    }
    let partial = dest_dir.join(format!(".{name}{PARTIAL_SUFFIX}"));
    let written = copy(db_path, &partial)
        .and_then(|()| durable::sync_file(&partial))
        .and_then(|()| verify(&partial));
    let info = match written {
        Ok(info) => info,
        Err(e) => {
            let _ = remove_partial(&partial);
            return Err(e);
        }
    };
    let path = dest_dir.join(&name);
    if let Err(e) = durable::rename(&partial, &path) {
        let _ = remove_partial(&partial);
        return Err(e);
    }
    Ok(BackupFile {
        path,
        name,
        time,
        info,
    })
}

/// Copies every page of the database at `db_path` (and of its WAL) into a
/// new file at `dest`, within one read transaction, so the copy is one
/// moment of the database. The copy is a rollback-journal file that holds
/// everything by itself. Flushed to the disk as it is written; the caller
/// syncs it once more at the end.
pub(crate) fn copy(db_path: &Path, dest: &Path) -> Result<(), Error> {
    let source = Connection::open_with_flags(
        db_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| super::verify::classify(db_path, e))?;
    let read = |e| super::verify::classify(db_path, e);
    source.busy_timeout(BUSY_FOR_AT_MOST).map_err(read)?;
    let failed = |e| Error::Sqlite {
        path: dest.to_path_buf(),
        source: e,
    };
    let mut target = Connection::open(dest).map_err(failed)?;
    // The copy is flushed by this function and the caller, not by SQLite.
    target
        .pragma_update(None, "synchronous", "off")
        .map_err(failed)?;
    // The read transaction of the whole copy, held by `source` itself:
    // every step reads the same moment, and commits made by others
    // between two steps do not restart the copy (they would if each step
    // began its own transaction).
    source.execute_batch("begin").map_err(read)?;
    let page_size: i64 = source
        .query_row("pragma page_size", [], |r| r.get(0))
        .map_err(read)?;
    source
        .query_row("select count(*) from sqlite_schema", [], |_| Ok(()))
        .map_err(read)?;
    let pages = (STEP_BYTES / page_size.max(512)) as std::os::raw::c_int;
    {
        let backup = Backup::new(&source, &mut target).map_err(failed)?;
        let flush = std::fs::File::open(dest).map_err(|e| Error::io(dest, e))?;
        let started = Instant::now();
        loop {
            match backup.step(pages).map_err(read)? {
                StepResult::Done => break,
                // Written pages go to the disk a step at a time, so a
                // writer's sync of the WAL never queues behind the whole
                // file. (On the disk measured, the kernel's own writeback
                // kept up too: the final sync of a one-step copy was short.)
                StepResult::More => flush.sync_data().map_err(|e| Error::io(dest, e))?,
                StepResult::Busy | StepResult::Locked if started.elapsed() < BUSY_FOR_AT_MOST => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return Err(Error::InUse(db_path.to_path_buf())),
            }
        }
    }
    source.execute_batch("commit").map_err(read)?;
    // The pages copied say "WAL" when the source is in WAL mode; a backup
    // is one self-contained file, which a reader opens without making a
    // `-wal` or `-shm` beside it.
    let mode: String = target
        .query_row("pragma journal_mode = delete", [], |r| r.get(0))
        .map_err(failed)?;
    if mode != "delete" {
        return Err(failed(rusqlite::Error::InvalidQuery));
    }
    target.close().map_err(|(_, e)| failed(e))
}

/// Holds the folder's snapshot lock until dropped.
fn lock_dir(dir: &Path) -> Result<std::fs::File, Error> {
    let path = dir.join(DIR_LOCK);
    let file = open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Busy(dir.to_path_buf())),
        Err(TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Removes what interrupted snapshots left in `dir` (the caller holds the
/// folder's lock, so none of them is still being written).
fn remove_partials(dir: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_partial(name) {
            durable::remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

/// A snapshot's temporary file, or SQLite's journal of one.
fn is_partial(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    let base = rest.strip_suffix("-journal").unwrap_or(rest);
    base.strip_suffix(PARTIAL_SUFFIX)
        .and_then(super::parse_backup_name)
        .is_some()
}

fn remove_partial(partial: &Path) -> Result<(), Error> {
    let mut journal = partial.as_os_str().to_os_string();
    journal.push("-journal");
    durable::remove_if_exists(Path::new(&journal))?;
    durable::remove_if_exists(partial)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshot_leftovers_are_partial() {
        assert!(is_partial(".commandes-20261207T171500.000Z.db.partial"));
        assert!(is_partial(
            ".commandes-20261207T171500.000Z.db.partial-journal"
        ));
        for name in [
            "commandes-20261207T171500.000Z.db",
            ".commandes-20261207T171500.000Z.db",
            "commandes.db.partial",
            ".other.db.partial",
            DIR_LOCK,
        ] {
            assert!(!is_partial(name), "{name}");
        }
    }
}
