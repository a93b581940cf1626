//! The HTTP API: poem-openapi operations grouped by resource, the request
//! extractors they share, and the routes that tie them to the docs pages.

use std::sync::Arc;
use std::time::Instant;

use poem::endpoint::make_sync;
use poem::http::header;
use poem::{get, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route};
use poem_openapi::{OpenApiService, Tags};

use crate::error::{to_problem, ApiError};
use crate::storage::Store;

pub mod auth;
pub mod docs;
pub mod extract;
pub mod health;
pub mod orders;
pub mod schema;
pub mod stats;

pub use auth::{Caller, Tokens};
pub use extract::BodyLimit;

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Orders: create, read, change, delete.
    Orders,
    /// Figures over all orders.
    Stats,
    /// Service information and health probes (no token needed).
    Service,
}

const DESCRIPTION: &str = "\
The orders microservice. Every operation except `GET /`, the probes and the \
documentation needs `Authorization: Bearer <token>`.\n\n\
Errors are RFC 9457 `application/problem+json` documents. Checks run in this \
order: an unknown path is 404 and a known path with another method is 405 \
(whatever the token); then the token (401), the `Content-Type` of a body \
(415), its JSON syntax (400), and its values (422, with every bad field and \
query parameter listed in `errors`). A body over the size limit is 413. \
Amounts are exact decimals, returned as strings with two decimals; times are \
RFC 3339 UTC with microseconds.";

type Apis = (health::HealthApi, orders::OrdersApi, stats::StatsApi);

/// The OpenAPI service over a store.
pub fn openapi_service(store: Arc<dyn Store>) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi { store: store.clone() },
            orders::OrdersApi { store: store.clone() },
            stats::StatsApi { store },
        ),
        "commandes",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The OpenAPI document as JSON (what `/openapi.json` serves and
/// `commandes openapi` prints). No store is touched to build it.
pub fn spec_json(store: Arc<dyn Store>) -> String {
    openapi_service(store).spec()
}

/// Everything an API route needs besides the store.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub tokens: Tokens,
    pub max_body_bytes: usize,
}

/// All the routes, with errors turned into problem responses and one log
/// line per request.
pub fn routes(store: Arc<dyn Store>, settings: HttpSettings) -> impl Endpoint<Output = Response> {
    let api = openapi_service(store.clone());
    let spec = api.spec();
    let limit = settings.max_body_bytes;
    Route::new()
        .at("/openapi.json", get(make_sync(move |_| docs::json(spec.clone()))))
        .at("/docs", get(docs::swagger))
        .at("/redoc", get(docs::redoc))
        .at("/assets/*path", get(docs::assets))
        .nest("/", api.into_endpoint())
        .data(settings.tokens)
        .data(BodyLimit(limit))
        .before(move |req: Request| async move {
            // Refuse a declared oversize body before anything reads it.
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(ApiError::PayloadTooLarge { limit }.into());
            }
            Ok(req)
        })
        .catch_all_error(|err| async move { to_problem(err) })
        .around(|ep, req| async move {
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let token_id = auth::presented_token_id(&req).unwrap_or_default();
            let started = Instant::now();
            let response = ep.call(req).await?.into_response();
            let status = response.status().as_u16();
            if !path.starts_with("/health/") {
                tracing::info!(
                    %method,
                    path = %path,
                    status,
                    token_id = %token_id,
                    latency_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request"
                );
            }
            Ok(response)
        })
}
