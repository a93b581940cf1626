//! Migrating a PostgreSQL database: the files of `sql/postgres/` not yet
//! recorded in `commandes_schema_migrations`, applied in one transaction.
//!
//! Several replicas may start at once: an advisory lock makes the others
//! wait for the first and then find nothing to do. A database still holding
//! the original service's table, unmanaged, is adopted first ([`adopt`]).
//! A database ahead of this build is left as it is (nothing is ever
//! undone): whether this build may serve it is [`SchemaState::verdict`]'s
//! call, on the `compatible_from` the later migrations recorded.

use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

use super::adopt;
use super::errors::map_error;
use crate::storage::migrations::{self, Migration, SchemaState};
use crate::storage::{MigrationReport, StoreError};

/// Any key will do, as long as every process uses the same one: it
/// serialises concurrent migration runs (a transaction-level lock, so it is
/// released at commit and works through a transaction pooler).
const MIGRATION_LOCK: i64 = 0x636f_6d6d_616e_6465; // "commande"

/// Waits for the migration lock, held until `tx` ends: one process at a
/// time changes the schema or its version table.
async fn lock_migrations(tx: &tokio_postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.query_typed(
        "select pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await
    .map_err(map_error)?;
    Ok(())
}

/// Applies the pending files of `history` in one transaction, under a
/// transaction-level advisory lock (released at commit, so it works
/// through a transaction pooler), adopting the original service's table
/// first if it is there (see [`adopt`]).
pub(super) async fn apply_migrations(
    client: &mut deadpool_postgres::Object,
    history: &'static [Migration],
) -> Result<MigrationReport, StoreError> {
    declare_compatibility(client, history).await?;
    let tx = client.transaction().await.map_err(map_error)?;
    // A second process blocks here until the first commits, then sees the
    // versions it recorded and has nothing left to do.
    lock_migrations(&tx).await?;
    let notes = adopt::adopt_original(&tx).await.map_err(|e| match e {
        adopt::AdoptError::Db(e) => map_error(e),
        adopt::AdoptError::Refused(r) => StoreError::backend(r),
    })?;
    tx.batch_execute(
        "create table if not exists commandes_schema_migrations (
            version    bigint primary key,
            name       text not null,
            applied_at timestamptz not null default now(),
            compatible_from bigint
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
            "insert into commandes_schema_migrations (version, name, compatible_from)
             values ($1, $2, $3)",
            &[
                (&m.version, Type::INT8),
                (&m.name, Type::TEXT),
                (&m.compatible_from, Type::INT8),
            ],
        )
        .await
        .map_err(map_error)?;
    }
    let state = schema_state(&*tx).await.map_err(map_error)?;
    tx.commit().await.map_err(map_error)?;
    for note in &notes {
        tracing::info!(note = %note, "database adopted");
    }
    Ok(MigrationReport {
        from,
        to: state.version,
        compatible_from: state.compatible_from,
        notes,
    })
}

/// Gives a version table written before `compatible_from` existed its
/// column, and the rows this build knows their declared values. In a short
/// transaction of its own: altering the table locks out its readers (every
/// replica's readiness probe) until commit, which must not last as long as
/// the migrations themselves may. Once the column is there, this is one
/// catalogue read.
async fn declare_compatibility(
    client: &mut deadpool_postgres::Object,
    history: &'static [Migration],
) -> Result<(), StoreError> {
    const MISSING: &str = "select to_regclass('commandes_schema_migrations') is not null
           and not exists (select 1 from pg_attribute
                           where attrelid = to_regclass('commandes_schema_migrations')
                             and attname = 'compatible_from' and not attisdropped)";
    let missing: bool = client.query_typed(MISSING, &[]).await.map_err(map_error)?[0].get(0);
    if !missing {
        return Ok(());
    }
    let tx = client.transaction().await.map_err(map_error)?;
    lock_migrations(&tx).await?;
    // Another process may have done it while this one waited for the lock.
    let missing: bool = tx.query_typed(MISSING, &[]).await.map_err(map_error)?[0].get(0);
    if missing {
        tx.batch_execute(
            "alter table commandes_schema_migrations add column compatible_from bigint",
        )
        .await
        .map_err(map_error)?;
        for m in history {
            tx.execute_typed(
                "update commandes_schema_migrations set compatible_from = $2
                 where version = $1 and compatible_from is null",
                &[(&m.version, Type::INT8), (&m.compatible_from, Type::INT8)],
            )
            .await
            .map_err(map_error)?;
        }
    }
    tx.commit().await.map_err(map_error)
}

/// The schema's version and the oldest version of the builds it accepts:
/// one statement over the version table's few rows. A row without a
/// declaration (none should be left) counts as accepting only its own
/// version; a table without the column (a database no build of this kind
/// has migrated) as accepting what this build knows of its versions.
pub(super) async fn schema_state(
    client: &impl GenericClient,
) -> Result<SchemaState, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            "select coalesce(max(version), 0)::int8,
                    coalesce(max(coalesce(compatible_from, version)), 0)::int8
             from commandes_schema_migrations",
            &[],
        )
        .await;
    match rows {
        Ok(rows) => Ok(SchemaState {
            version: rows[0].get(0),
            compatible_from: rows[0].get(1),
        }),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(SchemaState {
            version: 0,
            compatible_from: 0,
        }),
        Err(e) if e.code() == Some(&SqlState::UNDEFINED_COLUMN) => {
            let version: i64 = client
                .query_typed(
                    "select coalesce(max(version), 0)::int8 from commandes_schema_migrations",
                    &[],
                )
                .await?[0]
                .get(0);
            let compatible_from =
                migrations::declared_compatible_from(migrations::POSTGRES, version)
                    .unwrap_or(version);
            Ok(SchemaState {
                version,
                compatible_from,
            })
        }
        Err(e) => Err(e),
    }
}
