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

use crate::access::Permission;
use crate::secret::{redact_url, Secret};

/// The shortest static token accepted (API, read and metrics tokens): a
/// shorter one could be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

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

/// Order events: the feed, histories, retention.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// The CloudEvents `source` of every event (a URI reference naming this
    /// service, the same on every replica).
    pub source: String,
    /// Days an event is kept; 0 keeps them forever.
    pub retention_days: u64,
    /// How often old events are pruned.
    pub purge_interval_secs: u64,
    /// PostgreSQL: how often committed events are given their sequence
    /// number in the background (readers of the feed also do it).
    pub sequence_interval_ms: u64,
    /// The broker the events are relayed to: `nats://host:port` (JetStream;
    /// `nats://TOKEN@host` or `nats://USER:PASS@host` to authenticate) or
    /// `amqp://user:pass@host:port/vhost` (RabbitMQ); empty: no relay.
    pub relay_url: Secret,
    /// The relay's name: its position and lease in the database are kept
    /// under it (two relays of one database need two names).
    pub relay_name: String,
    /// NATS: the JetStream stream, created if missing.
    pub nats_stream: String,
    /// NATS: subjects are `<prefix>.<type>`; the stream takes `<prefix>.>`.
    pub nats_subject_prefix: String,
    /// RabbitMQ: the durable topic exchange, declared if missing.
    pub amqp_exchange: String,
    /// Most events published before waiting for their confirms.
    pub relay_batch: u32,
    /// How long a replica's lease lasts unless renewed (it is renewed
    /// while relaying); a dead holder's is taken over after this.
    pub relay_lease_secs: u64,
    /// Longest wait for the broker: connecting, or confirming a batch.
    pub relay_timeout_ms: u64,
    /// How often an idle relay looks for new events.
    pub relay_poll_ms: u64,
    /// Most `GET /events` long polls waiting at once; past it, 503 with
    /// `Retry-After`.
    pub max_waiters: usize,
}

impl Default for EventsSettings {
    fn default() -> Self {
        EventsSettings {
            source: "/commandes".into(),
            retention_days: 30,
            purge_interval_secs: 300,
            sequence_interval_ms: 150,
            relay_url: Secret::default(),
            relay_name: "default".into(),
            nats_stream: "COMMANDES".into(),
            nats_subject_prefix: "commandes.order".into(),
            amqp_exchange: "commandes".into(),
            relay_batch: 256,
            relay_lease_secs: 15,
            relay_timeout_ms: 5000,
            relay_poll_ms: 200,
            max_waiters: 256,
        }
    }
}

/// `Idempotency-Key` on `POST /commandes`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdempotencySettings {
    /// How long a key's outcome is kept for replays.
    pub ttl_secs: u64,
    /// How often expired keys are deleted.
    pub cleanup_interval_secs: u64,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        IdempotencySettings {
            ttl_secs: 86_400,
            cleanup_interval_secs: 300,
        }
    }
}

/// `GET /metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// The bearer token a scrape must carry; empty: any API token.
    pub token: Secret,
}

/// Cross-origin requests from a browser front-end. Off unless an origin is
/// listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Origins allowed (`https://shop.example.com`), or `*`; empty: CORS off.
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer.
    pub max_age_secs: u32,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "POST", "PUT", "DELETE"].map(String::from).to_vec(),
            allowed_headers: [
                "authorization",
                "content-type",
                "x-request-id",
                "if-match",
                "if-none-match",
                "idempotency-key",
            ]
            .map(String::from)
            .to_vec(),
            max_age_secs: 600,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// A connection with no traffic for this long, and no request being
    /// handled, is closed.
    pub idle_timeout_secs: u64,
    /// How long a request's head may take to arrive: from a new connection,
    /// or from the first byte of an HTTP/1 request after the previous one.
    pub header_timeout_secs: u64,
    /// How long a request's body may take to arrive once its head is in;
    /// then 408 and the connection is closed.
    pub body_timeout_secs: u64,
    /// Most open connections; past it, new ones wait in the listen backlog.
    pub max_connections: u32,
    /// Most concurrent HTTP/2 streams (requests) on one connection.
    pub http2_max_streams: u32,
    /// Largest `skip` of a list (422 beyond: deeper pages follow the
    /// `Link` cursor, which costs the same at any depth).
    pub max_skip: u64,
}

/// Whether a new database starts with the demo orders.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DemoData {
    /// On a new SQLite database only.
    Auto,
    /// On any new database, PostgreSQL included.
    Always,
    /// Never.
    Never,
}

/// The store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH`, `sqlite::memory:` or `postgres://…`.
    pub url: Secret,
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
    /// `url` is a transaction pooler; empty: through `url`.
    pub migration_url: Secret,
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
}

/// Authentication: static tokens, JWTs, and what each may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accepted read-write bearer tokens; with no token, secret or JWKS at
    /// all, a random one is made at start-up.
    pub tokens: Vec<Secret>,
    /// Accepted read-only bearer tokens (403 on every change).
    pub read_tokens: Vec<Secret>,
    /// HS256 secret for JWTs (Supabase's legacy JWT secret), used as its
    /// bytes; empty: no HS256.
    pub jwt_secret: Secret,
    /// Where the ES256/RS256 public keys are (a JWKS): `https://`, or
    /// `http://` on a loopback host only; empty: none. A secret, in case
    /// it carries a key (`?apikey=`).
    pub jwks_url: Secret,
    /// A JWKS file instead of a URL.
    pub jwks_file: String,
    /// The required `iss`; empty: not checked.
    pub jwt_issuer: String,
    /// The required `aud`; empty: not checked.
    pub jwt_audience: String,
    /// The claim naming the customer whose orders a JWT may touch; empty:
    /// no restriction. Not `user_metadata…`: Supabase users can edit it
    /// (warned about at start-up).
    pub customer_claim: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// What an `authenticated` JWT may do.
    pub authenticated_scopes: Vec<Permission>,
    /// What an `anon` JWT may do.
    pub anon_scopes: Vec<Permission>,
    /// Whether Supabase anonymous users (`is_anonymous: true`) count as
    /// `authenticated`; otherwise they are `anon`.
    pub anonymous_users_as_authenticated: bool,
    /// Seconds between background refreshes of the JWKS.
    pub jwks_refresh_secs: u64,
    /// Longest wait for the JWKS URL, in seconds.
    pub jwks_timeout_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            tokens: Vec::new(),
            read_tokens: Vec::new(),
            jwt_secret: Secret::default(),
            jwks_url: Secret::default(),
            jwks_file: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: "authenticated".into(),
            customer_claim: String::new(),
            clock_skew_secs: 30,
            authenticated_scopes: vec![Permission::Read, Permission::Write],
            anon_scopes: Vec::new(),
            anonymous_users_as_authenticated: false,
            jwks_refresh_secs: 300,
            jwks_timeout_secs: 5,
        }
    }
}

impl AuthSettings {
    /// Whether any JWT can be checked.
    pub fn jwt_enabled(&self) -> bool {
        !self.jwt_secret.is_empty() || !self.jwks_url.is_empty() || !self.jwks_file.is_empty()
    }

    /// Whether no caller at all could get in (then a token is generated).
    pub fn nothing_configured(&self) -> bool {
        self.tokens.is_empty() && self.read_tokens.is_empty() && !self.jwt_enabled()
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A tracing filter (`info`, `commandes=debug`); `RUST_LOG` wins.
    pub level: String,
    /// `auto` (text on a terminal, JSON otherwise), `text` or `json`.
    pub format: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "0.0.0.0".into(),
            port: 8001,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 10,
            idle_timeout_secs: 60,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 1024,
            http2_max_streams: 64,
            max_skip: crate::domain::filter::DEFAULT_MAX_SKIP,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            url: "sqlite://commandes.db".into(),
            pool_size: 16,
            connect_timeout_secs: 5,
            busy_timeout_ms: 5000,
            sqlite_synchronous: crate::storage::SqliteSync::Full,
            demo_data: DemoData::Auto,
            ca_file: String::new(),
            migration_url: Secret::default(),
            statement_timeout_secs: 5,
            startup_timeout_secs: 60,
            sqlite_read_queue: 256,
            sqlite_write_queue: 256,
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: "auto".into(),
        }
    }
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
        s.apply_flags(flags);
        s.validate()?;
        Ok(s)
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        // DATABASE_URL is the common convention; ours wins over it.
        if let Some(v) = env("DATABASE_URL") {
            self.database.url = v.into();
        }
        if let Some(v) = env("COMMANDES_DATABASE_URL") {
            self.database.url = v.into();
        }
        if let Some(v) = env("COMMANDES_DATABASE_CA_FILE") {
            self.database.ca_file = v.trim().to_string();
        }
        if let Some(v) = env("COMMANDES_MIGRATION_DATABASE_URL") {
            self.database.migration_url = v.trim().into();
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
            self.auth.jwt_secret = v.trim().into();
        }
        if let Some(v) = env("COMMANDES_JWKS_URL") {
            self.auth.jwks_url = v.trim().into();
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
            self.events.relay_url = v.trim().into();
        }
        if let Some(v) = env("COMMANDES_EVENTS_MAX_WAITERS") {
            self.events.max_waiters = number("COMMANDES_EVENTS_MAX_WAITERS", &v)?;
        }
        Ok(())
    }

    fn apply_flags(&mut self, flags: &Overrides) {
        if let Some(v) = &flags.database_url {
            self.database.url.clone_from(v);
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
    }

    fn validate(&self) -> anyhow::Result<()> {
        crate::storage::DatabaseUrl::parse(self.database.url.expose())
            .map_err(anyhow::Error::msg)?;
        if !self.database.migration_url.is_empty() {
            let both_postgres = matches!(
                crate::storage::DatabaseUrl::parse(self.database.url.expose()),
                Ok(crate::storage::DatabaseUrl::Postgres(_))
            ) && matches!(
                crate::storage::DatabaseUrl::parse(self.database.migration_url.expose()),
                Ok(crate::storage::DatabaseUrl::Postgres(_))
            );
            if !both_postgres {
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
        if !self.events.relay_url.is_empty() {
            crate::relay::BrokerUrl::parse(self.events.relay_url.expose())
                .map_err(anyhow::Error::msg)?;
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
        if !auth.jwks_url.is_empty() && !auth.jwks_file.is_empty() {
            bail!("set auth.jwks_url or auth.jwks_file, not both");
        }
        if !auth.jwks_url.is_empty() {
            crate::access::JwksUrl::parse(auth.jwks_url.expose()).map_err(anyhow::Error::msg)?;
        }
        if !auth.jwt_secret.is_empty() {
            crate::access::JwtSecret::new(auth.jwt_secret.clone()).map_err(anyhow::Error::msg)?;
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
    /// ([`redact_url`]), and of the tokens and secrets only whether they
    /// are set.
    pub fn redacted(&self) -> String {
        let set = |s: &Secret| if s.is_empty() { "unset" } else { "set" };
        format!(
            "host={} port={} max_body_bytes={} database={} migration_database={} pool_size={} statement_timeout_secs={} demo_data={:?} tokens={} read_tokens={} jwt_secret={} jwks={:?} jwt_issuer={:?} jwt_audience={:?} customer_claim={:?} metrics_token={} cors_origins={:?} log_format={} events_relay={}",
            self.server.host,
            self.server.port,
            self.server.max_body_bytes,
            redact_url(self.database.url.expose()),
            if self.database.migration_url.is_empty() {
                "(database)".to_string()
            } else {
                redact_url(self.database.migration_url.expose())
            },
            self.database.pool_size,
            self.database.statement_timeout_secs,
            self.database.demo_data,
            self.auth.tokens.len(),
            self.auth.read_tokens.len(),
            set(&self.auth.jwt_secret),
            if self.auth.jwks_url.is_empty() {
                self.auth.jwks_file.clone()
            } else {
                redact_url(self.auth.jwks_url.expose())
            },
            self.auth.jwt_issuer,
            self.auth.jwt_audience,
            self.auth.customer_claim,
            set(&self.metrics.token),
            self.cors.allowed_origins,
            self.log.format,
            if self.events.relay_url.is_empty() {
                "off".to_string()
            } else {
                redact_url(self.events.relay_url.expose())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_shipped_config_file_equals_the_defaults() {
        let s = Settings::load(
            Some(Path::new("config.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let s = Settings::load(
            Some(Path::new("config.toml")),
            env(&[
                ("DATABASE_URL", "sqlite://a.db"),
                ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
                (
                    "COMMANDES_API_TOKENS",
                    " token-one-0123456, ,token-two-0123456 ",
                ),
                ("COMMANDES_PORT", "9000"),
            ]),
            &Overrides {
                port: Some(9100),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(s.database.url, "sqlite://b.db");
        assert_eq!(s.auth.tokens, ["token-one-0123456", "token-two-0123456"]);
        assert_eq!(s.server.port, 9100);
    }

    #[test]
    fn event_settings_come_from_the_environment() {
        let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
        let s = load(&[
            ("COMMANDES_EVENTS_RETENTION_DAYS", "7"),
            ("COMMANDES_EVENTS_SOURCE", " /shop/commandes "),
        ])
        .unwrap();
        assert_eq!(s.events.retention_days, 7);
        assert_eq!(s.events.source, "/shop/commandes");
        assert_eq!(Settings::default().events.retention_days, 30);
        assert!(load(&[("COMMANDES_EVENTS_RETENTION_DAYS", "a month")]).is_err());
        assert!(load(&[("COMMANDES_EVENTS_SOURCE", " ")]).is_err());
    }

    #[test]
    fn the_relay_url_comes_from_the_environment_and_is_checked() {
        let load = |url: &str| {
            Settings::load(
                None,
                env(&[("COMMANDES_EVENTS_RELAY_URL", url)]),
                &Overrides::default(),
            )
        };
        let s = load(" amqp://u:secret@h:5672/%2f ").unwrap();
        assert_eq!(s.events.relay_url, "amqp://u:secret@h:5672/%2f");
        assert!(s.redacted().contains("events_relay=amqp://u:***@h"));
        assert!(!s.redacted().contains("u:secret"));
        assert!(load("kafka://h:9092").is_err());
        assert!(Settings::default().redacted().contains("events_relay=off"));
        let mut s = Settings::default();
        s.events.relay_url = "nats://h:4222".into();
        s.events.relay_timeout_ms = 6000;
        assert!(
            s.validate().is_err(),
            "a timeout longer than a third of the lease"
        );
    }

    #[test]
    fn the_database_ca_file_comes_from_the_environment() {
        let s = Settings::load(
            None,
            env(&[("COMMANDES_DATABASE_CA_FILE", " /etc/commandes/ca.pem ")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.database.ca_file, "/etc/commandes/ca.pem");
        assert_eq!(
            crate::app::store_options(&s).ca_file,
            Some("/etc/commandes/ca.pem".into())
        );
        assert_eq!(
            crate::app::store_options(&Settings::default()).ca_file,
            None
        );
    }

    #[test]
    fn the_auth_settings_come_from_the_environment() {
        let s = Settings::load(
            None,
            env(&[
                (
                    "COMMANDES_READ_TOKENS",
                    "reader-one-012345, reader-two-012345",
                ),
                (
                    "COMMANDES_JWT_SECRET",
                    " super-secret-jwt-token-with-at-least-32-characters ",
                ),
                (
                    "COMMANDES_JWKS_URL",
                    "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
                ),
                ("COMMANDES_JWT_ISSUER", "https://ref.supabase.co/auth/v1"),
                ("COMMANDES_JWT_AUDIENCE", "authenticated"),
                ("COMMANDES_CUSTOMER_CLAIM", "sub"),
                ("COMMANDES_JWT_CLOCK_SKEW_SECS", "10"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.auth.read_tokens,
            ["reader-one-012345", "reader-two-012345"]
        );
        assert_eq!(
            s.auth.jwt_secret,
            "super-secret-jwt-token-with-at-least-32-characters"
        );
        assert_eq!(s.auth.jwt_issuer, "https://ref.supabase.co/auth/v1");
        assert_eq!(s.auth.customer_claim, "sub");
        assert_eq!(s.auth.clock_skew_secs, 10);
        assert!(!s.auth.nothing_configured());
        assert!(Settings::default().auth.nothing_configured());
        assert_eq!(Settings::default().auth.jwt_audience, "authenticated");
    }

    #[test]
    fn bad_auth_settings_are_errors() {
        let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
        assert!(load(&[("COMMANDES_JWT_SECRET", "short")]).is_err());
        assert!(load(&[
            ("COMMANDES_JWKS_URL", "https://x/jwks.json"),
            ("COMMANDES_JWKS_FILE", "/etc/jwks.json")
        ])
        .is_err());
        assert!(load(&[("COMMANDES_JWKS_URL", "ftp://x/jwks.json")]).is_err());
        assert!(load(&[("COMMANDES_JWKS_URL", "http://ref.supabase.co/jwks.json")]).is_err());
        assert!(load(&[("COMMANDES_JWKS_URL", "http://127.0.0.1:9999/jwks.json")]).is_ok());
        assert!(load(&[
            (
                "COMMANDES_API_TOKENS",
                "token-a-0123456789,token-b-0123456789"
            ),
            ("COMMANDES_READ_TOKENS", "token-b-0123456789")
        ])
        .is_err());
    }

    #[test]
    fn short_tokens_are_refused_without_being_shown() {
        let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
        for var in [
            "COMMANDES_API_TOKENS",
            "COMMANDES_READ_TOKENS",
            "COMMANDES_METRICS_TOKEN",
        ] {
            let e = load(&[(var, "change-me")]).unwrap_err().to_string();
            assert!(e.contains("at least 16 characters"), "{var}: {e}");
            assert!(!e.contains("change-me"), "{var}: {e}");
            assert!(load(&[(var, "0123456789abcdef")]).is_ok(), "{var}");
        }
        let e = load(&[("COMMANDES_API_TOKENS", "0123456789abcdef,tiny")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.tokens"), "{e}");
    }

    #[test]
    fn the_pooler_settings_come_from_the_environment() {
        let s = Settings::load(
            None,
            env(&[
                (
                    "COMMANDES_DATABASE_URL",
                    "postgres://u:pw@pooler:6543/postgres",
                ),
                (
                    "COMMANDES_MIGRATION_DATABASE_URL",
                    " postgres://u:secret@direct:5432/postgres ",
                ),
                ("COMMANDES_STATEMENT_TIMEOUT_SECS", "3"),
                ("COMMANDES_STARTUP_TIMEOUT_SECS", "0"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.database.migration_url,
            "postgres://u:secret@direct:5432/postgres"
        );
        assert_eq!(s.database.statement_timeout_secs, 3);
        assert_eq!(s.database.startup_timeout_secs, 0);
        assert!(!s.redacted().contains("u:secret"), "{}", s.redacted());
        let o = crate::app::store_options(&s);
        assert_eq!(o.statement_timeout, Some(std::time::Duration::from_secs(3)));
        assert_eq!(o.startup_timeout, std::time::Duration::ZERO);
        // A migration URL with SQLite makes no sense.
        assert!(Settings::load(
            None,
            env(&[("COMMANDES_MIGRATION_DATABASE_URL", "postgres://u@h/db")]),
            &Overrides::default()
        )
        .is_err());
    }

    #[test]
    fn the_connection_limits_come_from_the_environment() {
        let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
        let s = load(&[
            ("COMMANDES_IDLE_TIMEOUT_SECS", "30"),
            ("COMMANDES_HEADER_TIMEOUT_SECS", "5"),
            ("COMMANDES_BODY_TIMEOUT_SECS", "20"),
            ("COMMANDES_MAX_CONNECTIONS", "200"),
            ("COMMANDES_HTTP2_MAX_STREAMS", "16"),
        ])
        .unwrap();
        assert_eq!(
            (
                s.server.idle_timeout_secs,
                s.server.header_timeout_secs,
                s.server.body_timeout_secs,
                s.server.max_connections,
                s.server.http2_max_streams
            ),
            (30, 5, 20, 200, 16)
        );
        for name in [
            "COMMANDES_IDLE_TIMEOUT_SECS",
            "COMMANDES_HEADER_TIMEOUT_SECS",
            "COMMANDES_BODY_TIMEOUT_SECS",
            "COMMANDES_MAX_CONNECTIONS",
            "COMMANDES_HTTP2_MAX_STREAMS",
        ] {
            assert!(load(&[(name, "0")]).is_err(), "{name}=0");
            assert!(load(&[(name, "many")]).is_err(), "{name}=many");
        }
    }

    #[test]
    fn bad_values_are_errors() {
        let load = |pairs: &[(&str, &str)]| Settings::load(None, env(pairs), &Overrides::default());
        assert!(load(&[("COMMANDES_PORT", "eighty")]).is_err());
        assert!(load(&[("COMMANDES_DATABASE_URL", "mysql://x")]).is_err());
        assert!(Settings::load(
            Some(Path::new("/nonexistent.toml")),
            env(&[]),
            &Overrides::default()
        )
        .is_err());
    }

    #[test]
    fn secrets_are_not_in_the_redacted_line_or_debug() {
        let mut s = Settings::default();
        s.database.url = "postgres://u:db-pass-1@h/db?password=db-pass-2&sslmode=require".into();
        s.database.migration_url = "postgres://u:mig-pass-3@h:5432/db".into();
        s.events.relay_url = "nats://nats-token-4@h:4222".into();
        s.auth.tokens = vec!["api-token-5-0123456789".into()];
        s.auth.read_tokens = vec!["read-token-6-0123456789".into()];
        s.auth.jwt_secret = "jwt-secret-7-0123456789-0123456789".into();
        s.auth.jwks_url = "https://h/jwks.json?apikey=jwks-key-8".into();
        s.metrics.token = "metrics-token-9-0123456789".into();
        let line = s.redacted();
        let debug = format!("{s:?} {s:#?}");
        let secrets = [
            "db-pass-1",
            "db-pass-2",
            "mig-pass-3",
            "nats-token-4",
            "api-token-5",
            "read-token-6",
            "jwt-secret-7",
            "jwks-key-8",
            "metrics-token-9",
        ];
        for secret in secrets {
            assert!(!line.contains(secret), "{secret} in {line}");
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
        // What is not secret is still there to read.
        assert!(
            line.contains("database=postgres://u:***@h/db?password=***&sslmode=require"),
            "{line}"
        );
        assert!(line.contains("events_relay=nats://***@h:4222"), "{line}");
        let mut s = Settings::default();
        s.events.relay_url = "amqp://guest:amqp-pass-10@h:5672/%2f".into();
        let line = format!("{} {s:?}", s.redacted());
        assert!(!line.contains("amqp-pass-10"), "{line}");
    }
}
