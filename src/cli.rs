//! The command line: `serve` (the default), `migrate`, `check`, `openapi`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{DemoData, Overrides};

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
    pub database_url: Option<String>,

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
