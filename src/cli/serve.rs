//! `serve`: the server from start-up to a graceful stop on SIGTERM or
//! SIGINT.

use crate::app;
use crate::config::Settings;

/// Builds the app, prints the generated token if there is one, and serves
/// until a shutdown signal.
pub(super) async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(settings = %settings.redacted(), "starting");
    let shutdown = shutdown_signal();
    let app = app::build(&settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, backend = %app.store().backend(), "listening");
    if let Some(metrics_addr) = app.metrics_addr() {
        // Not `addr`: that field names the API's listener.
        tracing::info!(%metrics_addr, "serving GET /metrics without a token");
    }
    if let Some(token) = &app.generated_token {
        // Printed, never logged: it is a secret, shown once to the person
        // who started the service.
        let host = if settings.server.host == "0.0.0.0" {
            "localhost"
        } else {
            &settings.server.host
        };
        println!("\nNo API token configured: generated one for this run.\n");
        println!("  dashboard: http://{host}:{}/dashboard", addr.port());
        println!("  docs:      http://{host}:{}/docs", addr.port());
        println!("  token:     {token}\n");
        println!(
            "  curl -H 'Authorization: Bearer {token}' http://{host}:{}/stats\n",
            addr.port()
        );
        println!("Set COMMANDES_API_TOKENS (or auth.tokens) to choose your own.\n");
    }
    app.run(shutdown).await
}

/// SIGINT (Ctrl-C) or SIGTERM (what orchestrators send). The handlers are
/// installed when this is called, not when the future is first polled: a
/// SIGTERM that arrives right after start-up must start a graceful
/// shutdown, not kill the process.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        async move {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
            tracing::info!("shutting down");
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    }
}
