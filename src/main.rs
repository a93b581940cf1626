//! Parse the command line, load the settings, start tracing, run the
//! subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use commandes::cli::{Cli, Command};
use commandes::config::Settings;
use commandes::storage::{self, DatabaseUrl};
use commandes::{api, app};
use tracing_subscriber::EnvFilter;

/// mimalloc: fewer, faster allocations per request than the system
/// allocator, and a smaller resident set with many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        // The driver logs every server NOTICE at info; those are not ours to show.
        .unwrap_or_else(|_| EnvFilter::new(format!("{},tokio_postgres=warn", settings.log.level)));
    let json = match settings.log.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    // Logs go to stderr, so that stdout carries only what a command prints
    // (the spec, the check report).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(
        cli.config.as_deref(),
        |k| std::env::var(k).ok(),
        &cli.overrides(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("commandes: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::Check => check(settings).await,
        Command::Openapi => openapi().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("commandes: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = %settings.redacted(), "starting");
    let shutdown = shutdown_signal();
    let app = app::build(&settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, backend = %app.store().backend(), "listening");
    if let Some(token) = &app.generated_token {
        // Printed, never logged: it is a secret, shown once to the person
        // who started the service.
        let host = if settings.server.host == "0.0.0.0" {
            "localhost"
        } else {
            &settings.server.host
        };
        println!("\nNo API token configured: generated one for this run.\n");
        println!("  docs:  http://{host}:{}/docs", addr.port());
        println!("  token: {token}\n");
        println!(
            "  curl -H 'Authorization: Bearer {token}' http://{host}:{}/stats\n",
            addr.port()
        );
        println!("Set COMMANDES_API_TOKENS (or auth.tokens) to choose your own.\n");
    }
    app.run(shutdown).await
}

/// SIGINT (Ctrl-C) or SIGTERM (what orchestrators send). The handlers are
/// installed when this is called, not when the future is first polled: a
/// SIGTERM that arrives right after start-up must start a graceful
/// shutdown, not kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}

async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let store = storage::open(&settings.database.url, &app::store_options(&settings)).await?;
    let report = store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("migration failed: {}", commandes::error::error_chain(&e)))?;
    if report.from == report.to {
        println!("schema already at version {}", report.to);
    } else {
        println!(
            "migrated schema from version {} to {}",
            report.from, report.to
        );
    }
    store.close().await;
    Ok(())
}

async fn check(settings: Settings) -> anyhow::Result<()> {
    let url = &settings.database.url;
    // A check must not create the database it is checking.
    if let Ok(DatabaseUrl::SqliteFile(path)) = DatabaseUrl::parse(url) {
        if !path.exists() {
            anyhow::bail!("no SQLite database at {}", path.display());
        }
    }
    let store = storage::open(url, &app::store_options(&settings)).await?;
    let info = store.info().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot query {}: {}",
            storage::redact_url(url),
            commandes::error::error_chain(&e)
        )
    })?;
    println!("backend:        {}", info.backend);
    println!("database:       {}", storage::redact_url(url));
    println!("server version: {}", info.server_version);
    println!("schema version: {}", info.schema_version);
    println!("orders:         {}", info.order_count);
    store.close().await;
    Ok(())
}

async fn openapi() -> anyhow::Result<()> {
    let store = storage::open("sqlite::memory:", &Default::default()).await?;
    println!("{}", api::spec_json(store));
    Ok(())
}
