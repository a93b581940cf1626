//! Putting a backup in the database's place.

use std::path::{Path, PathBuf};

use chrono::{TimeDelta, Utc};

use super::lock::{self, DatabaseLock};
use super::{durable, verify, BackupInfo, Error};

/// What [`restore`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Restored {
    /// What the restored database holds.
    pub info: BackupInfo,
    /// Where the database that was replaced is now (`None`: there was
    /// none), e.g. `commandes.db.before-restore-20261207T171500.123Z`.
    pub kept: Option<PathBuf>,
}

/// Makes the database at `db_path` a copy of the backup at `backup`,
/// which is left as it is.
///
/// Refused, with nothing changed, when the backup fails [`verify`]
/// (damaged, not a `commandes` database, or from a newer binary), or
/// while a server holds the database ([`Error::InUse`]: its lock file, or
/// any open connection; see [`lock`]). Otherwise:
///
/// 1. the current database's WAL is folded into its file (as a clean
///    shutdown does), so that file alone holds all of it;
/// 2. the backup is copied (by SQLite, as [`super::snapshot`] copies) to
///    a temporary name beside the database, synced and verified again
///    (the copy is what will be served);
/// 3. the current file gets a second name,
///    `<database>.before-restore-<time>`, and its `-wal` and `-shm`, now
///    stale, are removed: a WAL left beside the new file would be
///    replayed into it;
/// 4. the copy is renamed over the database, and the folder synced.
///
/// The database's name never points at a half-written file: before step
/// 4 it is the old database, after it the new one. The lock file is held
/// throughout, so a server that takes it at start-up cannot start in the
/// middle.
pub fn restore(backup: &Path, db_path: &Path) -> Result<Restored, Error> {
    verify(backup)?;
    let _lock = DatabaseLock::exclusive(db_path)?;
    let exists = db_path.exists();
    // Whether the current database could be read (and its WAL folded):
    // one that cannot (a damaged file: what a restore is often for) is
    // replaced all the same, and kept as it is, side files included.
    let folded = exists && fold_wal(db_path)?;
    let dir = durable::parent(db_path);
    let file_name = db_path
        .file_name()
        .ok_or_else(|| Error::NoDatabase(db_path.to_path_buf()))?
        .to_string_lossy()
        .into_owned();
    let staged = dir.join(format!(".{file_name}.restoring"));
    // What an interrupted restore may have left.
    remove_staged(&staged)?;
    let info = match stage(backup, &staged) {
        Ok(info) => info,
        Err(e) => {
            let _ = remove_staged(&staged);
            return Err(e);
        }
    };
    let kept = if exists {
        match keep_beside(db_path, dir, &file_name, folded) {
            Ok(kept) => Some(kept),
            Err(e) => {
                let _ = remove_staged(&staged);
                return Err(e);
            }
        }
    } else {
        None
    };
    durable::rename(&staged, db_path)?;
    Ok(Restored { info, kept })
}

/// Folds the WAL of the database into its file and closes it, holding
/// SQLite's exclusive lock meanwhile; [`Error::InUse`] if anything has it
/// open. Closing the last connection removes the `-wal`; a `-shm` may
/// stay, and is removed later with the other stale files. `false` when
/// the file is not a readable database: nothing can have it open then.
fn fold_wal(db_path: &Path) -> Result<bool, Error> {
    // Not even SQLite's header: no SQLite connection may touch it, since
    // closing one would take the `-wal` beside it for its own and delete it.
    if !has_sqlite_header(db_path)? {
        return Ok(false);
    }
    match try_fold_wal(db_path) {
        Ok(()) => Ok(true),
        Err(Error::NotSqlite(_) | Error::Corrupt { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

fn try_fold_wal(db_path: &Path) -> Result<(), Error> {
    let conn = lock::exclusive(db_path)?;
    let failed = |e| super::verify::classify(db_path, e);
    let mode: String = conn
        .query_row("pragma journal_mode", [], |r| r.get(0))
        .map_err(failed)?;
    if mode == "wal" {
        let busy: i64 = conn
            .query_row("pragma wal_checkpoint(truncate)", [], |r| r.get(0))
            .map_err(failed)?;
        if busy != 0 {
            return Err(Error::InUse(db_path.to_path_buf()));
        }
    }
    conn.close().map_err(|(_, e)| failed(e))
}

/// Whether the file starts as every SQLite database does (an empty file
/// counts: SQLite takes it for an empty database).
fn has_sqlite_header(path: &Path) -> Result<bool, Error> {
    use std::io::Read;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let mut head = Vec::with_capacity(MAGIC.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(MAGIC.len() as u64).read_to_end(&mut head))
        .map_err(|e| Error::io(path, e))?;
    Ok(head.is_empty() || head == MAGIC)
}

/// Copies `backup` to `staged`, syncs and verifies the copy. The copy is
/// made by SQLite, as a snapshot is: a backup given in WAL mode with its
/// `-wal` beside it (a file copied from a stopped server, say) arrives
/// whole, as one file.
fn stage(backup: &Path, staged: &Path) -> Result<BackupInfo, Error> {
    super::snapshot::copy(backup, staged)?;
    durable::sync_file(staged)?;
    verify(staged)
}

/// Gives the current database a second, dated name and removes its stale
/// `-wal`, `-shm` and `-journal` (or, when its WAL could not be folded,
/// moves them beside the kept file); returns the second name. A hard link
/// keeps the database's own name on the old file until the swap; where
/// the file system has no hard links, a rename moves it.
fn keep_beside(
    db_path: &Path,
    dir: &Path,
    file_name: &str,
    folded: bool,
) -> Result<PathBuf, Error> {
    let wal = side_file(db_path, "-wal");
    if folded && std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        // Written since the WAL was folded: something opened the database
        // without taking the lock file.
        return Err(Error::InUse(db_path.to_path_buf()));
    }
    let mut time = Utc::now();
    let kept = loop {
        let stamp = time.format(super::NAME_TIME);
        let kept = dir.join(format!("{file_name}.before-restore-{stamp}"));
        match std::fs::hard_link(db_path, &kept) {
            Ok(()) => break kept,
            // Never over an earlier kept database: the next millisecond.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                time += TimeDelta::milliseconds(1)
            }
            Err(_) if !kept.exists() => {
                std::fs::rename(db_path, &kept).map_err(|e| Error::io(&kept, e))?;
                break kept;
            }
            Err(e) => return Err(Error::io(&kept, e)),
        }
    };
    for side in ["-wal", "-shm", "-journal"] {
        let stale = side_file(db_path, side);
        if folded || !stale.exists() {
            durable::remove_if_exists(&stale)?;
        } else {
            let beside = side_file(&kept, side);
            std::fs::rename(&stale, &beside).map_err(|e| Error::io(&beside, e))?;
        }
    }
    durable::sync_dir(dir)?;
    Ok(kept)
}

/// Removes the staged copy and its journal, if there.
fn remove_staged(staged: &Path) -> Result<(), Error> {
    durable::remove_if_exists(&side_file(staged, "-journal"))?;
    durable::remove_if_exists(staged)
}

/// `db_path` with `suffix` added (SQLite's names for its side files).
fn side_file(db_path: &Path, suffix: &str) -> PathBuf {
    let mut path = db_path.as_os_str().to_os_string();
    path.push(suffix);
    PathBuf::from(path)
}
