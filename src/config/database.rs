//! `[database]`: the store and how it is opened.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::values::{optional_text, text};
use crate::storage::DatabaseUrl;

/// Whether a new database starts with the demo orders.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DemoData {
    /// On a new SQLite database only.
    Auto,
    /// On any new database, PostgreSQL included (`true` and `1` too, as
    /// `COMMANDES_DEMO_DATA` has always taken).
    #[serde(alias = "true", alias = "1")]
    Always,
    /// Never (`false` and `0` too).
    #[serde(alias = "false", alias = "0")]
    Never,
}

/// The store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    #[serde(with = "text")]
    pub url: DatabaseUrl,
    /// Most PostgreSQL connections (and SQLite reader connections).
    pub pool_size: usize,
    /// Longest wait to connect or to get a pooled connection.
    pub connect_timeout_secs: u64,
    /// SQLite: longest wait for another process's write lock.
    pub busy_timeout_ms: u64,
    /// SQLite: `full` (durable across power loss) or `normal` (faster).
    pub sqlite_synchronous: crate::storage::SqliteSync,
    pub demo_data: DemoData,
    /// PostgreSQL: PEM file of the CAs trusted for the server's TLS
    /// certificate (`sslrootcert` in the URL wins); empty: the system's roots.
    pub ca_file: String,
    /// PostgreSQL: where migrations run (a direct or session-mode URL) when
    /// `url` is a transaction pooler; empty (`None`): through `url`.
    #[serde(with = "optional_text")]
    pub migration_url: Option<DatabaseUrl>,
    /// Longest a store operation may take before it is cancelled and
    /// answered 503 (PostgreSQL: a cancel request; SQLite: the statement is
    /// interrupted); 0: no limit. Under the Supabase roles' own limits (8 s).
    pub statement_timeout_secs: u64,
    /// PostgreSQL: how long start-up waits for an unreachable or starting
    /// database, retrying with backoff; 0: one attempt.
    pub startup_timeout_secs: u64,
    /// SQLite: most reads waiting for a reader connection; past it a
    /// request is answered 503 with `Retry-After` at once.
    pub sqlite_read_queue: usize,
    /// SQLite: most writes waiting for the writer; past it, 503 with
    /// `Retry-After` at once.
    pub sqlite_write_queue: usize,
    /// PostgreSQL: `auto`, `on` or `off` named statements (see
    /// [`crate::storage::StatementCache`]).
    pub statement_cache: crate::storage::StatementCache,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: DatabaseUrl::SqliteFile("commandes.db".into()),
            pool_size: 16,
            connect_timeout_secs: 5,
            busy_timeout_ms: 5000,
            sqlite_synchronous: crate::storage::SqliteSync::Full,
            demo_data: DemoData::Auto,
            ca_file: String::new(),
            migration_url: None,
            statement_timeout_secs: 5,
            startup_timeout_secs: 60,
            sqlite_read_queue: 256,
            sqlite_write_queue: 256,
            statement_cache: crate::storage::StatementCache::Auto,
        }
    }
}

impl DatabaseSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if let Some(migration_url) = &self.migration_url {
            if !(self.url.is_postgres() && migration_url.is_postgres()) {
                bail!("database.migration_url is for PostgreSQL: it and database.url must both be postgres:// URLs");
            }
        }
        if self.pool_size == 0 {
            bail!("database.pool_size must be at least 1");
        }
        if self.sqlite_read_queue == 0 || self.sqlite_write_queue == 0 {
            bail!("database.sqlite_read_queue and database.sqlite_write_queue must be at least 1");
        }
        Ok(())
    }
}
