//! Settings: defaults → `config.toml` → environment → command-line flags,
//! each overriding the one before.
//!
//! The file is read with figment (unknown keys are refused, so a typo is an
//! error, not a silently ignored setting). The environment variables are
//! the contract's names, applied one by one so that each has exactly one
//! meaning and a clear error when its value is bad.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::access::{JwksUrl, JwtSecret};
use crate::relay::BrokerUrl;
use crate::secret::Secret;
use crate::storage::DatabaseUrl;

mod auth;
mod database;
mod events;
mod server;
mod values;

pub use auth::{AuthSettings, MetricsSettings, MIN_TOKEN_CHARS};
pub use database::{DatabaseSettings, DemoData};
pub use events::EventsSettings;
pub use server::{CorsSettings, IdempotencySettings, LogSettings, ServerSettings};

/// Every setting of the service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub metrics: MetricsSettings,
    pub cors: CorsSettings,
    pub idempotency: IdempotencySettings,
    pub events: EventsSettings,
}

/// Flags that override everything else (from the command line).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub database_url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub demo_data: Option<DemoData>,
}

/// Splits a comma-separated list, dropping blanks.
fn list<T: From<String>>(value: &str) -> Vec<T> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| T::from(s.to_string()))
        .collect()
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> anyhow::Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{name} must be a number, not {value:?}"))
}

impl Settings {
    /// Loads the settings. `file` is `--config`; without it `config.toml`
    /// in the working directory is read if present.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: &Overrides,
    ) -> anyhow::Result<Settings> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        match file {
            Some(path) => {
                if !path.exists() {
                    bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                let default = PathBuf::from("config.toml");
                if default.exists() {
                    figment = figment.merge(Toml::file_exact(default));
                }
            }
        }
        let mut s: Settings = figment.extract().context("invalid configuration")?;
        s.apply_env(env)?;
        s.apply_flags(flags)?;
        s.validate()?;
        Ok(s)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        // DATABASE_URL is the common convention; ours wins over it.
        let url =
            |name: &str, v: &str| DatabaseUrl::parse(v).map_err(|e| anyhow::anyhow!("{name}: {e}"));
        if let Some(v) = env("DATABASE_URL") {
            self.database.url = url("DATABASE_URL", &v)?;
        }
        if let Some(v) = env("COMMANDES_DATABASE_URL") {
            self.database.url = url("COMMANDES_DATABASE_URL", &v)?;
        }
        if let Some(v) = env("COMMANDES_DATABASE_CA_FILE") {
            self.database.ca_file = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_MIGRATION_DATABASE_URL") {
            self.database.migration_url = match v.trim() {
                "" => None,
                v => Some(url("COMMANDES_MIGRATION_DATABASE_URL", v)?),
            };
        }
        if let Some(v) = env("COMMANDES_CONNECT_TIMEOUT_SECS") {
            self.database.connect_timeout_secs = number("COMMANDES_CONNECT_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_STATEMENT_TIMEOUT_SECS") {
            self.database.statement_timeout_secs = number("COMMANDES_STATEMENT_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_STARTUP_TIMEOUT_SECS") {
            self.database.startup_timeout_secs = number("COMMANDES_STARTUP_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_SQLITE_READ_QUEUE") {
            self.database.sqlite_read_queue = number("COMMANDES_SQLITE_READ_QUEUE", &v)?;
        }
        if let Some(v) = env("COMMANDES_SQLITE_WRITE_QUEUE") {
            self.database.sqlite_write_queue = number("COMMANDES_SQLITE_WRITE_QUEUE", &v)?;
        }
        if let Some(v) = env("COMMANDES_API_TOKENS") {
            self.auth.tokens = list(&v);
        }
        if let Some(v) = env("COMMANDES_READ_TOKENS") {
            self.auth.read_tokens = list(&v);
        }
        if let Some(v) = env("COMMANDES_JWT_SECRET") {
            self.auth.jwt_secret = match v.trim() {
                "" => None,
                v => Some(JwtSecret::new(v).map_err(anyhow::Error::msg)?),
            };
        }
        if let Some(v) = env("COMMANDES_JWKS_URL") {
            self.auth.jwks_url = match v.trim() {
                "" => None,
                v => Some(JwksUrl::parse(v).map_err(anyhow::Error::msg)?),
            };
        }
        if let Some(v) = env("COMMANDES_JWKS_FILE") {
            self.auth.jwks_file = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_JWT_ISSUER") {
            self.auth.jwt_issuer = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_JWT_AUDIENCE") {
            self.auth.jwt_audience = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_CUSTOMER_CLAIM") {
            self.auth.customer_claim = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_JWT_CLOCK_SKEW_SECS") {
            self.auth.clock_skew_secs = number("COMMANDES_JWT_CLOCK_SKEW_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_HOST") {
            self.server.host = v;
        }
        if let Some(v) = env("COMMANDES_PORT") {
            self.server.port = number("COMMANDES_PORT", &v)?;
        }
        if let Some(v) = env("COMMANDES_MAX_BODY_BYTES") {
            self.server.max_body_bytes = number("COMMANDES_MAX_BODY_BYTES", &v)?;
        }
        if let Some(v) = env("COMMANDES_MAX_SKIP") {
            self.server.max_skip = number("COMMANDES_MAX_SKIP", &v)?;
        }
        if let Some(v) = env("COMMANDES_SHUTDOWN_TIMEOUT_SECS") {
            self.server.shutdown_timeout_secs = number("COMMANDES_SHUTDOWN_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_IDLE_TIMEOUT_SECS") {
            self.server.idle_timeout_secs = number("COMMANDES_IDLE_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_HEADER_TIMEOUT_SECS") {
            self.server.header_timeout_secs = number("COMMANDES_HEADER_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_BODY_TIMEOUT_SECS") {
            self.server.body_timeout_secs = number("COMMANDES_BODY_TIMEOUT_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_MAX_CONNECTIONS") {
            self.server.max_connections = number("COMMANDES_MAX_CONNECTIONS", &v)?;
        }
        if let Some(v) = env("COMMANDES_HTTP2_MAX_STREAMS") {
            self.server.http2_max_streams = number("COMMANDES_HTTP2_MAX_STREAMS", &v)?;
        }
        if let Some(v) = env("COMMANDES_POOL_SIZE") {
            self.database.pool_size = number("COMMANDES_POOL_SIZE", &v)?;
        }
        if let Some(v) = env("COMMANDES_SQLITE_SYNCHRONOUS") {
            self.database.sqlite_synchronous = match v.trim() {
                "full" => crate::storage::SqliteSync::Full,
                "normal" => crate::storage::SqliteSync::Normal,
                other => {
                    bail!("COMMANDES_SQLITE_SYNCHRONOUS must be full or normal, not {other:?}")
                }
            };
        }
        if let Some(v) = env("COMMANDES_DEMO_DATA") {
            self.database.demo_data = match v.trim() {
                "auto" => DemoData::Auto,
                "always" | "true" | "1" => DemoData::Always,
                "never" | "false" | "0" => DemoData::Never,
                other => bail!("COMMANDES_DEMO_DATA must be auto, always or never, not {other:?}"),
            };
        }
        if let Some(v) = env("COMMANDES_IDEMPOTENCY_TTL_SECS") {
            self.idempotency.ttl_secs = number("COMMANDES_IDEMPOTENCY_TTL_SECS", &v)?;
        }
        if let Some(v) = env("COMMANDES_METRICS_TOKEN") {
            self.metrics.token = v.trim().into();
        }
        if let Some(v) = env("COMMANDES_CORS_ORIGINS") {
            self.cors.allowed_origins = list(&v);
        }
        if let Some(v) = env("COMMANDES_LOG_FORMAT") {
            self.log.format = v;
        }
        if let Some(v) = env("COMMANDES_EVENTS_SOURCE") {
            self.events.source = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_EVENTS_RETENTION_DAYS") {
            self.events.retention_days = number("COMMANDES_EVENTS_RETENTION_DAYS", &v)?;
        }
        if let Some(v) = env("COMMANDES_EVENTS_RELAY_URL") {
            self.events.relay_url = match v.trim() {
                "" => None,
                v => Some(BrokerUrl::parse(v).map_err(anyhow::Error::msg)?),
            };
        }
        if let Some(v) = env("COMMANDES_EVENTS_MAX_WAITERS") {
            self.events.max_waiters = number("COMMANDES_EVENTS_MAX_WAITERS", &v)?;
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &Overrides) -> anyhow::Result<()> {
        if let Some(v) = &flags.database_url {
            self.database.url = DatabaseUrl::parse(v.expose()).map_err(anyhow::Error::msg)?;
        }
        if let Some(v) = &flags.host {
            self.server.host.clone_from(v);
        }
        if let Some(v) = flags.port {
            self.server.port = v;
        }
        if let Some(v) = flags.demo_data {
            self.database.demo_data = v;
        }
        Ok(())
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(migration_url) = &self.database.migration_url {
            if !(self.database.url.is_postgres() && migration_url.is_postgres()) {
                bail!("database.migration_url is for PostgreSQL: it and database.url must both be postgres:// URLs");
            }
        }
        if self.server.max_body_bytes == 0 {
            bail!("server.max_body_bytes must be at least 1");
        }
        let server = &self.server;
        if server.idle_timeout_secs == 0
            || server.header_timeout_secs == 0
            || server.body_timeout_secs == 0
        {
            bail!("server.idle_timeout_secs, header_timeout_secs and body_timeout_secs must be at least 1");
        }
        if server.max_connections == 0 || server.http2_max_streams == 0 {
            bail!("server.max_connections and server.http2_max_streams must be at least 1");
        }
        if self.idempotency.ttl_secs == 0 || self.idempotency.cleanup_interval_secs == 0 {
            bail!("idempotency.ttl_secs and idempotency.cleanup_interval_secs must be at least 1");
        }
        if self.events.source.is_empty() {
            bail!("events.source must not be empty");
        }
        if self.events.purge_interval_secs == 0 || self.events.sequence_interval_ms == 0 {
            bail!("events.purge_interval_secs and events.sequence_interval_ms must be at least 1");
        }
        if self.events.max_waiters == 0 {
            bail!("events.max_waiters must be at least 1");
        }
        if self.events.retention_days > 36_500 {
            bail!("events.retention_days must be at most 36500 (0 keeps events forever)");
        }
        if self.events.relay_url.is_some() {
            let e = &self.events;
            if e.relay_name.is_empty() || e.nats_stream.is_empty() || e.amqp_exchange.is_empty() {
                bail!("events.relay_name, events.nats_stream and events.amqp_exchange must not be empty");
            }
            if e.relay_batch == 0 || e.relay_poll_ms == 0 || e.relay_timeout_ms == 0 {
                bail!("events.relay_batch, events.relay_poll_ms and events.relay_timeout_ms must be at least 1");
            }
            if e.relay_lease_secs < 2 {
                bail!("events.relay_lease_secs must be at least 2");
            }
            // A batch must be confirmed well within the lease, so a lease
            // never runs out in the middle of one.
            if e.relay_timeout_ms.saturating_mul(3) > e.relay_lease_secs.saturating_mul(1000) {
                bail!("events.relay_timeout_ms must be at most a third of events.relay_lease_secs");
            }
        }
        if self.database.pool_size == 0 {
            bail!("database.pool_size must be at least 1");
        }
        if self.database.sqlite_read_queue == 0 || self.database.sqlite_write_queue == 0 {
            bail!("database.sqlite_read_queue and database.sqlite_write_queue must be at least 1");
        }
        let auth = &self.auth;
        if auth.jwks_url.is_some() && !auth.jwks_file.is_empty() {
            bail!("set auth.jwks_url or auth.jwks_file, not both");
        }
        if auth.jwks_timeout_secs == 0 || auth.jwks_refresh_secs == 0 {
            bail!("auth.jwks_timeout_secs and auth.jwks_refresh_secs must be at least 1");
        }
        // A short token can be guessed; the message names the setting,
        // never the token.
        for (name, tokens) in [
            ("auth.tokens (COMMANDES_API_TOKENS)", auth.tokens.as_slice()),
            (
                "auth.read_tokens (COMMANDES_READ_TOKENS)",
                auth.read_tokens.as_slice(),
            ),
            (
                "metrics.token (COMMANDES_METRICS_TOKEN)",
                std::slice::from_ref(&self.metrics.token),
            ),
        ] {
            if tokens.iter().any(|t| {
                let n = t.expose().trim().chars().count();
                n > 0 && n < MIN_TOKEN_CHARS
            }) {
                bail!(
                    "{name}: every token must be at least {MIN_TOKEN_CHARS} characters long \
                     (make one with `openssl rand -hex 32`)"
                );
            }
        }
        let trimmed = |t: &Secret| t.expose().trim().to_string();
        if auth.tokens.iter().any(|t| {
            !trimmed(t).is_empty() && auth.read_tokens.iter().any(|r| trimmed(r) == trimmed(t))
        }) {
            bail!("a token is in both auth.tokens and auth.read_tokens; keep it in one list");
        }
        if !["auto", "text", "json"].contains(&self.log.format.as_str()) {
            bail!("log.format must be auto, text or json");
        }
        Ok(())
    }

    /// The settings as one log line: URLs without their credentials
    /// (their `Display`), and of the tokens and secrets only whether they
    /// are set.
    pub fn redacted(&self) -> String {
        let set = |s: &Secret| if s.is_empty() { "unset" } else { "set" };
        format!(
            "host={} port={} max_body_bytes={} database={} migration_database={} pool_size={} statement_timeout_secs={} demo_data={:?} tokens={} read_tokens={} jwt_secret={} jwks={:?} jwt_issuer={:?} jwt_audience={:?} customer_claim={:?} metrics_token={} cors_origins={:?} log_format={} events_relay={}",
            self.server.host,
            self.server.port,
            self.server.max_body_bytes,
            self.database.url,
            match &self.database.migration_url {
                None => "(database)".to_string(),
                Some(url) => url.to_string(),
            },
            self.database.pool_size,
            self.database.statement_timeout_secs,
            self.database.demo_data,
            self.auth.tokens.len(),
            self.auth.read_tokens.len(),
            if self.auth.jwt_secret.is_some() {
                "set"
            } else {
                "unset"
            },
            match &self.auth.jwks_url {
                None => self.auth.jwks_file.clone(),
                Some(url) => url.to_string(),
            },
            self.auth.jwt_issuer,
            self.auth.jwt_audience,
            self.auth.customer_claim,
            set(&self.metrics.token),
            self.cors.allowed_origins,
            self.log.format,
            match &self.events.relay_url {
                None => "off".to_string(),
                Some(url) => url.to_string(),
            },
        )
    }
}

#[cfg(test)]
mod tests;
