//! The command line: `serve` (the default), `migrate`, `check`, `openapi`,
//! and the data commands `import`, `export`, `copy`, `generate`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DemoData, Overrides};
use crate::secret::Secret;
use crate::storage::OnConflict;
use crate::transfer::Format;

/// The orders microservice: the /commandes HTTP API on SQLite or PostgreSQL.
///
/// Settings come from config.toml (or --config), then COMMANDES_*
/// environment variables, then these flags.
#[derive(Debug, Parser)]
#[command(name = "commandes", version)]
pub struct Cli {
    /// Configuration file (default: config.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://… (overrides COMMANDES_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<Secret>,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags of `serve` (also accepted without the subcommand).
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Address to listen on (overrides COMMANDES_HOST).
    #[arg(long, global = true)]
    pub host: Option<String>,

    /// Port to listen on (overrides COMMANDES_PORT).
    #[arg(long, global = true)]
    pub port: Option<u16>,

    /// Load the demo orders into a new database, PostgreSQL included.
    #[arg(long, global = true, conflicts_with = "no_demo_data")]
    pub demo_data: bool,

    /// Never load the demo orders.
    #[arg(long, global = true)]
    pub no_demo_data: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default): migrates the database first, and
    /// on a new SQLite database loads the demo orders.
    Serve,
    /// Apply pending database migrations and exit. Safe to run twice, and
    /// from several processes at once.
    Migrate,
    /// Connect to the database and print the backend, server version,
    /// schema version and order count; exit non-zero with a one-line reason
    /// if that fails.
    Check,
    /// Print the OpenAPI document (JSON) and exit.
    Openapi,
    /// Import orders from CSV, JSON or NDJSON files (or stdin) into the
    /// database (--database-url), in one transaction.
    ///
    /// Every row is checked by the API's rules (order_id, customer_id,
    /// total_amount required; status, id, created_at, updated_at optional;
    /// a row without times gets the import time). By default the import is
    /// atomic: one bad row and nothing is written, and every problem is
    /// listed with its file, line and field (exit code 1). --skip-invalid
    /// writes the good rows and lists (or, with --rejects, files) the bad
    /// ones. The format comes from --format, else the file extension
    /// (.csv, .json, .ndjson or .jsonl); stdin (-) is sniffed: `[` starts a
    /// JSON array, `{` NDJSON, anything else CSV. CSV needs a header row of
    /// field names.
    #[command(
        after_help = "Examples:\n  commandes import orders.csv\n  commandes generate --count 1000000 | commandes import -\n  commandes import legacy.json --skip-invalid --rejects rejects.ndjson --on-conflict skip"
    )]
    Import(ImportArgs),
    /// Export orders as CSV, JSON or NDJSON, to a file or stdout, by id.
    ///
    /// Takes the filters of GET /commandes. The output is what `import`
    /// reads back losslessly: decimal strings with two decimals, RFC 3339
    /// UTC times with microseconds, ids. It comes from one snapshot of the
    /// database, and a file is only put in place once complete.
    #[command(
        after_help = "Examples:\n  commandes export -o orders.csv\n  commandes export --format ndjson --status completed --created-from 2026-01-01 > done.ndjson"
    )]
    Export(ExportArgs),
    /// Copy every order from one database to another (ids and timestamps
    /// kept), in one transaction on the target, then verify both sides.
    ///
    /// The target is migrated first and must hold no orders. Afterwards the
    /// count and a SHA-256 of the canonical export (NDJSON by id, the same
    /// as `commandes export --format ndjson | sha256sum`) of both sides are
    /// printed; the exit code is 1 unless they agree.
    #[command(
        after_help = "Example (the SQLite demo to Supabase):\n  commandes copy --from sqlite://commandes.db --to 'postgres://postgres.REF:PASSWORD@aws-0-eu-west-1.pooler.supabase.com:6543/postgres'"
    )]
    Copy(CopyArgs),
    /// Generate a realistic synthetic data set, deterministic from --seed.
    ///
    /// Customers with Zipf-like order counts, statuses weighted towards
    /// completed (recent orders still pending or in progress), amounts from
    /// 5.00 to 2000.00 with a long tail, creation times over the two years
    /// before --end, ids from --first-id. Written as CSV (default) or NDJSON
    /// to stdout or --output, or with --to straight into a database.
    #[command(
        after_help = "Examples:\n  commandes generate --count 1000000 --seed 7 > orders.csv\n  commandes generate --count 100000 --to sqlite://load-test.db"
    )]
    Generate(GenerateArgs),
}

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
    /// The database to read: sqlite://PATH or postgres://…
    #[arg(long, value_name = "URL")]
    pub from: Secret,

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

impl Cli {
    /// The flags that override the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            database_url: self.database_url.clone(),
            host: self.serve.host.clone(),
            port: self.serve.port,
            demo_data: if self.serve.demo_data {
                Some(DemoData::Always)
            } else if self.serve.no_demo_data {
                Some(DemoData::Never)
            } else {
                None
            },
        }
    }
}
