//! The environment layer: every key of the settings can be set as
//! `COMMANDES_<SECTION>__<KEY>` (`COMMANDES_SERVER__PORT`,
//! `COMMANDES_AUTH__AUTHENTICATED_SCOPES=read,write`), the names documented
//! before that rule ([`ALIASES`]: `COMMANDES_PORT`, `DATABASE_URL`, …) keep
//! working, and a secret ([`SECRET_KEYS`]) can also be read from the file
//! that `<NAME>_FILE` names.
//!
//! The names are derived from the settings themselves (the keys of
//! `Settings::default()`, serialized), so a new key can be set from the
//! environment without a line here. Each value is read as the kind of its
//! default: a number, `true`/`false`, a comma-separated list, or a string;
//! the typed check (a URL, an enum, a range) happens when the settings are
//! extracted, and an error there names the variable that set the value.
//!
//! Precedence for one key: the generic name, then its aliases in the order
//! listed (`COMMANDES_DATABASE_URL` before `DATABASE_URL`); the first that
//! is set wins. A name and its `_FILE` both set is an error. Values are
//! trimmed (a file's trailing newline goes).

use std::collections::BTreeMap;

use anyhow::bail;
use figment::value::{Dict, Num, Value};

use super::Settings;

/// Prefix of every generic name.
pub const PREFIX: &str = "COMMANDES_";

/// The names each key was read from before the generic rule, kept as
/// aliases, in order of precedence (after the generic name). Every name in
/// the brackets of `config.toml` is here, and only those (a test checks).
pub const ALIASES: &[(&str, &[&str])] = &[
    ("server.host", &["COMMANDES_HOST"]),
    ("server.port", &["COMMANDES_PORT"]),
    ("server.max_body_bytes", &["COMMANDES_MAX_BODY_BYTES"]),
    (
        "server.shutdown_timeout_secs",
        &["COMMANDES_SHUTDOWN_TIMEOUT_SECS"],
    ),
    ("server.idle_timeout_secs", &["COMMANDES_IDLE_TIMEOUT_SECS"]),
    (
        "server.header_timeout_secs",
        &["COMMANDES_HEADER_TIMEOUT_SECS"],
    ),
    ("server.body_timeout_secs", &["COMMANDES_BODY_TIMEOUT_SECS"]),
    ("server.max_connections", &["COMMANDES_MAX_CONNECTIONS"]),
    ("server.http2_max_streams", &["COMMANDES_HTTP2_MAX_STREAMS"]),
    ("server.max_skip", &["COMMANDES_MAX_SKIP"]),
    ("server.metrics_address", &["COMMANDES_METRICS_ADDRESS"]),
    ("database.url", &["COMMANDES_DATABASE_URL", "DATABASE_URL"]),
    ("database.pool_size", &["COMMANDES_POOL_SIZE"]),
    (
        "database.connect_timeout_secs",
        &["COMMANDES_CONNECT_TIMEOUT_SECS"],
    ),
    (
        "database.sqlite_synchronous",
        &["COMMANDES_SQLITE_SYNCHRONOUS"],
    ),
    ("database.demo_data", &["COMMANDES_DEMO_DATA"]),
    ("database.ca_file", &["COMMANDES_DATABASE_CA_FILE"]),
    (
        "database.migration_url",
        &["COMMANDES_MIGRATION_DATABASE_URL"],
    ),
    (
        "database.statement_timeout_secs",
        &["COMMANDES_STATEMENT_TIMEOUT_SECS"],
    ),
    (
        "database.startup_timeout_secs",
        &["COMMANDES_STARTUP_TIMEOUT_SECS"],
    ),
    (
        "database.statement_cache",
        &["COMMANDES_DATABASE_STATEMENT_CACHE"],
    ),
    (
        "database.sqlite_read_queue",
        &["COMMANDES_SQLITE_READ_QUEUE"],
    ),
    (
        "database.sqlite_write_queue",
        &["COMMANDES_SQLITE_WRITE_QUEUE"],
    ),
    ("auth.tokens", &["COMMANDES_API_TOKENS"]),
    ("auth.read_tokens", &["COMMANDES_READ_TOKENS"]),
    ("auth.jwt_secret", &["COMMANDES_JWT_SECRET"]),
    ("auth.jwks_url", &["COMMANDES_JWKS_URL"]),
    ("auth.jwks_file", &["COMMANDES_JWKS_FILE"]),
    ("auth.jwt_issuer", &["COMMANDES_JWT_ISSUER"]),
    ("auth.jwt_audience", &["COMMANDES_JWT_AUDIENCE"]),
    ("auth.customer_claim", &["COMMANDES_CUSTOMER_CLAIM"]),
    ("auth.clock_skew_secs", &["COMMANDES_JWT_CLOCK_SKEW_SECS"]),
    ("log.format", &["COMMANDES_LOG_FORMAT"]),
    ("metrics.token", &["COMMANDES_METRICS_TOKEN"]),
    ("cors.allowed_origins", &["COMMANDES_CORS_ORIGINS"]),
    ("idempotency.ttl_secs", &["COMMANDES_IDEMPOTENCY_TTL_SECS"]),
    ("events.source", &["COMMANDES_EVENTS_SOURCE"]),
    (
        "events.retention_days",
        &["COMMANDES_EVENTS_RETENTION_DAYS"],
    ),
    ("events.relay_url", &["COMMANDES_EVENTS_RELAY_URL"]),
    ("events.max_waiters", &["COMMANDES_EVENTS_MAX_WAITERS"]),
    ("events.max_streams", &["COMMANDES_EVENTS_MAX_STREAMS"]),
    (
        "events.stream_heartbeat_secs",
        &["COMMANDES_EVENTS_STREAM_HEARTBEAT_SECS"],
    ),
    // The standard OpenTelemetry names, after ours.
    (
        "telemetry.otlp_endpoint",
        &["COMMANDES_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"],
    ),
    ("telemetry.service_name", &["OTEL_SERVICE_NAME"]),
];

/// The keys whose values are secrets: each of their names can also be
/// given as `<NAME>_FILE`, and no error repeats their value. Their types
/// print `[redacted]` (a test checks the two agree).
pub const SECRET_KEYS: &[&str] = &[
    "database.url",
    "database.migration_url",
    "auth.tokens",
    "auth.read_tokens",
    "auth.jwt_secret",
    "auth.jwks_url",
    "metrics.token",
    "events.relay_url",
    "backup.secret_access_key",
];

/// The generic name of `key` (`server.port` → `COMMANDES_SERVER__PORT`).
pub fn generic_name(key: &str) -> String {
    format!("{PREFIX}{}", key.replace('.', "__").to_ascii_uppercase())
}

/// Every name `key` is read from, in order of precedence.
pub fn names(key: &str) -> Vec<String> {
    let aliases = ALIASES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, names)| *names);
    std::iter::once(generic_name(key))
        .chain(aliases.iter().map(|name| name.to_string()))
        .collect()
}

/// Every key of the settings (`section.key`), with its default value.
pub fn keys() -> Vec<(String, Value)> {
    let mut keys = Vec::new();
    // The settings serialize to a table of tables: a failure is a bug in
    // the settings types, found by every test.
    let Ok(Value::Dict(_, sections)) = Value::serialize(Settings::default()) else {
        unreachable!("the settings serialize to a table");
    };
    for (section, value) in sections {
        let Value::Dict(_, fields) = value else {
            unreachable!("each section is a table");
        };
        for (key, default) in fields {
            keys.push((format!("{section}.{key}"), default));
        }
    }
    keys
}

/// The values the environment sets, as a figment table, and which
/// variable set each key (for messages).
#[derive(Debug, Default)]
pub struct EnvLayer {
    /// `{section: {key: value}}`, merged over the file.
    pub values: Dict,
    /// `section.key` → the variable that set it (`COMMANDES_PORT`,
    /// `COMMANDES_AUTH__JWT_SECRET_FILE`).
    pub origins: BTreeMap<String, String>,
}

impl EnvLayer {
    /// Reads every key's names from `env`.
    pub fn read(env: &impl Fn(&str) -> Option<String>) -> anyhow::Result<EnvLayer> {
        let mut layer = EnvLayer::default();
        for (key, default) in keys() {
            let secret = SECRET_KEYS.contains(&key.as_str());
            let mut found = None;
            for name in names(&key) {
                if let Some(found_here) = lookup(env, &name, secret)? {
                    found = Some(found_here);
                    break;
                }
            }
            let Some((name, text)) = found else {
                continue;
            };
            let value = typed(&name, text.trim(), &default, secret)?;
            let (section, field) = key.split_once('.').expect("section.key");
            match layer
                .values
                .entry(section.to_string())
                .or_insert_with(|| Value::from(Dict::new()))
            {
                Value::Dict(_, fields) => {
                    fields.insert(field.to_string(), value);
                }
                _ => unreachable!("sections are tables"),
            }
            layer.origins.insert(key, name);
        }
        Ok(layer)
    }

    /// The message for an error in the settings extracted with this layer:
    /// about a key it set, the variable's name and what was expected;
    /// otherwise `None` (the error is the file's). Never a secret's value.
    pub fn explain(&self, error: &figment::Error) -> Option<String> {
        // `section.key`, even when the error is about an item of a list.
        let key = error.path.get(..2)?.join(".");
        let name = self.origins.get(&key)?;
        Some(match &error.kind {
            // A word from a fixed list (not a secret): say which words.
            figment::error::Kind::UnknownVariant(found, expected)
                if !SECRET_KEYS.contains(&key.as_str()) =>
            {
                format!(
                    "{name} must be one of {}, not {found:?}",
                    expected.join(", ")
                )
            }
            kind => format!("{name}: {}", describe(&key, kind)),
        })
    }
}

/// What went wrong with `key`, without its value when it is a secret.
pub fn describe(key: &str, kind: &figment::error::Kind) -> String {
    use figment::error::Kind;
    if !SECRET_KEYS.contains(&key) {
        return kind.to_string();
    }
    match kind {
        // Our own parsers' messages never repeat the value.
        Kind::Message(message) => message.clone(),
        Kind::InvalidType(_, expected) => format!("invalid type, expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("invalid value, expected {expected}"),
        _ => "invalid value".into(),
    }
}

/// The value of `name`, or of the file `<name>_FILE` names (secrets
/// only), with the variable it came from; both set is an error, and so is
/// a file that cannot be read (the message names the variable and the
/// path, never the content).
fn lookup(
    env: &impl Fn(&str) -> Option<String>,
    name: &str,
    secret: bool,
) -> anyhow::Result<Option<(String, String)>> {
    let value = env(name).map(|v| (name.to_string(), v));
    if !secret {
        return Ok(value);
    }
    let file_name = format!("{name}_FILE");
    match (value, env(&file_name)) {
        (Some(_), Some(_)) => bail!("set {name} or {file_name}, not both"),
        (value, None) => Ok(value),
        (None, Some(path)) => match std::fs::read_to_string(path.trim()) {
            Ok(text) => Ok(Some((file_name, text))),
            Err(e) => bail!("cannot read {file_name} ({}): {e}", path.trim()),
        },
    }
}

/// `text` as a value of the kind of `default`.
fn typed(name: &str, text: &str, default: &Value, secret: bool) -> anyhow::Result<Value> {
    // A secret's value is never repeated.
    let shown = |text: &str| {
        if secret {
            String::new()
        } else {
            format!(", not {text:?}")
        }
    };
    Ok(match default {
        Value::Num(..) => {
            if let Ok(n) = text.parse::<u64>() {
                Value::from(n)
            } else if let Ok(n) = text.parse::<i64>() {
                Value::from(n)
            } else if let Ok(n) = text.parse::<f64>() {
                Value::Num(Default::default(), Num::F64(n))
            } else {
                bail!("{name} must be a number{}", shown(text))
            }
        }
        Value::Bool(..) => match text.to_ascii_lowercase().as_str() {
            "true" | "1" => Value::from(true),
            "false" | "0" => Value::from(false),
            _ => bail!("{name} must be true or false{}", shown(text)),
        },
        Value::Array(..) => Value::from(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Value::from)
                .collect::<Vec<Value>>(),
        ),
        Value::String(..) | Value::Char(..) | Value::Empty(..) => Value::from(text),
        Value::Dict(..) => bail!("{name}: a table cannot be set from the environment"),
    })
}
