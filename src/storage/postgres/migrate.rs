//! Migrating a PostgreSQL database: the files of `sql/postgres/` not yet
//! recorded in `commandes_schema_migrations`, applied in one transaction.
//!
//! Several replicas may start at once: an advisory lock makes the others
//! wait for the first and then find nothing to do. A database still holding
//! the original service's table, unmanaged, is adopted first ([`adopt`]).

use tokio_postgres::types::Type;

use super::adopt;
use super::errors::map_error;
use crate::storage::migrations::{self, Migration};
use crate::storage::{MigrationReport, StoreError};

/// Any key will do, as long as every process uses the same one: it
/// serialises concurrent migration runs (a transaction-level lock, so it is
/// released at commit and works through a transaction pooler).
const MIGRATION_LOCK: i64 = 0x636f_6d6d_616e_6465; // "commande"

/// Applies the pending files of `history` in one transaction, under a
/// transaction-level advisory lock (released at commit, so it works
/// through a transaction pooler), adopting the original service's table
/// first if it is there (see [`adopt`]).
pub(super) async fn apply_migrations(
    client: &mut deadpool_postgres::Object,
    history: &'static [Migration],
) -> Result<MigrationReport, StoreError> {
    let tx = client.transaction().await.map_err(map_error)?;
    // A second process blocks here until the first commits, then sees the
    // versions it recorded and has nothing left to do.
    tx.query_typed(
        "select pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await
    .map_err(map_error)?;
    let notes = adopt::adopt_original(&tx).await.map_err(|e| match e {
        adopt::AdoptError::Db(e) => map_error(e),
        adopt::AdoptError::Refused(r) => StoreError::backend(r),
    })?;
    tx.batch_execute(
        "create table if not exists commandes_schema_migrations (
            version    bigint primary key,
            name       text not null,
            applied_at timestamptz not null default now()
        )",
    )
    .await
    .map_err(map_error)?;
    let from: i64 = tx
        .query_typed(
            "select coalesce(max(version), 0)::int8 from commandes_schema_migrations",
            &[],
        )
        .await
        .map_err(map_error)?[0]
        .get(0);
    for m in history.iter().filter(|m| m.version > from) {
        tx.batch_execute(m.sql).await.map_err(map_error)?;
        tx.execute_typed(
            "insert into commandes_schema_migrations (version, name) values ($1, $2)",
            &[(&m.version, Type::INT8), (&m.name, Type::TEXT)],
        )
        .await
        .map_err(map_error)?;
    }
    tx.commit().await.map_err(map_error)?;
    for note in &notes {
        tracing::info!(note = %note, "database adopted");
    }
    Ok(MigrationReport {
        from,
        to: migrations::latest(history).max(from),
        notes,
    })
}
