//! `GET /metrics`: Prometheus text format, behind its own token; and the
//! scrape itself, which the optional metrics listener serves too.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::auth::{Authenticator, Tokens};
use crate::access::Permissions;
use crate::api::error::ApiError;
use crate::prometheus::{self, DB_POOL, DB_POOL_MAX, DB_POOL_WAITING};
use crate::storage::{PoolStatus, Store};

/// Serves the scrape. With a metrics token configured only that token is
/// accepted; without one, any static API token (read-only ones included) or
/// a `service_role` JWT: end users' JWTs get 403, the figures cover every
/// customer.
pub struct MetricsEndpoint {
    pub store: Arc<dyn Store>,
    pub metrics_tokens: Option<Tokens>,
}

impl Endpoint for MetricsEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        match &self.metrics_tokens {
            Some(tokens) => {
                Authenticator::with_tokens(tokens.clone())
                    .authenticate(&req)
                    .await?;
            }
            None => {
                let auth = req.data::<Authenticator>().ok_or(ApiError::Internal)?;
                let caller = auth.authenticate(&req).await?;
                if !caller.service || caller.permissions == Permissions::NONE {
                    return Err(ApiError::Forbidden(
                        "only an API token or a service_role JWT may read the metrics".into(),
                    )
                    .into());
                }
            }
        }
        Ok(scrape(self.store.as_ref()))
    }
}

/// The scrape's answer: the pool's figures of this instant, everything the
/// recorder holds, and the process metrics. Also served, without a token,
/// by the optional metrics listener ([`crate::metrics_server`]).
pub fn scrape(store: &dyn Store) -> Response {
    if let Some(pool) = store.pool_status() {
        record_pool(pool);
    }
    let mut text = prometheus::handle().render();
    text.push_str(&crate::process_metrics::render());
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(text)
        .into_response()
}

/// The pool gauges, from one reading: `idle` and `in_use` add up to the
/// open connections; the maximum and the waiting requests are gauges of
/// their own (they are not connections of a state).
fn record_pool(pool: PoolStatus) {
    let idle = pool.idle.min(pool.size);
    metrics::gauge!(DB_POOL, "state" => "idle").set(idle as f64);
    metrics::gauge!(DB_POOL, "state" => "in_use").set((pool.size - idle) as f64);
    metrics::gauge!(DB_POOL_MAX).set(pool.max_size as f64);
    metrics::gauge!(DB_POOL_WAITING).set(pool.waiting as f64);
}
