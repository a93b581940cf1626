//! Backups of the SQLite database: consistent snapshots taken while the
//! service keeps writing, their verification, rotation, an off-machine
//! copy in an S3-compatible bucket, and restore.
//!
//! # What a backup is
//!
//! [`snapshot`] copies the live database file with SQLite's online backup
//! API, from its own read-only connection, inside one read transaction
//! that it holds from the first page to the last. In WAL mode (the store
//! always puts its file in WAL mode) that transaction sees one moment of
//! the database: the copy holds every table as it was then (orders,
//! events, idempotency keys, counters, the relay's position), so every
//! commit acknowledged before [`BackupFile::time`] is in it and none of a
//! later one is. The copy goes in steps of 16 MiB, each flushed to the
//! disk, so the dirty data waiting for writeback stays small.
//!
//! # How long writers wait
//!
//! A WAL reader takes no lock that a writer waits for: writers go on
//! committing during the copy and the check; their commits go to the WAL,
//! which cannot be folded back past the copy's moment until it ends, so
//! it grows by what is written meanwhile. What a writer can still feel is
//! the disk and the CPU that the copy (read the file, write it) and the
//! check (read it again) use. Measured with `bench/backup.sh` on a file of
//! about 1,000,000 orders (330–540 MiB) with four writers creating orders
//! without pause, on a 2-core machine shared with other builds: the
//! median and 99th percentile waits did not change (about 1 and 25–45
//! ms); the longest wait of a write during a backup was 0.2–0.5 s against
//! 0.05–0.23 s in the same runs without one. BENCHMARKS.md has the runs.
//! A backup of such a file takes 25–50 s, most of it `integrity_check`.
//!
//! # Why this method
//!
//! - Steps that each begin their own read transaction (SQLite's example
//!   of a backup of a running database) cannot finish under a steady
//!   write load: a commit by any other connection between two steps
//!   restarts the copy from the first page. Measured: still 83–99 % to go
//!   after 30–60 s and over a thousand restarts, on the file above.
//!   Holding one read transaction across the steps is what makes them
//!   work: in WAL mode it blocks no writer.
//! - `VACUUM INTO` gives the same snapshot, but rebuilds every table and
//!   index instead of copying pages: as fast or slower (5–11 s against
//!   5–10 s for the page copy of the same file), for a file smaller only
//!   by the free pages of the source, and without the flushes as it goes.
//!
//! # Every file under a backup's name was verified
//!
//! A snapshot is written to a hidden temporary name in the destination
//! folder (`.commandes-….db.partial`), synced, checked by [`verify`]
//! (`PRAGMA integrity_check`, and a schema history this binary knows),
//! then renamed to its final name (`commandes-20261207T171500.123Z.db`,
//! which sorts by time) and the folder synced. A crash or `kill -9`
//! before the rename leaves only the temporary name, which the next
//! snapshot into that folder removes. So [`list`] and [`rotate`] can take
//! every file with a final name as verified, and rotation deletes older
//! backups only once a new one exists ([`rotate`] takes it as proof).
//!
//! # Restore
//!
//! [`restore`] checks the file, refuses while anything has the database
//! open (see [`lock`]), keeps the current database beside it under a dated
//! name, and swaps the copy in with a rename.
//!
//! Everything here is synchronous file and SQLite work, except the bucket
//! ([`s3`]): an async caller runs it on a blocking thread.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

mod durable;
pub mod lock;
mod restore;
pub mod s3;
mod service;
mod snapshot;
mod verify;

pub use restore::{restore, Restored};
pub use service::{Backups, TakeError, Taken, UploadFailed};
pub use snapshot::snapshot;
pub use verify::verify;

/// The start of every backup's file name.
const NAME_PREFIX: &str = "commandes-";
/// The end of every backup's file name.
const NAME_SUFFIX: &str = ".db";
/// The time in a backup's name: UTC, to the millisecond, sorting as time.
const NAME_TIME: &str = "%Y%m%dT%H%M%S%.3fZ";

/// Why a backup, a verification, a rotation or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}", path = .path.display())]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file to back up or restore over does not exist.
    #[error("{}: no such database file", .0.display())]
    NoDatabase(PathBuf),
    /// The file is not a SQLite database at all.
    #[error("{}: not a SQLite database", .0.display())]
    NotSqlite(PathBuf),
    /// A SQLite database, but not one of `commandes` (no schema history of
    /// ours, or another history under our table's name).
    #[error("{}: not a commandes database ({reason})", .path.display())]
    Foreign { path: PathBuf, reason: String },
    /// `PRAGMA integrity_check` found damage, or reading the file did.
    #[error("{}: the integrity check failed: {detail}", .path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// The database was migrated by a newer binary than this one.
    #[error("{}: schema version {found} is newer than this binary's {known}", .path.display())]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A server (or another program) has the database open.
    #[error("{}: the database is in use (stop the server first)", .0.display())]
    InUse(PathBuf),
    /// Another snapshot is being written to the same folder.
    #[error("{}: another backup is being written to this folder", .0.display())]
    Busy(PathBuf),
    /// The bucket refused or failed a request. The text names the
    /// operation and the status; it never holds a signed URL or a key.
    #[error("S3: {0}")]
    S3(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What [`verify`] found in a backup (or any database file).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupInfo {
    /// The schema version recorded in the file.
    pub schema_version: i64,
    /// Whether that is the version this binary migrates to (an older one
    /// is migrated when a server opens the restored file).
    pub latest_schema: bool,
    /// How many orders it holds.
    pub orders: u64,
    /// The highest event sequence number ever given in it (0: none); a
    /// restored database numbers its next event above it.
    pub last_event_sequence: i64,
    /// The file's size in bytes.
    pub size: u64,
}

/// A backup just written and verified by [`snapshot`]. Only this module
/// makes one, so holding one proves a new verified backup exists, which
/// is what [`rotate`] and [`s3::Bucket::upload`] ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupFile {
    /// Where it is, under its final name.
    pub path: PathBuf,
    /// Its file name, e.g. `commandes-20261207T171500.123Z.db`.
    pub name: String,
    /// When the snapshot began: every commit acknowledged before is in it.
    pub time: DateTime<Utc>,
    /// What [`verify`] found in it.
    pub info: BackupInfo,
}

/// A backup found by [`list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupEntry {
    pub path: PathBuf,
    pub name: String,
    /// The time in its name.
    pub time: DateTime<Utc>,
    pub size: u64,
}

/// The folder the backups of the database at `db_path` go to unless the
/// settings name another: `backups` beside the file.
pub fn default_dir(db_path: &Path) -> PathBuf {
    match db_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("backups"),
        _ => PathBuf::from("backups"),
    }
}

/// The file name of a backup taken at `time`.
pub fn backup_name(time: DateTime<Utc>) -> String {
    format!("{NAME_PREFIX}{}{NAME_SUFFIX}", time.format(NAME_TIME))
}

/// The time in a backup's file name; `None` for any other name (so
/// temporary files and files that are not backups are never listed,
/// rotated or served).
pub fn parse_backup_name(name: &str) -> Option<DateTime<Utc>> {
    let time = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    let parsed = NaiveDateTime::parse_from_str(time, NAME_TIME)
        .ok()?
        .and_utc();
    // One spelling per time: `backup_name` gives back the same name.
    (backup_name(parsed) == name).then_some(parsed)
}

/// The backups in `dir`, oldest first (none when `dir` does not exist
/// yet). Only files with a backup's name count; each was verified before
/// it got that name.
pub fn list(dir: &Path) -> Result<Vec<BackupEntry>, Error> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let Some(time) = parse_backup_name(&name) else {
            continue;
        };
        let meta = entry.metadata().map_err(|e| Error::io(&entry.path(), e))?;
        if !meta.is_file() {
            continue;
        }
        found.push(BackupEntry {
            path: entry.path(),
            name,
            time,
            size: meta.len(),
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// Keeps the `keep` newest backups in `dir` (at least one: `newest`, the
/// backup just taken) and deletes the others; returns what it deleted,
/// oldest first. Taking `newest` means rotation can only run once a new
/// backup has been verified, so it never leaves fewer good backups than
/// before. Files that are not backups are never touched.
pub fn rotate(dir: &Path, keep: usize, newest: &BackupFile) -> Result<Vec<BackupEntry>, Error> {
    let all = list(dir)?;
    if !all.iter().any(|b| b.name == newest.name) {
        return Err(Error::io(
            &newest.path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the new backup is not in this folder",
            ),
        ));
    }
    let doomed = to_delete(all, keep, &newest.name, |b| &b.name);
    for backup in &doomed {
        std::fs::remove_file(&backup.path).map_err(|e| Error::io(&backup.path, e))?;
    }
    if !doomed.is_empty() {
        durable::sync_dir(dir)?;
    }
    Ok(doomed)
}

/// Of `all` (sorted oldest first), those that rotation deletes: all but
/// `newest` and the `keep - 1` newest others.
pub(crate) fn to_delete<T>(
    all: Vec<T>,
    keep: usize,
    newest: &str,
    name: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut others: Vec<T> = all.into_iter().filter(|b| name(b) != newest).collect();
    let keep_others = keep.max(1) - 1;
    let cut = others.len().saturating_sub(keep_others);
    others.truncate(cut);
    others
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_sort_by_time_and_round_trip() {
        let a = Utc.with_ymd_and_hms(2026, 12, 7, 17, 15, 0).unwrap();
        let b = a + chrono::TimeDelta::milliseconds(1);
        assert_eq!(backup_name(a), "commandes-20261207T171500.000Z.db");
        assert!(backup_name(a) < backup_name(b));
        assert_eq!(parse_backup_name(&backup_name(b)), Some(b));
        for other in [
            "commandes.db",
            ".commandes-20261207T171500.000Z.db.partial",
            "commandes-20261207T171500Z.db",
            "commandes-20261207T171500.000Z.db-journal",
            "commandes-20261307T171500.000Z.db",
        ] {
            assert_eq!(parse_backup_name(other), None, "{other}");
        }
    }

    #[test]
    fn rotation_keeps_the_newest_and_the_newest_others() {
        let all = vec!["a", "b", "c", "d", "e"];
        assert_eq!(to_delete(all.clone(), 3, "e", |s| s), vec!["a", "b"]);
        assert_eq!(
            to_delete(all.clone(), 0, "e", |s| s),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(to_delete(all.clone(), 9, "e", |s| s), Vec::<&str>::new());
        // A backup named in the future (a clock set back) does not push
        // out the one just taken.
        assert_eq!(to_delete(all, 2, "c", |s| s), vec!["a", "b", "d"]);
    }
}
