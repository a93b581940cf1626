//! Parse the command line, load the settings, start tracing, run the
//! subcommand.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use commandes::cli::{self as cli, Cli, Command};
use commandes::config::Settings;
use commandes::domain::generate::Spec;
use commandes::domain::{ListFilter, ListScope};
use commandes::secret::redact_url;
use commandes::storage::{self, DatabaseUrl, ExportFilter, Store};
use commandes::transfer::{self, Format};
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
        Command::Import(args) => import(settings, args).await,
        Command::Export(args) => export(settings, args).await,
        Command::Copy(args) => copy(settings, args).await,
        Command::Generate(args) => generate(settings, args).await,
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
    if report.from == report.to {
        println!("schema already at version {}", report.to);
    } else {
        println!(
            "migrated schema from version {} to {}",
            report.from, report.to
        );
    }
    Ok(())
}

async fn check(settings: Settings) -> anyhow::Result<()> {
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
            commandes::error_chain::error_chain(&e)
        )
    })?;
    println!("backend:        {}", info.backend);
    println!("database:       {url}");
    println!("server version: {}", info.server_version);
    println!("schema version: {}", info.schema_version);
    println!("orders:         {}", info.order_count);
    store.close().await;
    Ok(())
}

async fn openapi() -> anyhow::Result<()> {
    let store = storage::open(&DatabaseUrl::SqliteMemory, &Default::default()).await?;
    println!("{}", api::spec_json(store));
    Ok(())
}

/// Opens the store at `url` for a data command; `migrate` creates the
/// schema (and a SQLite file), otherwise the database must already exist.
async fn open_for_transfer(
    settings: &Settings,
    url: &DatabaseUrl,
    migrate: bool,
) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if !migrate {
        if let DatabaseUrl::SqliteFile(path) = url {
            if !path.exists() {
                anyhow::bail!("no SQLite database at {}", path.display());
            }
        }
    }
    let mut options = app::store_options(settings);
    options.pool_size = options.pool_size.min(2);
    let store = storage::open(url, &options).await?;
    if migrate {
        store.migrate().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot migrate {url}: {}",
                commandes::error_chain::error_chain(&e)
            )
        })?;
    }
    Ok(store)
}

/// A database URL given as a flag (`--from`, `--to`), parsed.
fn database_url(url: &commandes::secret::Secret) -> anyhow::Result<DatabaseUrl> {
    DatabaseUrl::parse(url.expose()).map_err(anyhow::Error::msg)
}

/// The format a file name asks for, else `fallback`.
fn format_for(
    explicit: Option<Format>,
    path: Option<&std::path::Path>,
    fallback: Format,
) -> Format {
    explicit
        .or_else(|| path.and_then(Format::from_path))
        .unwrap_or(fallback)
}

async fn import(settings: Settings, args: cli::ImportArgs) -> anyhow::Result<()> {
    let store = open_for_transfer(&settings, &settings.database.url, true).await?;
    let import_args = transfer::import::ImportArgs {
        inputs: args
            .files
            .iter()
            .map(|f| transfer::import::Input::parse(f))
            .collect(),
        format: args.format,
        on_conflict: args.on_conflict.into(),
        skip_invalid: args.skip_invalid,
        rejects: args.rejects,
        max_problems: args.max_errors.max(1),
        new_ids: args.new_ids,
        progress: !args.no_progress,
    };
    let report = transfer::import::import(store.as_ref(), &import_args).await;
    store.close().await;
    let report = report?;
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    if report.more_problems {
        eprintln!(
            "… and more (only the first {} are listed)",
            import_args.max_problems
        );
    }
    println!("{}", report.summary);
    if !report.committed {
        anyhow::bail!(
            "import refused: {} problem{} listed above; nothing was written",
            report.problems.len(),
            if report.problems.len() == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

async fn export(settings: Settings, args: cli::ExportArgs) -> anyhow::Result<()> {
    // An export has no `skip`: it takes every order the filters admit.
    let filter = ListFilter::from_query(&args.query_pairs(), ListScope::All, 0)
        .map_err(|e| anyhow::anyhow!("bad filter: {}", e.summary().replace('_', "-")))?;
    let store = open_for_transfer(&settings, &settings.database.url, false).await?;
    let export_args = transfer::export::ExportArgs {
        format: format_for(args.format, args.output.as_deref(), Format::Csv),
        output: args.output,
        filter: ExportFilter::from(&filter),
        progress: !args.no_progress,
    };
    let report = transfer::export::export(store.as_ref(), &export_args).await;
    store.close().await;
    let report = report?;
    // stdout may be the data: the figures go to stderr.
    let secs = report.elapsed.as_secs_f64();
    eprintln!(
        "exported {} orders in {secs:.2} s ({} rows/s)",
        report.rows,
        if secs > 0.0 {
            (report.rows as f64 / secs) as u64
        } else {
            0
        }
    );
    Ok(())
}

async fn copy(settings: Settings, args: cli::CopyArgs) -> anyhow::Result<()> {
    let source = open_for_transfer(&settings, &database_url(&args.from)?, false).await?;
    let target = open_for_transfer(&settings, &database_url(&args.to)?, true).await?;
    let report = transfer::copy::copy(source.as_ref(), target.as_ref(), !args.no_progress).await;
    source.close().await;
    target.close().await;
    let report = report?;
    let secs = report.elapsed.as_secs_f64();
    println!("from:     {}", redact_url(args.from.expose()));
    println!("to:       {}", redact_url(args.to.expose()));
    println!("copied:   {} orders in {secs:.2} s", report.copied);
    println!(
        "source:   {} orders, sha256 {}",
        report.source.0, report.source.1
    );
    println!(
        "target:   {} orders, sha256 {}",
        report.target.0, report.target.1
    );
    if !report.verified() {
        anyhow::bail!("verification failed: the target differs from the source");
    }
    println!("verified: identical");
    Ok(())
}

async fn generate(settings: Settings, args: cli::GenerateArgs) -> anyhow::Result<()> {
    let end = commandes::domain::record::parse_time(&args.end)
        .map_err(|e| anyhow::anyhow!("--end {e}"))?;
    let mut spec = Spec::new(args.count, args.seed, end);
    if let Some(c) = args.customers {
        spec.customers = c.max(1);
    }
    if args.first_id < 1 {
        anyhow::bail!("--first-id must be at least 1");
    }
    let max = commandes::domain::record::MAX_IMPORTED_ID;
    if i128::from(args.first_id) + i128::from(args.count) - 1 > i128::from(max) {
        anyhow::bail!(
            "--first-id and --count make ids past {max} (2^53 - 1), the largest an import takes"
        );
    }
    spec.first_id = args.first_id;
    let started = std::time::Instant::now();
    if let Some(url) = &args.to {
        let store = open_for_transfer(&settings, &database_url(url)?, true).await?;
        let outcome = transfer::generate::into_store(
            store.as_ref(),
            spec,
            args.on_conflict.into(),
            !args.no_progress,
        )
        .await;
        store.close().await;
        let outcome = outcome?;
        let names = ["generated".to_string()];
        for p in &outcome.problems {
            eprintln!("{}", transfer::import::render_store_problem(&names, p));
        }
        let summary = transfer::progress::Summary {
            read: outcome.staged,
            inserted: outcome.inserted,
            updated: outcome.updated,
            skipped: outcome.skipped(),
            rejected: 0,
            elapsed: started.elapsed(),
        };
        println!("{summary}");
        if !outcome.committed {
            anyhow::bail!("the database refused the generated orders; nothing was written");
        }
        return Ok(());
    }
    let format = format_for(args.format, args.output.as_deref(), Format::Csv);
    let output = args.output.clone();
    let written = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        match &output {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
                Ok(transfer::generate::write(
                    spec,
                    format,
                    std::io::BufWriter::with_capacity(256 * 1024, file),
                )?)
            }
            None => Ok(transfer::generate::write(
                spec,
                format,
                std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock()),
            )?),
        }
    })
    .await??;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("generated {written} orders in {secs:.2} s");
    Ok(())
}
