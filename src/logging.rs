//! The log: tracing events to stderr, as flat JSON lines
//! ([`crate::log_json`]) or as text, filtered by `RUST_LOG` or else by the
//! `[log]` settings. Set up once, by the binary, after the settings are
//! loaded.
//!
//! The subscriber is a registry with layers: the filter, then the format.
//! Another layer (a trace exporter) is one more `.with(…)` in [`init`].

use std::io::IsTerminal;

use tracing_subscriber::fmt::format::JsonFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogSettings, TelemetrySettings};
use crate::log_json::FlatJson;

/// Crates held back to a level of their own unless the filter names them:
/// tokio-postgres logs every server NOTICE (`relation … already exists,
/// skipping`) at info, which is not ours to show.
pub const QUIET_CRATES: &[(&str, &str)] = &[("tokio_postgres", "warn")];

/// The filter's directives: `base` (`RUST_LOG`, or `log.level`), then a
/// directive for each of [`QUIET_CRATES`] that `base` does not name. A
/// target directive beats a bare level, so `RUST_LOG=info` keeps
/// tokio-postgres at warn, and `RUST_LOG=info,tokio_postgres=info` shows
/// its notices.
pub fn directives(base: &str) -> String {
    let names = |krate: &str| {
        base.split(',').any(|directive| {
            let target = directive.trim().split(['=', '[']).next().unwrap_or("");
            target == krate || target.starts_with(&format!("{krate}::"))
        })
    };
    let mut all = base.trim().trim_end_matches(',').to_string();
    for (krate, level) in QUIET_CRATES {
        if !names(krate) {
            if !all.is_empty() {
                all.push(',');
            }
            all.push_str(&format!("{krate}={level}"));
        }
    }
    all
}

/// The filter: `RUST_LOG` when set (and valid), else `log.level`, with the
/// quiet crates' defaults added either way.
fn filter(settings: &LogSettings) -> EnvFilter {
    let from_env = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| EnvFilter::try_new(directives(&v)).ok());
    from_env.unwrap_or_else(|| EnvFilter::new(directives(&settings.level)))
}

/// Installs the process's tracing subscriber. `RUST_LOG` wins over
/// `log.level`; `log.format` `auto` writes JSON unless stderr is a
/// terminal. With an OTLP endpoint set, the spans also go to the
/// OpenTelemetry exporter (`crate::telemetry`), which then needs a tokio
/// runtime; an exporter that cannot start is an error.
pub fn init(settings: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<()> {
    let json = match settings.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    // Logs go to stderr, so that stdout carries only what a command prints
    // (the spec, the check report).
    let format: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .with_writer(std::io::stderr)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed()
    };
    // The filter is the log's own, so that an exporter gets its spans
    // whatever the log level.
    let registry = tracing_subscriber::registry().with(format.with_filter(filter(settings)));
    #[cfg(feature = "otel")]
    registry.with(crate::telemetry::layer(telemetry)?).init();
    #[cfg(not(feature = "otel"))]
    {
        let _ = telemetry;
        registry.init();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::directives;

    #[test]
    fn quiet_crates_keep_their_level_unless_named() {
        assert_eq!(directives("info"), "info,tokio_postgres=warn");
        assert_eq!(directives("debug,"), "debug,tokio_postgres=warn");
        assert_eq!(directives(""), "tokio_postgres=warn");
        assert_eq!(
            directives("commandes=debug,warn"),
            "commandes=debug,warn,tokio_postgres=warn"
        );
        assert_eq!(
            directives("info,tokio_postgres=info"),
            "info,tokio_postgres=info"
        );
        assert_eq!(
            directives("info,tokio_postgres::connection=debug"),
            "info,tokio_postgres::connection=debug"
        );
        // Another crate whose name starts alike is not the same crate.
        assert_eq!(
            directives("tokio_postgres_x=debug"),
            "tokio_postgres_x=debug,tokio_postgres=warn"
        );
    }
}
