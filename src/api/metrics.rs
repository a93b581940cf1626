//! `GET /metrics`: Prometheus text format, behind its own token.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::auth::{Authenticator, Tokens};
use crate::access::Permissions;
use crate::api::error::ApiError;
use crate::prometheus::{self, DB_POOL};
use crate::storage::Store;

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
            .body(prometheus::handle().render())
            .into_response())
    }
}
