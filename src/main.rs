//! The `commandes` binary: parse the command line, load the settings, start
//! the log, run the subcommand, and turn its outcome into the exit code.
//! The subcommands live in the library, in `commandes::cli`.

use std::process::ExitCode;

use commandes::cli::{self, Cli};
use commandes::config::Settings;

/// mimalloc: fewer, faster allocations per request than the system
/// allocator, and a smaller resident set with many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    // `completions` and `man` print what the flags are: no settings needed.
    if let Some(done) = cli::run_without_settings(&cli.command) {
        return exit_code(done);
    }
    let settings = match Settings::load(
        cli.config.as_deref(),
        |k| std::env::var(k).ok(),
        &cli.overrides(),
    ) {
        Ok(s) => s,
        // 2, as for a usage error: the settings are wrong, nothing was tried.
        Err(e) => {
            eprintln!("commandes: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = commandes::logging::init(&settings.log, &settings.telemetry) {
        eprintln!("commandes: {e:#}");
        return ExitCode::FAILURE;
    }
    let outcome = cli::run(cli.command, settings).await;
    // The spans of the last requests, before the process ends.
    commandes::telemetry::shutdown().await;
    exit_code(outcome)
}

/// 0, or 1 with the error on stderr.
fn exit_code(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the cause chain, for scripts and log lines.
            eprintln!("commandes: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
