//! Settings: defaults → `config.toml` → environment → command-line flags,
//! each overriding the one before, parsed once into typed values.
//!
//! The file is read with figment (unknown keys are refused, so a typo is an
//! error, not a silently ignored setting). The environment layer ([`env`])
//! sets any key as `COMMANDES_<SECTION>__<KEY>`, keeps the older documented
//! names as aliases, and reads secrets from `<NAME>_FILE` too. URLs and the
//! JWT secret become their types ([`values`]) as the settings are
//! extracted, so a bad one is an error at load, and the rest of the service
//! takes them as they are.
//!
//! - [`server`]: `[server]`, `[log]`, `[cors]`, `[idempotency]`;
//!   [`database`]: `[database]`; [`auth`]: `[auth]`, `[metrics]`;
//!   [`events`]: `[events]`; [`backup`]: `[backup]`; [`telemetry`]:
//!   `[telemetry]`. Each section checks
//!   its own values.

use std::path::{Path, PathBuf};

use anyhow::bail;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::features::{Feature, Features};
use crate::secret::Secret;
use crate::storage::DatabaseUrl;

mod auth;
mod backup;
mod database;
pub mod env;
mod events;
mod server;
mod telemetry;
mod values;

pub use auth::{AuthSettings, MetricsSettings, MIN_TOKEN_CHARS};
pub use backup::{BackupSettings, Interval};
pub use database::{DatabaseSettings, DemoData};
pub use events::EventsSettings;
pub use server::{CorsSettings, IdempotencySettings, LogSettings, ServerSettings};
pub use telemetry::TelemetrySettings;

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
    pub backup: BackupSettings,
    pub telemetry: TelemetrySettings,
}

/// Flags that override everything else (from the command line).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--database-url`.
    pub database_url: Option<Secret>,
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--demo-data`, `--no-demo-data`.
    pub demo_data: Option<DemoData>,
}

impl Settings {
    /// Loads the settings. `file` is `--config`; without it `config.toml`
    /// in the working directory is read if present. `env` looks up an
    /// environment variable (`std::env::var` in the binary, a map in
    /// tests).
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
        let layer = env::EnvLayer::read(&env)?;
        figment = figment.merge(Serialized::defaults(&layer.values));
        let mut s: Settings = figment.extract().map_err(|e| match layer.explain(&e) {
            Some(message) => anyhow::Error::msg(message),
            None => file_error(e),
        })?;
        s.apply_flags(flags)?;
        s.validate()?;
        Ok(s)
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

    /// The checks that span more than one value; each value's own type
    /// was checked as it was read.
    fn validate(&self) -> anyhow::Result<()> {
        self.database.validate()?;
        self.server.validate()?;
        self.idempotency.validate()?;
        self.events.validate()?;
        self.auth.validate(&self.metrics)?;
        self.backup.validate()?;
        self.log.validate()?;
        self.telemetry.validate()?;
        self.check_features(Features::BUILT)
    }

    /// Refuses a setting that needs a part of the binary that `built`
    /// lacks (a broker client or the JWKS client left out of a small
    /// build), naming the setting and the Cargo feature.
    pub fn check_features(&self, built: Features) -> anyhow::Result<()> {
        if let Some(url) = &self.events.relay_url {
            built
                .require(url.feature(), "events.relay_url")
                .map_err(anyhow::Error::msg)?;
        }
        if self.auth.jwks_url.is_some() {
            built
                .require(Feature::Jwks, "auth.jwks_url")
                .map_err(anyhow::Error::msg)?;
        }
        if self.telemetry.exports() {
            built
                .require(Feature::Otel, "telemetry.otlp_endpoint")
                .map_err(anyhow::Error::msg)?;
        }
        Ok(())
    }

    /// The settings as one log line: URLs without their credentials
    /// (their `Display`), and of the tokens and secrets only whether they
    /// are set.
    pub fn redacted(&self) -> String {
        let set = |set: bool| if set { "set" } else { "unset" };
        format!(
            "host={} port={} metrics_address={:?} max_body_bytes={} database={} migration_database={} pool_size={} statement_timeout_secs={} demo_data={:?} tokens={} read_tokens={} jwt_secret={} jwks={:?} jwt_issuer={:?} jwt_audience={:?} customer_claim={:?} metrics_token={} cors_origins={:?} log_format={} events_relay={} backup_interval={} backup_dir={:?} backup_keep={} backup_bucket={:?} backup_secret_access_key={} otlp={}",
            self.server.host,
            self.server.port,
            self.server.metrics_address,
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
            set(self.auth.jwt_secret.is_some()),
            match &self.auth.jwks_url {
                None => self.auth.jwks_file.clone(),
                Some(url) => url.to_string(),
            },
            self.auth.jwt_issuer,
            self.auth.jwt_audience,
            self.auth.customer_claim,
            set(!self.metrics.token.is_empty()),
            self.cors.allowed_origins,
            self.log.format,
            match &self.events.relay_url {
                None => "off".to_string(),
                Some(url) => url.to_string(),
            },
            self.backup.interval.to_text(),
            self.backup.dir,
            self.backup.keep,
            self.backup.bucket,
            set(!self.backup.secret_access_key.is_empty()),
            // Whether only: a collector URL may carry credentials.
            set(self.telemetry.exports()),
        )
    }
}

/// An error in the settings file: figment's own message (the key and the
/// file), except that a secret's value is left out.
fn file_error(e: figment::Error) -> anyhow::Error {
    let key = e.path.join(".");
    let error = if env::SECRET_KEYS.contains(&key.as_str()) {
        let file = e
            .metadata
            .as_ref()
            .map_or(String::new(), |md| match &md.source {
                Some(source) => format!(" in {source} {}", md.name),
                None => format!(" in {}", md.name),
            });
        anyhow::anyhow!("{} for key {key:?}{file}", env::describe(&key, &e.kind))
    } else {
        anyhow::Error::new(e)
    };
    error.context("invalid configuration")
}

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod tests;
