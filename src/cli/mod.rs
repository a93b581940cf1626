//! The command line: `serve` (the default), `migrate`, `check`,
//! `healthcheck`, `openapi`, the data commands `import`, `export`, `copy`,
//! `generate`, and `backup`, `restore`, `completions` and `man`.
//!
//! This module holds the flags ([`Cli`]) and runs the chosen command
//! ([`run`]); each command's body is in the file named after its kind:
//! `serve.rs`, `admin.rs` (migrate, check, openapi), `healthcheck.rs`,
//! `data.rs` (the data commands and their flags), `backup.rs` (backup,
//! restore) and `reference.rs` (the help with its defaults, the shell
//! completions and the manual page, all from these definitions). The
//! binary's `main` only parses, loads the settings, starts the log and
//! calls [`run`]; nothing else in the library uses this module.

mod admin;
mod backup;
mod data;
mod healthcheck;
mod reference;
mod serve;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::build_info::LONG_VERSION;
use crate::config::{DemoData, Overrides, Settings};
use crate::secret::Secret;

pub use backup::{BackupArgs, RestoreArgs};
pub use data::{ConflictMode, CopyArgs, ExportArgs, GenerateArgs, ImportArgs};
pub use healthcheck::HealthcheckArgs;

/// The orders microservice: the /commandes HTTP API on SQLite or PostgreSQL.
///
/// Settings come from config.toml (or --config), then COMMANDES_*
/// environment variables (a flag's own is shown with it), then these flags.
/// Without a subcommand, `serve` runs (its flags are accepted here too).
#[derive(Debug, Parser)]
#[command(name = "commandes", version = LONG_VERSION)]
pub struct Cli {
    /// Configuration file (default: config.toml in the working directory, if present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Database URL: sqlite://PATH, sqlite::memory: or postgres://… (DATABASE_URL is read too, below COMMANDES_DATABASE_URL).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "COMMANDES_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<Secret>,

    /// The flags of `serve`, for `commandes` without a subcommand (and
    /// before `serve`, as always). Refused before any other subcommand.
    #[command(flatten, next_help_heading = "Serve options")]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags of `serve` (also accepted without the subcommand).
#[derive(Debug, Args, Default, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "COMMANDES_HOST", hide_env_values = true)]
    pub host: Option<String>,

    /// Port to listen on.
    #[arg(long, env = "COMMANDES_PORT", hide_env_values = true)]
    pub port: Option<u16>,

    /// Load the demo orders into a new database, PostgreSQL included (default: auto, only a new SQLite database; the variable takes auto, always or never).
    #[arg(
        long,
        conflicts_with = "no_demo_data",
        env = "COMMANDES_DEMO_DATA",
        hide_env_values = true
    )]
    pub demo_data: bool,

    /// Never load the demo orders (as COMMANDES_DEMO_DATA=never).
    #[arg(long)]
    pub no_demo_data: bool,
}

impl ServeArgs {
    /// The flags given, by name (for the message that refuses them).
    fn given(&self) -> Vec<&'static str> {
        [
            ("--host", self.host.is_some()),
            ("--port", self.port.is_some()),
            ("--demo-data", self.demo_data),
            ("--no-demo-data", self.no_demo_data),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    /// These flags, with `later`'s (given after `serve`) winning.
    fn or(self, later: ServeArgs) -> ServeArgs {
        let demo = later.demo_data || later.no_demo_data;
        ServeArgs {
            host: later.host.or(self.host),
            port: later.port.or(self.port),
            demo_data: if demo {
                later.demo_data
            } else {
                self.demo_data
            },
            no_demo_data: if demo {
                later.no_demo_data
            } else {
                self.no_demo_data
            },
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default): migrates the database first, and
    /// on a new SQLite database loads the demo orders.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit. Safe to run twice, and
    /// from several processes at once.
    Migrate,
    /// Connect to the database and print the backend, server version,
    /// schema version and order count; exit non-zero with a one-line reason
    /// if that fails.
    Check,
    /// Ask the server running on this host (the same settings: port, host)
    /// whether it is ready, or with --live alive; exit 0, or 1 with a
    /// one-line reason.
    ///
    /// For a container's HEALTHCHECK or an exec probe: no shell or curl
    /// needed. Readiness is GET /health/ready (the database answers and its
    /// schema is right), liveness GET /health/live (no I/O). A server
    /// listening on every interface (0.0.0.0, ::) is asked on the loopback
    /// address. The answer is bounded by --timeout.
    #[command(after_help = "Examples:
  commandes healthcheck
  commandes healthcheck --live --timeout 3")]
    Healthcheck(HealthcheckArgs),
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
    /// Back up the SQLite database: a consistent snapshot taken while the
    /// server runs, checked, then named commandes-TIME.db (UTC).
    ///
    /// Into the configured folder (backup.dir, default `backups` beside
    /// the database), then copied to the bucket when one is configured,
    /// and older backups rotated out (backup.keep); or, with --to, a
    /// one-off copy into another folder. Prints the backup's path and
    /// size. PostgreSQL: refused; its backups belong to the database.
    #[command(after_help = "Examples:
  commandes backup
  commandes backup --to /mnt/usb/commandes")]
    Backup(BackupArgs),
    /// Replace the SQLite database with a backup (stop the server first).
    ///
    /// The backup is checked first (integrity, a commandes schema this
    /// binary knows); the current database is kept beside it as
    /// DATABASE.before-restore-TIME, and the backup swapped in with a
    /// rename. Refused, changing nothing, while a server has the database
    /// open or when the backup fails its check. BACKUP is a file, or a
    /// backup in the configured bucket (s3://BUCKET/KEY or its name).
    #[command(after_help = "Examples:
  commandes restore backups/commandes-20261207T171500.123Z.db
  commandes restore commandes-20261207T171500.123Z.db   (from the bucket)")]
    Restore(RestoreArgs),
    /// Print the completion script of a shell to stdout.
    #[command(
        after_help = "Examples:\n  commandes completions bash > ~/.local/share/bash-completion/completions/commandes\n  commandes completions zsh > ~/.zfunc/_commandes\n  commandes completions fish > ~/.config/fish/completions/commandes.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of commandes, or of one subcommand.
    ///
    /// Made from the same definitions as --help, variables and defaults
    /// included.
    #[command(
        after_help = "Examples:\n  commandes man | man -l -\n  commandes man > /usr/local/share/man/man1/commandes.1\n  commandes man import > /usr/local/share/man/man1/commandes-import.1"
    )]
    Man {
        /// The subcommand (default: the page of commandes itself).
        command: Option<String>,
    },
}

impl Cli {
    /// Parses the process's arguments, printing the help, the version or
    /// a usage error and exiting where clap would.
    ///
    /// Use this, not [`Parser::parse`]: see [`Cli::try_parse_args_from`].
    pub fn parse_args() -> Cli {
        Cli::try_parse_args_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the program name first).
    ///
    /// The variables named in the flags' `env` are shown by `--help`
    /// (without their values: the database URL's may hold a password, and
    /// the others are hidden alike so that `--help` never prints what the
    /// environment holds), but clap does not read them: [`Settings::load`] reads the environment,
    /// with its own precedence (`COMMANDES_DATABASE_URL` over
    /// `DATABASE_URL`), value syntax (`COMMANDES_DEMO_DATA=never`) and error
    /// messages, and then the flags from the command line win. So the
    /// arguments are parsed by a command without the variables, and only a
    /// request for help is answered by the command with them.
    pub fn try_parse_args_from(
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let without_env = Cli::command()
            .mut_args(|arg| arg.env(None))
            .mut_subcommands(|sub| sub.mut_args(|arg| arg.env(None)));
        match without_env.try_get_matches_from(&args) {
            Ok(matches) => {
                let name = matches.subcommand_name().unwrap_or_default().to_string();
                Cli::from_arg_matches(&matches)?.settled(&name)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                ) =>
            {
                // Help is answered as soon as it is asked for, before any
                // variable is looked at, so this is the same help with the
                // variables named (and the defaults shown).
                Err(match documented().try_get_matches_from(&args) {
                    Err(with_env) => with_env,
                    Ok(_) => e,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Puts the flags of `serve` in one place ([`Cli::serve`]), and refuses
    /// what clap cannot: the flags of `serve` before another subcommand
    /// (they are accepted without a subcommand, so clap takes them there),
    /// and `copy` told its source twice.
    fn settled(mut self, name: &str) -> Result<Cli, clap::Error> {
        let refuse =
            |message: String| Err(Cli::command().error(ErrorKind::ArgumentConflict, message));
        match &mut self.command {
            Some(Command::Serve(later)) => {
                self.serve = std::mem::take(&mut self.serve).or(std::mem::take(later));
            }
            Some(other) => {
                let given = self.serve.given();
                if !given.is_empty() {
                    let flags = if given.len() == 1 {
                        "is a flag"
                    } else {
                        "are flags"
                    };
                    return refuse(format!(
                        "{} {flags} of `serve` (or of no subcommand), not of `{name}`",
                        given.join(", "),
                    ));
                }
                if let Command::Copy(copy) = other {
                    if copy.from.is_some() && self.database_url.is_some() {
                        return refuse(
                            "`copy` reads --from, or without it the configured database \
                             (--database-url): give one of them"
                                .into(),
                        );
                    }
                }
            }
            None => {}
        }
        Ok(self)
    }

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

/// The command line as `--help`, the completions and the manual page show
/// it: with the variables and the defaults.
fn documented() -> clap::Command {
    reference::documented(Cli::command())
}

/// Runs the commands that need no settings (`completions`, `man`), so that
/// they answer whatever config.toml and the environment hold; `None` for
/// the others.
pub fn run_without_settings(command: &Option<Command>) -> Option<anyhow::Result<()>> {
    match command {
        Some(Command::Completions { shell }) => Some(reference::completions(documented(), *shell)),
        Some(Command::Man { command }) => Some(reference::man(documented(), command.as_deref())),
        _ => None,
    }
}

/// Runs `command` (`serve` when none is given) with the loaded settings.
pub async fn run(command: Option<Command>, settings: Settings) -> anyhow::Result<()> {
    if let Some(done) = run_without_settings(&command) {
        return done;
    }
    match command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(_) => serve::serve(settings).await,
        Command::Migrate => admin::migrate(settings).await,
        Command::Check => admin::check(settings).await,
        Command::Healthcheck(args) => healthcheck::healthcheck(settings, args).await,
        Command::Openapi => admin::openapi().await,
        Command::Import(args) => data::import(settings, args).await,
        Command::Export(args) => data::export(settings, args).await,
        Command::Copy(args) => data::copy(settings, args).await,
        Command::Generate(args) => data::generate(settings, args).await,
        Command::Backup(args) => backup::backup(settings, args).await,
        Command::Restore(args) => backup::restore(settings, args).await,
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
    }
}
