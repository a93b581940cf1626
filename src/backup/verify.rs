//! Is this file a sound `commandes` database, and what is in it?

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::{BackupInfo, Error};
use crate::storage::migrations;

/// Most lines of an integrity report kept in the error.
const REPORT_LINES: usize = 5;

/// Checks the database file at `path` without changing it: that it is a
/// SQLite file ([`Error::NotSqlite`]), that it is a `commandes` database
/// whose schema history is a prefix of this binary's ([`Error::Foreign`],
/// [`Error::NewerSchema`]), and that `PRAGMA integrity_check` finds no
/// damage ([`Error::Corrupt`]); then counts what it holds.
///
/// The whole file is read: about as long as copying it.
pub fn verify(path: &Path) -> Result<BackupInfo, Error> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => meta,
        Ok(_) => return Err(Error::NoDatabase(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoDatabase(path.to_path_buf()))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    // Read-only and no create: a backup is never changed by a check, and a
    // backup written by `snapshot` is a rollback-journal file, so reading
    // it makes no `-wal` or `-shm` beside it.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| classify(path, e))?;
    let schema_version = check_history(&conn, path)?;
    check_integrity(&conn, path)?;
    let orders: i64 = conn
        .query_row("select count(*) from commandes", [], |r| r.get(0))
        .map_err(|e| foreign_or(path, e))?;
    // AUTOINCREMENT keeps the highest number ever given in
    // `sqlite_sequence`, pruned events included (as the store reads it).
    let last_event_sequence: i64 = conn
        .query_row(
            "select coalesce((select seq from sqlite_sequence where name = 'commandes_events'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| foreign_or(path, e))?;
    Ok(BackupInfo {
        schema_version,
        latest_schema: schema_version == migrations::latest(migrations::SQLITE),
        orders: orders as u64,
        last_event_sequence,
        size: meta.len(),
    })
}

/// The schema version, once the recorded history is found to be the first
/// steps of this binary's (same versions, same names).
fn check_history(conn: &Connection, path: &Path) -> Result<i64, Error> {
    let foreign = |reason: &str| Error::Foreign {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let has_history = conn
        .query_row(
            "select 1 from sqlite_master where type = 'table' and name = 'commandes_schema_migrations'",
            [],
            |_| Ok(()),
        )
        .optional()
        .map_err(|e| classify(path, e))?
        .is_some();
    if !has_history {
        return Err(foreign("it has no commandes_schema_migrations table"));
    }
    let recorded: Vec<(i64, String)> = conn
        .prepare("select version, name from commandes_schema_migrations order by version")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| foreign_or(path, e))?;
    let known = migrations::latest(migrations::SQLITE);
    let Some(&(found, _)) = recorded.last() else {
        return Err(foreign("its schema history is empty"));
    };
    if found > known {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    for (i, (version, name)) in recorded.iter().enumerate() {
        let ours = &migrations::SQLITE[i];
        if *version != ours.version || name != ours.name {
            return Err(foreign(&format!(
                "its migration {version} is {name:?}, this binary's is {:?}",
                ours.name
            )));
        }
    }
    Ok(found)
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), Error> {
    let report: Vec<String> = conn
        .prepare(&format!("pragma integrity_check({REPORT_LINES})"))
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(|e| classify(path, e))?;
    if report.len() == 1 && report[0] == "ok" {
        Ok(())
    } else {
        Err(Error::Corrupt {
            path: path.to_path_buf(),
            detail: report.join("; "),
        })
    }
}

/// SQLite's own verdicts about a file, as ours.
pub(crate) fn classify(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotSqlite(path.to_path_buf()),
        Some(ErrorCode::DatabaseCorrupt) => Error::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => Error::Sqlite {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A query of our tables that fails on a sound file: one of them is
/// missing (SQLite's generic error: "no such table") or not shaped as ours.
fn foreign_or(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::Error as E;
    match &e {
        E::SqliteFailure(failure, _) if failure.code == ErrorCode::Unknown => Error::Foreign {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
        E::SqlInputError { .. } | E::InvalidColumnType(..) | E::FromSqlConversionFailure(..) => {
            Error::Foreign {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
        _ => classify(path, e),
    }
}
