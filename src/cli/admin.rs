//! The one-shot commands about the database and the contract: `migrate`,
//! `check` and `openapi`.

use crate::config::Settings;
use crate::storage::migrations::{self, Mismatch};
use crate::storage::{self, Backend, DatabaseUrl, SchemaState};
use crate::{api, app};

/// Applies the pending migrations and says what changed. A database ahead
/// of this build is left as it is: success when it still accepts this
/// build (an old pod's init container during a rollback), an error naming
/// the version it needs when a later migration has contracted the schema.
pub(super) async fn migrate(settings: Settings) -> anyhow::Result<()> {
    // Through the migration URL when there is one (serving through a
    // transaction pooler): the direct or session-mode connection.
    let url = settings
        .database
        .migration_url
        .as_ref()
        .unwrap_or(&settings.database.url);
    let report = app::migrate_at(url, &app::store_options(&settings)).await?;
    for note in &report.notes {
        println!("{note}");
    }
    let history = if url.is_postgres() {
        Backend::Postgres.history()
    } else {
        Backend::Sqlite.history()
    };
    let build = migrations::latest(history);
    if report.from == report.to {
        println!("schema already at version {}", report.to);
    } else {
        println!(
            "migrated schema from version {} to {}",
            report.from, report.to
        );
    }
    let state = SchemaState {
        version: report.to,
        compatible_from: report.compatible_from,
    };
    state.verdict(history).map_err(|m| anyhow::anyhow!("{m}"))?;
    if report.to > build {
        println!(
            "this build is at version {build}; the schema accepts builds from version {}",
            report.compatible_from
        );
    }
    Ok(())
}

/// Reports the database as it is now, or why it cannot be reached.
pub(super) async fn check(settings: Settings) -> anyhow::Result<()> {
    let url = &settings.database.url;
    // A check must not create the database it is checking.
    if let DatabaseUrl::SqliteFile(path) = url {
        if !path.exists() {
            anyhow::bail!("no SQLite database at {}", path.display());
        }
    }
    // A check reports the database as it is now: no waiting for it.
    let mut options = app::store_options(&settings);
    options.startup_timeout = std::time::Duration::ZERO;
    let store = storage::open(url, &options).await?;
    let info = store.info().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot query {url}: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    println!("backend:        {}", info.backend);
    println!("database:       {url}");
    println!("server version: {}", info.server_version);
    println!("schema version: {}", info.schema.version);
    println!(
        "accepts builds: of schema version {} or later",
        info.schema.compatible_from
    );
    let verdict = info.schema.verdict(info.backend.history());
    match &verdict {
        Ok(()) => println!("this build:     may serve it"),
        Err(mismatch) => println!("this build:     {mismatch}"),
    }
    println!("orders:         {}", info.order_count);
    store.close().await;
    // A database behind this build is the usual state before `migrate`
    // (`check && serve` is how a first start reads); one that no longer
    // accepts this build is a failure: no migration of this build fixes it.
    match verdict {
        Err(mismatch @ Mismatch::TooNew { .. }) => Err(anyhow::anyhow!("{mismatch}")),
        _ => Ok(()),
    }
}

/// Prints the OpenAPI document (the one `/openapi.json` serves).
pub(super) async fn openapi() -> anyhow::Result<()> {
    let store = storage::open(&DatabaseUrl::SqliteMemory, &Default::default()).await?;
    println!("{}", api::spec_json(store));
    Ok(())
}
