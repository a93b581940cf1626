//! The optional metrics listener (`server.metrics_address`): a second port
//! that serves only `GET /metrics`, without a token, so a standard
//! Prometheus scrape job (`prometheus.io/*` annotations, a ServiceMonitor)
//! works as it is. Anything else there is a 404 problem.
//!
//! It has no auth because it is meant to be reachable only by the scraper
//! (bound to the pod's address, not published); the main port's
//! `/metrics` keeps its token. The scrapes it serves are not counted in
//! the request metrics, as a scrape through the main port is not logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::endpoint::{make_sync, BoxEndpoint};
use poem::{get, EndpointExt, Response, Route};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::storage::Store;

/// Connections the metrics port keeps open at once: a few scrapers.
const MAX_CONNECTIONS: u32 = 16;
/// How long a scrape's connection may take to send its request, or sit idle.
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a scrape under way gets to finish once the server stops.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

/// The metrics listener, bound.
pub struct MetricsListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `address` (port 0: any free port).
    pub async fn bind(address: SocketAddr) -> anyhow::Result<MetricsListener> {
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (server.metrics_address)"))?;
        let addr = listener
            .local_addr()
            .context("the metrics listener has no address")?;
        Ok(MetricsListener { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the scrape until `stop` completes.
    pub async fn serve(
        self,
        store: Arc<dyn Store>,
        stop: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let limits = crate::server::Limits {
            header_timeout: TIMEOUT,
            idle_timeout: TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            http2_max_streams: 1,
        };
        // Its lines (the shutdown's) say which listener they are about.
        let span = tracing::info_span!("metrics_listener");
        crate::server::serve(self.listener, routes(store), limits, stop, SHUTDOWN_TIMEOUT)
            .instrument(span)
            .await
    }
}

/// `GET /metrics` and nothing else; every error a problem response.
fn routes(store: Arc<dyn Store>) -> BoxEndpoint<'static, Response> {
    Route::new()
        .at(
            "/metrics",
            get(make_sync(move |_| {
                crate::api::metrics::scrape(store.as_ref())
            })),
        )
        .catch_all_error(|e| async move { crate::api::error::to_problem(e) })
        .boxed()
}
