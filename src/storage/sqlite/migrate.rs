//! The schema's version and the migrations that bring it up to date.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::domain::{format_time, now};
use crate::storage::migrations::{self, Migration};
use crate::storage::MigrationReport;

/// The version of the schema, 0 before the first migration.
pub(super) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let exists: bool = conn.query_row(
        "select exists (select 1 from sqlite_master where type = 'table' and name = 'commandes_schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "select coalesce(max(version), 0) from commandes_schema_migrations",
        [],
        |r| r.get(0),
    )
}

/// Applies the migrations of `history` not applied yet, in one transaction.
pub(super) fn apply_migrations(
    conn: &mut Connection,
    history: &'static [Migration],
) -> rusqlite::Result<MigrationReport> {
    // IMMEDIATE takes the write lock up front: a second process waits here
    // (busy timeout) and then finds the work done.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "create table if not exists commandes_schema_migrations (
            version    integer primary key,
            name       text not null,
            applied_at text not null
        )",
    )?;
    let from: i64 = tx.query_row(
        "select coalesce(max(version), 0) from commandes_schema_migrations",
        [],
        |r| r.get(0),
    )?;
    for m in history.iter().filter(|m| m.version > from) {
        tx.execute_batch(m.sql)?;
        tx.execute(
            "insert into commandes_schema_migrations (version, name, applied_at) values (?1, ?2, ?3)",
            params![m.version, m.name, format_time(&now())],
        )?;
    }
    tx.commit()?;
    Ok(MigrationReport {
        from,
        to: migrations::latest(history).max(from),
        notes: Vec::new(),
    })
}
