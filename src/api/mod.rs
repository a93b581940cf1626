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

use crate::api::error::{to_problem, ApiError};
use crate::storage::Store;

pub mod admin;
pub mod auth;
pub mod dashboard;
pub mod declared;
pub mod docs;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod json;
pub mod list_params;
pub mod metrics;
pub mod observe;
pub mod orders;
pub mod schema;
pub mod stats;
pub mod stream;
pub mod whoami;

pub use auth::{Authenticator, Caller, Tokens};
pub use extract::{BodyLimit, BodyTimeout};

/// The groups of operations in the docs.
#[derive(Tags)]
pub enum ApiTags {
    /// Orders: create, read, change, delete.
    Orders,
    /// Figures over all orders.
    Stats,
    /// Order events: histories and the feed.
    Events,
    /// Service information and health probes (no token needed), and
    /// what a token may do.
    Service,
    /// Administration: backups of the SQLite database (static read-write
    /// API tokens only).
    Admin,
}

const DESCRIPTION: &str = "\
The orders microservice. Every operation except `GET /`, the probes and the \
documentation needs `Authorization: Bearer <token>`.\n\n\
Errors are RFC 9457 `application/problem+json` documents. Checks run in this \
order: an unknown path is 404 and a known path with another method is 405 \
(whatever the token); then the token (401) and whether it may do this \
(403: a read-only token on a change, a JWT whose role may not), the \
`Content-Type` of a body (415), its JSON syntax (400), and its values (422, with every bad field and \
query parameter listed in `errors`). A body over the size limit is 413. \
Each operation lists the statuses it answers with; any request may also get \
404 (unknown path), 405 (known path, other method), 413 (a declared body \
length over the limit, whatever the method) or 414 (a request target over \
8 KiB) before it reaches an operation. \
Amounts are exact decimals, returned as strings with two decimals; times are \
RFC 3339 UTC with microseconds.\n\n\
Any request may carry the W3C Trace Context headers `traceparent` and \
`tracestate`: the events of its changes carry its `traceparent` (the \
CloudEvents distributed-tracing extension), and, when the service exports \
traces, its server span continues the caller's trace and the response carries \
a `traceparent` naming that span. A malformed `traceparent`, or a \
`tracestate` over 512 bytes, is ignored, never an error.";

type Apis = (
    health::HealthApi,
    list_params::WithListParameters<orders::OrdersApi>,
    stats::StatsApi,
    events::EventsApi,
    stream::StreamApi,
    admin::AdminApi,
    whoami::WhoamiApi,
);

/// The OpenAPI service over a store.
pub fn openapi_service(
    store: Arc<dyn Store>,
    idempotency_ttl: Duration,
    max_skip: u64,
    events: EventSettings,
    backups: admin::BackupAccess,
) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi {
                store: store.clone(),
                readiness: health::Readiness::default(),
            },
            list_params::WithListParameters(orders::OrdersApi {
                store: store.clone(),
                idempotency_ttl,
                max_skip,
            }),
            stats::StatsApi {
                store: store.clone(),
            },
            events::EventsApi {
                store,
                source: events.source.clone(),
                stopping: events.stopping.clone(),
                waiters: Arc::new(tokio::sync::Semaphore::new(events.max_waiters)),
            },
            stream::StreamApi {
                hub: events.hub,
                source: events.source,
                stopping: events.stopping,
                slots: Arc::new(tokio::sync::Semaphore::new(events.max_streams)),
                heartbeat: events.stream_heartbeat,
            },
            admin::AdminApi { backups },
            whoami::WhoamiApi,
        ),
        "commandes",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The OpenAPI document as JSON (what `/openapi.json` serves and
/// `commandes openapi` prints). No store is touched to build it.
pub fn spec_json(store: Arc<dyn Store>) -> String {
    // The document says nothing of the source or of the waiters: any
    // values serve.
    let events = EventSettings {
        source: String::new(),
        stopping: events::Stopping::new().1,
        max_waiters: 1,
        hub: Arc::new(stream::Hub::new(
            store.clone(),
            Arc::new(tokio::sync::Notify::new()),
            Duration::from_secs(1),
        )),
        max_streams: 1,
        stream_heartbeat: Duration::from_secs(1),
    };
    let doc = finished_spec(
        &openapi_service(
            store,
            Duration::from_secs(86_400),
            crate::domain::filter::DEFAULT_MAX_SKIP,
            events,
            admin::BackupAccess::Unsupported(""),
        )
        .spec(),
    );
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Adds what the derive macros cannot say: request bodies refuse unknown
/// fields (`additionalProperties: false`, as the service does), and a patch
/// needs at least one field.
fn finished_spec(spec: &str) -> serde_json::Value {
    // poem-openapi writes the document itself, so it always parses.
    let mut doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
    let schemas = &mut doc["components"]["schemas"];
    for name in ["NewOrder", "OrderPatch", "StatusObject"] {
        if let Some(schema) = schemas.get_mut(name).and_then(|s| s.as_object_mut()) {
            schema.insert("additionalProperties".into(), false.into());
        }
    }
    if let Some(schema) = schemas
        .get_mut("OrderEvent")
        .and_then(|s| s.as_object_mut())
    {
        schema.insert("example".into(), events::example_event("/commandes"));
    }
    if let Some(patch) = schemas
        .get_mut("OrderPatch")
        .and_then(|s| s.as_object_mut())
    {
        patch.insert("minProperties".into(), 1.into());
    }
    plain_references(&mut doc);
    doc
}

/// poem-openapi describes a property whose type is a named schema as
/// `{"description": D, "allOf": [{"$ref": …}, {"description": D}]}`. The
/// second member says nothing new, and client generators that cannot
/// take `allOf` of a non-object (an enum such as `Status`) drop the whole
/// schema, and every operation that uses it, over it
/// (openapi-python-client does). `allOf` of the reference alone means the
/// same and every generator reads it.
fn plain_references(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(all)) = map.get_mut("allOf") {
                let is_description = |v: &serde_json::Value| {
                    v.as_object()
                        .is_some_and(|o| o.keys().all(|k| k == "description"))
                };
                if all.iter().any(|v| v.get("$ref").is_some()) {
                    all.retain(|v| !is_description(v));
                }
            }
            map.values_mut().for_each(plain_references);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(plain_references),
        _ => {}
    }
}

/// The methods each route template accepts, for the `Allow` header of a 405.
#[derive(Debug, Default)]
struct AllowedMethods(std::collections::HashMap<String, String>);

impl AllowedMethods {
    /// Route templates are compared with every parameter segment reduced to
    /// `*`: poem and OpenAPI spell them differently (`:id`, `{id}`).
    fn key(template: &str) -> String {
        template
            .split('/')
            .map(|seg| {
                if seg.starts_with(':') || seg.starts_with('{') {
                    "*"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn from_spec(doc: &serde_json::Value) -> AllowedMethods {
        let mut map = std::collections::HashMap::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            let methods: Vec<String> = ops
                .as_object()
                .into_iter()
                .flat_map(|o| o.keys())
                .map(|m| m.to_uppercase())
                .collect();
            map.insert(Self::key(path), methods.join(", "));
        }
        AllowedMethods(map)
    }

    fn of(&self, pattern: &str) -> String {
        self.0
            .get(&Self::key(pattern))
            .cloned()
            .unwrap_or_else(|| "GET".into())
    }
}

/// Everything an API route needs besides the store.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Who may call the API.
    pub auth: Authenticator,
    pub max_body_bytes: usize,
    /// How long a body may take to arrive once the head is in.
    pub body_timeout: Duration,
    /// The only token `/metrics` accepts; `None`: any API token.
    pub metrics_token: Option<Tokens>,
    pub cors: CorsOptions,
    pub idempotency_ttl: Duration,
    /// The largest `skip` of a list.
    pub max_skip: u64,
    pub events: EventSettings,
    /// The backups the admin operations serve.
    pub backups: admin::BackupAccess,
}

/// Cross-origin requests from a browser front-end: off unless an origin
/// is listed.
#[derive(Debug, Clone, Default)]
pub struct CorsOptions {
    /// Origins allowed (`https://shop.example.com`), or `*`; empty: CORS off.
    pub allowed_origins: Vec<String>,
    /// Methods a preflight allows (names that are not methods are ignored).
    pub allowed_methods: Vec<String>,
    /// Request headers a preflight allows.
    pub allowed_headers: Vec<String>,
    /// How long a browser may cache a preflight answer, in seconds.
    pub max_age_secs: u32,
}

/// What the events operations need besides the store.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// The CloudEvents `source`.
    pub source: String,
    /// Raised when the server stops, to end long polls and streams.
    pub stopping: events::Stopping,
    /// Most long polls waiting at once.
    pub max_waiters: usize,
    /// The event streams' shared reader (run by the app).
    pub hub: Arc<stream::Hub>,
    /// Most event streams open at once.
    pub max_streams: usize,
    /// Silence after which a stream sends a comment.
    pub stream_heartbeat: Duration,
}

/// The routes, wrapped (outermost first) in: request id, metrics and log
/// line; CORS when configured; problem responses for every error; the body
/// size limit; panics caught as 500s.
pub fn routes(store: Arc<dyn Store>, settings: HttpSettings) -> impl Endpoint<Output = Response> {
    let api = openapi_service(
        store.clone(),
        settings.idempotency_ttl,
        settings.max_skip,
        settings.events.clone(),
        settings.backups.clone(),
    );
    let doc = finished_spec(&api.spec());
    let allowed = Arc::new(AllowedMethods::from_spec(&doc));
    // The routes declared below outside the OpenAPI document, for the
    // route label of metrics (one not listed is labelled `unmatched`).
    let routes = Arc::new(observe::RouteNames::from_spec(
        &doc,
        &[
            "/openapi.json",
            "/docs",
            "/redoc",
            "/assets/*path",
            "/dashboard",
            "/dashboard/*path",
            "/metrics",
        ],
    ));
    let spec = serde_json::to_string_pretty(&doc).unwrap_or_default();
    let limit = settings.max_body_bytes;
    let cors = cors(&settings.cors);
    Route::new()
        .at(
            "/openapi.json",
            get(make_sync(move |_| docs::json(spec.clone()))),
        )
        .at("/docs", get(docs::swagger))
        .at("/redoc", get(docs::redoc))
        .at("/assets/*path", get(docs::assets))
        .at("/dashboard", get(dashboard::page))
        .at("/dashboard/*path", get(dashboard::asset))
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
        .data(settings.auth)
        .data(BodyLimit(limit))
        .data(BodyTimeout(settings.body_timeout))
        .before(move |req: Request| async move {
            check_request_size(&req)?;
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
        .catch_all_error(move |err: poem::Error| {
            let allowed = allowed.clone();
            async move {
                // Keep the route template for the metrics of failed requests.
                let pattern = err.data::<PathPattern>().cloned();
                let operation = err.data::<OperationId>().copied();
                let mut response = to_problem(err);
                if response.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED {
                    let methods = pattern
                        .as_ref()
                        .map_or_else(|| "GET".to_string(), |p| allowed.of(&p.0));
                    if let Ok(v) = header::HeaderValue::from_str(&methods) {
                        response.headers_mut().insert(header::ALLOW, v);
                    }
                }
                if let Some(p) = pattern {
                    response.set_data(p);
                }
                if let Some(o) = operation {
                    response.set_data(o);
                }
                response
            }
        })
        .with_if(cors.is_some(), cors.unwrap_or_default())
        .around(move |ep, req| observe::observe(ep, req, routes.clone()))
}

/// Longest accepted request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most query parameters a request may carry.
pub const MAX_QUERY_PARAMETERS: usize = 64;

/// Bounds on the request line: hostile input is refused before any parsing
/// work is spent on it.
fn check_request_size(req: &Request) -> Result<(), ApiError> {
    let uri = req.uri();
    let length = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if length > MAX_URI_BYTES {
        return Err(ApiError::Client(poem::http::StatusCode::URI_TOO_LONG));
    }
    let parameters = uri
        .query()
        .map_or(0, |q| q.split('&').filter(|p| !str::is_empty(p)).count());
    if parameters > MAX_QUERY_PARAMETERS {
        return Err(ApiError::Validation(crate::domain::ValidationErrors::one(
            "query",
            format!("at most {MAX_QUERY_PARAMETERS} query parameters"),
        )));
    }
    Ok(())
}

/// The CORS middleware the options describe; `None` when no origin is
/// allowed (the default: no browser front-end).
fn cors(settings: &CorsOptions) -> Option<Cors> {
    if settings.allowed_origins.is_empty() {
        return None;
    }
    let mut cors = Cors::new()
        .allow_methods(
            settings
                .allowed_methods
                .iter()
                .filter_map(|m| m.parse::<Method>().ok()),
        )
        .allow_headers(settings.allowed_headers.iter().map(String::as_str))
        .expose_headers([
            "location",
            "etag",
            "x-request-id",
            "retry-after",
            "www-authenticate",
            "idempotent-replayed",
            "traceparent",
        ])
        .max_age(settings.max_age_secs as i32);
    if settings.allowed_origins.iter().any(|o| o == "*") {
        cors = cors.allow_origins_fn(|_| true);
    } else {
        cors = cors.allow_origins(settings.allowed_origins.iter().map(String::as_str));
    }
    Some(cors)
}
