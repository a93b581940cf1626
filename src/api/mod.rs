//! The HTTP API: poem-openapi operations grouped by resource, the request
//! extractors they share, and the routes that tie them to the docs pages.

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::http::{header, Method};
use poem::middleware::{CatchPanic, Cors};
use poem::PathPattern;
use poem::{get, Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Response, Route};
use poem_openapi::{OpenApiService, OperationId, Tags};

use crate::config::CorsSettings;
use crate::error::{to_problem, ApiError};
use crate::storage::Store;

pub mod auth;
pub mod docs;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod observe;
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
pub fn openapi_service(store: Arc<dyn Store>, idempotency_ttl: Duration) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi { store: store.clone() },
            orders::OrdersApi {
                store: store.clone(),
                idempotency_ttl,
            },
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
    openapi_service(store, Duration::from_secs(86_400)).spec()
}

/// Everything an API route needs besides the store.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub tokens: Tokens,
    pub max_body_bytes: usize,
    /// The only token `/metrics` accepts; `None`: any API token.
    pub metrics_token: Option<Tokens>,
    pub cors: CorsSettings,
    pub idempotency_ttl: Duration,
}

/// The routes, wrapped (outermost first) in: request id, metrics and log
/// line; CORS when configured; problem responses for every error; the body
/// size limit; panics caught as 500s.
pub fn routes(store: Arc<dyn Store>, settings: HttpSettings) -> impl Endpoint<Output = Response> {
    let api = openapi_service(store.clone(), settings.idempotency_ttl);
    let spec = api.spec();
    let routes = Arc::new(observe::RouteNames::from_spec(&spec));
    let limit = settings.max_body_bytes;
    let cors = cors(&settings.cors);
    Route::new()
        .at("/openapi.json", get(make_sync(move |_| docs::json(spec.clone()))))
        .at("/docs", get(docs::swagger))
        .at("/redoc", get(docs::redoc))
        .at("/assets/*path", get(docs::assets))
        .at(
            "/metrics",
            get(metrics::MetricsEndpoint {
                store: store.clone(),
                metrics_tokens: settings.metrics_token,
            }),
        )
        .nest("/", api.into_endpoint())
        .with(CatchPanic::new().with_handler(|_| {
            tracing::error!("a request handler panicked");
            ApiError::Internal.into_response()
        }))
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
        .catch_all_error(|err: poem::Error| async move {
            // Keep the route template for the metrics of failed requests.
            let pattern = err.data::<PathPattern>().cloned();
            let operation = err.data::<OperationId>().copied();
            let mut response = to_problem(err);
            if let Some(p) = pattern {
                response.set_data(p);
            }
            if let Some(o) = operation {
                response.set_data(o);
            }
            response
        })
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(move |ep, req| observe::observe(ep, req, routes.clone()))
}

/// The CORS middleware the settings describe; `None` when no origin is
/// allowed (the default: no browser front-end).
fn cors(settings: &CorsSettings) -> Option<Cors> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let mut cors = Cors::new()
        .allow_methods(settings.allowed_methods.iter().filter_map(|m| m.parse::<Method>().ok()))
        .allow_headers(settings.allowed_headers.iter().map(String::as_str))
        .expose_headers(["location", "etag", "x-request-id", "retry-after", "www-authenticate", "idempotent-replayed"])
        .max_age(settings.max_age_secs as i32);
    if settings.allowed_origins.iter().any(|o| o == "*") {
        cors = cors.allow_origins_fn(|_| true);
    } else {
        cors = cors.allow_origins(settings.allowed_origins.iter().map(String::as_str));
    }
    Some(cors)
}
