//! The log: tracing events to stderr, as JSON lines or as text, filtered by
//! `RUST_LOG` or else by the `[log]` settings. Set up once, by the binary,
//! after the settings are loaded.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogSettings, TelemetrySettings};

/// Installs the process's tracing subscriber. `RUST_LOG` wins over
/// `log.level`; `log.format` `auto` writes JSON unless stderr is a
/// terminal. With an OTLP endpoint set, the spans also go to the
/// OpenTelemetry exporter (`crate::telemetry`), which then needs a tokio
/// runtime; an exporter that cannot start is an error.
pub fn init(settings: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env()
        // The driver logs every server NOTICE at info; those are not ours to show.
        .unwrap_or_else(|_| EnvFilter::new(format!("{},tokio_postgres=warn", settings.level)));
    let json = match settings.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
    #[cfg(feature = "otel")]
    if let Some(otel) = crate::telemetry::layer(telemetry)? {
        use tracing_subscriber::prelude::*;
        // The log's filter is the log layer's own here, so the exporter
        // gets its spans whatever the log level.
        let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let registry = tracing_subscriber::registry().with(otel);
        if json {
            registry.with(log.json().with_filter(filter)).init();
        } else {
            registry.with(log.with_filter(filter)).init();
        }
        return Ok(());
    }
    #[cfg(not(feature = "otel"))]
    let _ = telemetry;
    // Logs go to stderr, so that stdout carries only what a command prints
    // (the spec, the check report).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
