//! The schema's version and the migrations that bring it up to date.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::domain::{format_time, now};
use crate::storage::migrations::{self, Migration, SchemaState};
use crate::storage::MigrationReport;

/// The schema's version (0 before the first migration) and the oldest
/// version of the builds it accepts, read from the version table's few
/// rows. A row without a declaration counts as accepting only its own
/// version; a table without the column (a database no build of this kind
/// has migrated) as accepting what this build knows of its versions.
pub(super) fn schema_state(conn: &Connection) -> rusqlite::Result<SchemaState> {
    let (exists, declared): (bool, bool) = conn.query_row(
        "select exists (select 1 from sqlite_master where type = 'table' and name = 'commandes_schema_migrations'),
                exists (select 1 from pragma_table_info('commandes_schema_migrations') where name = 'compatible_from')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !exists {
        return Ok(SchemaState {
            version: 0,
            compatible_from: 0,
        });
    }
    if !declared {
        let version: i64 = conn.query_row(
            "select coalesce(max(version), 0) from commandes_schema_migrations",
            [],
            |r| r.get(0),
        )?;
        return Ok(SchemaState {
            version,
            compatible_from: migrations::declared_compatible_from(migrations::SQLITE, version)
                .unwrap_or(version),
        });
    }
    conn.query_row(
        "select coalesce(max(version), 0), coalesce(max(coalesce(compatible_from, version)), 0)
         from commandes_schema_migrations",
        [],
        |r| {
            Ok(SchemaState {
                version: r.get(0)?,
                compatible_from: r.get(1)?,
            })
        },
    )
}

/// Applies the migrations of `history` not applied yet, in one transaction.
/// A database ahead of this build is left as it is (nothing is ever
/// undone): whether this build may serve it is [`SchemaState::verdict`]'s
/// call.
pub(super) fn apply_migrations(
    conn: &mut Connection,
    history: &'static [Migration],
) -> rusqlite::Result<MigrationReport> {
    // IMMEDIATE takes the write lock up front: a second process waits here
    // (busy timeout) and then finds the work done.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "create table if not exists commandes_schema_migrations (
            version         integer primary key,
            name            text not null,
            applied_at      text not null,
            compatible_from integer
        )",
    )?;
    // A table written before `compatible_from` existed: the column, and
    // the declarations of the versions this build knows. (Readers are not
    // held up: in WAL mode they keep reading the last commit.)
    let declared: bool = tx.query_row(
        "select exists (select 1 from pragma_table_info('commandes_schema_migrations') where name = 'compatible_from')",
        [],
        |r| r.get(0),
    )?;
    if !declared {
        tx.execute_batch(
            "alter table commandes_schema_migrations add column compatible_from integer",
        )?;
        for m in history {
            tx.execute(
                "update commandes_schema_migrations set compatible_from = ?2
                 where version = ?1 and compatible_from is null",
                params![m.version, m.compatible_from],
            )?;
        }
    }
    let from: i64 = tx.query_row(
        "select coalesce(max(version), 0) from commandes_schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for m in history.iter().filter(|m| m.version > from) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "insert into commandes_schema_migrations (version, name, applied_at, compatible_from)
             values (?1, ?2, ?3, ?4)",
            params![m.version, m.name, format_time(&now()), m.compatible_from],
        )?;
    }
    let state = schema_state(&tx)?;
    tx.commit()?;
    Ok(MigrationReport {
        from,
        to: state.version,
        compatible_from: state.compatible_from,
        notes: Vec::new(),
    })
}
