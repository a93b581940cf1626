//! `GET /metrics`: Prometheus text format, behind its own token.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::auth::Tokens;
use crate::error::ApiError;
use crate::storage::Store;
use crate::telemetry::{prometheus, DB_POOL};

/// Serves the scrape. With a metrics token configured only that token is
/// accepted; without one, any API token is.
pub struct MetricsEndpoint {
    pub store: Arc<dyn Store>,
    pub metrics_tokens: Option<Tokens>,
}

impl Endpoint for MetricsEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let tokens = match &self.metrics_tokens {
            Some(t) => t,
            None => req.data::<Tokens>().ok_or(ApiError::Internal)?,
        };
        super::auth::authenticate(&req, tokens)?;
        if let Some(pool) = self.store.pool_status() {
            for (state, value) in [
                ("size", pool.size),
                ("idle", pool.idle),
                ("waiting", pool.waiting),
                ("max", pool.max_size),
            ] {
                metrics::gauge!(DB_POOL, "state" => state).set(value as f64);
            }
        }
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .body(prometheus().render())
            .into_response())
    }
}
