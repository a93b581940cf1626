//! The log: tracing events to stderr, as JSON lines or as text, filtered by
//! `RUST_LOG` or else by the `[log]` settings. Set up once, by the binary,
//! after the settings are loaded.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the process's tracing subscriber. `RUST_LOG` wins over
/// `log.level`; `log.format` `auto` writes JSON unless stderr is a
/// terminal.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        // The driver logs every server NOTICE at info; those are not ours to show.
        .unwrap_or_else(|_| EnvFilter::new(format!("{},tokio_postgres=warn", settings.level)));
    let json = match settings.format.as_str() {
        "json" => true,
        "text" => false,
        _ => !std::io::stderr().is_terminal(),
    };
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
}
