//! The data commands: `import`, `export`, `copy` and `generate`, their
//! flags, and how each turns its report into lines on stdout and stderr.
//! The streaming work itself is in [`crate::transfer`].

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::app;
use crate::config::Settings;
use crate::domain::generate::Spec;
use crate::domain::{ListFilter, ListScope};
use crate::secret::{redact_url, Secret};
use crate::storage::{self, DatabaseUrl, ExportFilter, OnConflict, Store};
use crate::transfer::{self, Format};

/// What to do with a row whose order_id or id is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConflictMode {
    /// Refuse the whole import, listing every such row.
    Fail,
    /// Keep the stored order (within the import, the first row wins).
    Skip,
    /// Replace the stored order's fields (within the import, the last row
    /// wins); its id never changes.
    Update,
}

impl From<ConflictMode> for OnConflict {
    fn from(m: ConflictMode) -> OnConflict {
        match m {
            ConflictMode::Fail => OnConflict::Fail,
            ConflictMode::Skip => OnConflict::Skip,
            ConflictMode::Update => OnConflict::Update,
        }
    }
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Files to import, in order; `-` reads stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,

    /// Format of every input (default: from the extension; stdin: sniffed).
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// When an order_id (or id) is already taken, in the database or earlier in the import.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_conflict: ConflictMode,

    /// Write the valid rows and leave out the invalid ones (listed, or filed with --rejects).
    #[arg(long)]
    pub skip_invalid: bool,

    /// With --skip-invalid: write each rejected row here (NDJSON: file, line, errors, record).
    #[arg(long, value_name = "FILE", requires = "skip_invalid")]
    pub rejects: Option<PathBuf>,

    /// The most problems listed.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_errors: usize,

    /// Ignore the inputs' ids: every order gets a new one (to merge into a database that uses them).
    #[arg(long)]
    pub new_ids: bool,

    /// No progress bar or progress log lines.
    #[arg(long)]
    pub no_progress: bool,

    /// Read and check everything (conflicts with the stored orders included) and write nothing, not even a new database file; exit code 1 if there are problems.
    #[arg(long, conflicts_with = "rejects")]
    pub dry_run: bool,
}

/// Flags of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output format (default: from the --output extension, else csv).
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Only orders in this status.
    #[arg(long)]
    pub status: Option<String>,

    /// Only this customer's orders.
    #[arg(long)]
    pub customer_id: Option<String>,

    /// Only orders of at least this amount.
    #[arg(long, value_name = "AMOUNT")]
    pub min_amount: Option<String>,

    /// Only orders of at most this amount.
    #[arg(long, value_name = "AMOUNT")]
    pub max_amount: Option<String>,

    /// Only orders created at or after this time (RFC 3339, or YYYY-MM-DD: from the day's start).
    #[arg(long, value_name = "TIME")]
    pub created_from: Option<String>,

    /// Only orders created at or before this time (RFC 3339, or YYYY-MM-DD: to the day's end).
    #[arg(long, value_name = "TIME")]
    pub created_to: Option<String>,

    /// No progress display.
    #[arg(long)]
    pub no_progress: bool,
}

impl ExportArgs {
    /// The filters as `GET /commandes` query pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        [
            ("status", &self.status),
            ("customer_id", &self.customer_id),
            ("min_amount", &self.min_amount),
            ("max_amount", &self.max_amount),
            ("created_from", &self.created_from),
            ("created_to", &self.created_to),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .collect()
    }
}

/// Flags of `copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The database to read: sqlite://PATH or postgres://… (default: the configured database, as --database-url, COMMANDES_DATABASE_URL or config.toml give it; not both --from and --database-url).
    #[arg(long, value_name = "URL")]
    pub from: Option<Secret>,

    /// The database to write (migrated first; must hold no orders).
    #[arg(long, value_name = "URL")]
    pub to: Secret,

    /// No progress display.
    #[arg(long)]
    pub no_progress: bool,
}

/// Flags of `generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many orders.
    #[arg(long, default_value_t = 1000)]
    pub count: u64,

    /// The seed: the same seed gives the same orders.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// How many distinct customers (default: one per ten orders).
    #[arg(long)]
    pub customers: Option<u64>,

    /// The newest creation time (RFC 3339); the orders span the two years before it.
    #[arg(long, value_name = "TIME", default_value = "2026-01-01T00:00:00Z")]
    pub end: String,

    /// The id of the first order (the others follow; the last at most 2^53 - 1).
    #[arg(long, value_name = "ID", default_value_t = 1)]
    pub first_id: i64,

    /// Output format (default: from the --output extension, else csv).
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE", conflicts_with = "to")]
    pub output: Option<PathBuf>,

    /// Import straight into this database instead of writing a file.
    #[arg(long, value_name = "URL")]
    pub to: Option<Secret>,

    /// With --to: when an order_id or id is already taken.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_conflict: ConflictMode,

    /// No progress display.
    #[arg(long)]
    pub no_progress: bool,
}

/// Opens the store at `url` for a data command; `migrate` creates the
/// schema (and a SQLite file), otherwise the database must already exist.
async fn open_for_transfer(
    settings: &Settings,
    url: &DatabaseUrl,
    migrate: bool,
) -> anyhow::Result<Arc<dyn Store>> {
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
                crate::error_chain::error_chain(&e)
            )
        })?;
    }
    Ok(store)
}

/// A database URL given as a flag (`--from`, `--to`), parsed.
fn database_url(url: &Secret) -> anyhow::Result<DatabaseUrl> {
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

/// Imports the files in one transaction and lists every problem found;
/// with `--dry-run`, only checks.
pub(super) async fn import(settings: Settings, args: ImportArgs) -> anyhow::Result<()> {
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
        dry_run: args.dry_run,
    };
    // The inputs first: a missing file must not leave a new database behind.
    transfer::import::check_inputs(&import_args)?;
    let store = if args.dry_run {
        dry_run_target(&settings).await?
    } else {
        open_for_transfer(&settings, &settings.database.url, true).await?
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
    let count = |n: usize| format!("{n} problem{}", if n == 1 { "" } else { "s" });
    let listed = if report.more_problems {
        format!("more than {} listed above", count(report.problems.len()))
    } else {
        format!("{} listed above", count(report.problems.len()))
    };
    if args.dry_run {
        let s = &report.summary;
        println!("read:     {}", s.read);
        println!("rejected: {}", s.rejected);
        if report.problems.is_empty() {
            println!("dry run: every row is valid and none conflicts; nothing was written");
            return Ok(());
        }
        anyhow::bail!("dry run: {listed}; nothing was written");
    }
    println!("{}", report.summary);
    if !report.committed {
        anyhow::bail!("import refused: {listed}; nothing was written");
    }
    Ok(())
}

/// The store a dry run checks against; it writes nothing to either. The
/// configured database when it holds the current schema (its orders are
/// what the rows may conflict with; the import's transaction is rolled
/// back); an empty in-memory one when there is no database yet (nothing to
/// conflict with), so that no file is created.
async fn dry_run_target(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let url = &settings.database.url;
    let exists = match url {
        DatabaseUrl::SqliteFile(path) => path.exists(),
        DatabaseUrl::SqliteMemory => false,
        DatabaseUrl::Postgres(_) => true,
    };
    if exists {
        let store = open_for_transfer(settings, url, false).await?;
        let state = store.schema_state().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot query {url}: {}",
                crate::error_chain::error_chain(&e)
            )
        })?;
        let Err(mismatch) = state.verdict(store.backend().history()) else {
            return Ok(store);
        };
        store.close().await;
        if state.version != 0 {
            anyhow::bail!("{url}: {mismatch} (a dry run changes nothing, its schema included)");
        }
    }
    open_for_transfer(settings, &DatabaseUrl::SqliteMemory, true).await
}

/// Exports the orders the filters admit; the figures go to stderr.
pub(super) async fn export(settings: Settings, args: ExportArgs) -> anyhow::Result<()> {
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

/// Copies every order between two databases and verifies both sides.
pub(super) async fn copy(settings: Settings, args: CopyArgs) -> anyhow::Result<()> {
    let from = match &args.from {
        Some(url) => database_url(url)?,
        None => settings.database.url.clone(),
    };
    let source = open_for_transfer(&settings, &from, false).await?;
    let target = open_for_transfer(&settings, &database_url(&args.to)?, true).await?;
    let report = transfer::copy::copy(source.as_ref(), target.as_ref(), !args.no_progress).await;
    source.close().await;
    target.close().await;
    let report = report?;
    let secs = report.elapsed.as_secs_f64();
    println!("from:     {from}");
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

/// Generates a data set into a file, stdout or a database.
pub(super) async fn generate(settings: Settings, args: GenerateArgs) -> anyhow::Result<()> {
    let end =
        crate::domain::record::parse_time(&args.end).map_err(|e| anyhow::anyhow!("--end {e}"))?;
    let mut spec = Spec::new(args.count, args.seed, end);
    if let Some(c) = args.customers {
        spec.customers = c.max(1);
    }
    if args.first_id < 1 {
        anyhow::bail!("--first-id must be at least 1");
    }
    let max = crate::domain::record::MAX_IMPORTED_ID;
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
