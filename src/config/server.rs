//! `[server]`, `[log]`, `[cors]` and `[idempotency]`: how requests are
//! received, answered and logged.

use anyhow::bail;
use serde::{Deserialize, Serialize};

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
    /// `IP:PORT` of a second listener that serves only `GET /metrics`,
    /// without a token (for a scrape job inside the cluster); empty: none.
    pub metrics_address: String,
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
            metrics_address: String::new(),
        }
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

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            format: "auto".into(),
        }
    }
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
                "traceparent",
                "tracestate",
            ]
            .map(String::from)
            .to_vec(),
            max_age_secs: 600,
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

impl ServerSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.max_body_bytes == 0 {
            bail!("server.max_body_bytes must be at least 1");
        }
        if self.idle_timeout_secs == 0
            || self.header_timeout_secs == 0
            || self.body_timeout_secs == 0
        {
            bail!("server.idle_timeout_secs, header_timeout_secs and body_timeout_secs must be at least 1");
        }
        if self.max_connections == 0 || self.http2_max_streams == 0 {
            bail!("server.max_connections and server.http2_max_streams must be at least 1");
        }
        if !self.metrics_address.is_empty()
            && self
                .metrics_address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            bail!(
                "server.metrics_address must be IP:PORT (127.0.0.1:9464, [::]:9464) or empty, not {:?}",
                crate::log_text::clip(&self.metrics_address, 64)
            );
        }
        Ok(())
    }
}

impl IdempotencySettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.ttl_secs == 0 || self.cleanup_interval_secs == 0 {
            bail!("idempotency.ttl_secs and idempotency.cleanup_interval_secs must be at least 1");
        }
        Ok(())
    }
}

impl LogSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if !["auto", "text", "json"].contains(&self.format.as_str()) {
            bail!("log.format must be auto, text or json");
        }
        Ok(())
    }
}

impl ServerSettings {
    /// The metrics listener's address; `None`: no such listener.
    pub fn metrics_address(&self) -> Option<std::net::SocketAddr> {
        self.metrics_address.parse().ok()
    }
}
