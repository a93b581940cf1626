//! What every request goes through first: a request id, a tracing span,
//! metrics by route template, and one log line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::http::HeaderValue;
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::telemetry::{HTTP_IN_FLIGHT, HTTP_REQUESTS, HTTP_SECONDS};

/// The header that carries the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest accepted `X-Request-Id`.
pub const MAX_REQUEST_ID: usize = 128;

tokio::task_local! {
    /// The id of the request being served on this task, for problem bodies.
    static REQUEST_ID: String;
}

/// The current request's id, if a request is being served.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// A client's id is kept if it is 1–128 visible ASCII characters, so it is
/// safe to echo in a header and a log line; otherwise a new one is made.
fn accept_request_id(value: Option<&HeaderValue>) -> String {
    value
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= MAX_REQUEST_ID && v.bytes().all(|b| b.is_ascii_graphic())
        })
        .map_or_else(new_request_id, str::to_string)
}

fn new_request_id() -> String {
    let bytes: [u8; 16] = rand::random();
    crate::hex::encode(&bytes)
}

/// Routes whose requests are not logged (probes and scrapes are frequent
/// and say nothing).
fn quiet(route: &str) -> bool {
    route.starts_with("/health/") || route == "/metrics"
}

/// Route templates by operation id, read from the OpenAPI document, so
/// metrics and logs name a route as the docs do (`/commandes/{id}`).
#[derive(Debug, Default)]
pub struct RouteNames(HashMap<String, String>);

impl RouteNames {
    pub fn from_spec(doc: &serde_json::Value) -> RouteNames {
        let mut names = HashMap::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, operations) in paths {
                for operation in operations.as_object().into_iter().flat_map(|o| o.values()) {
                    if let Some(id) = operation["operationId"].as_str() {
                        names.insert(id.to_string(), path.clone());
                    }
                }
            }
        }
        RouteNames(names)
    }

    /// The template of the route that answered `response`.
    fn of(&self, response: &Response) -> String {
        if let Some(path) = response
            .data::<OperationId>()
            .and_then(|id| self.0.get(id.0))
        {
            return path.clone();
        }
        response
            .data::<PathPattern>()
            .map_or_else(|| "unmatched".to_string(), |p| p.0.to_string())
    }
}

/// Whether request lines are off (the log level is above `info`).
fn quiet_level() -> bool {
    !tracing::enabled!(target: "commandes::api::observe", tracing::Level::INFO)
}

/// Wraps the whole app; `ep` already turns every error into a response.
pub async fn observe<E: Endpoint>(
    ep: E,
    req: Request,
    routes: Arc<RouteNames>,
) -> poem::Result<Response> {
    let request_id = accept_request_id(req.headers().get(REQUEST_ID_HEADER));
    let method = req.method().to_string();
    // Hashing the token again only pays when the line will be written.
    let token_id = if quiet_level() {
        String::new()
    } else {
        super::auth::presented_token_id(&req).unwrap_or_default()
    };
    let span = tracing::info_span!("request", request_id = %request_id);
    let started = Instant::now();
    let in_flight = metrics::gauge!(HTTP_IN_FLIGHT);
    in_flight.increment(1.0);
    let result = REQUEST_ID
        .scope(request_id.clone(), ep.call(req))
        .instrument(span.clone())
        .await;
    in_flight.decrement(1.0);
    let mut response = match result {
        Ok(r) => r.into_response(),
        Err(e) => crate::error::to_problem(e),
    };
    let elapsed = started.elapsed();
    let route = routes.of(&response);
    let status = response.status().as_u16();
    let labels = [
        ("method", method.clone()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_SECONDS, &labels).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if !quiet(&route) {
        span.in_scope(|| {
            tracing::info!(
                method = %method,
                route = %route,
                status,
                latency_ms = elapsed.as_secs_f64() * 1000.0,
                token_id = %token_id,
                "request"
            );
        });
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_safe() {
        let keep = |v: &str| accept_request_id(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(keep("abc-123"), "abc-123");
        assert_ne!(keep("has space"), "has space");
        assert_ne!(keep(&"x".repeat(129)), "x".repeat(129));
        assert_eq!(keep(&"x".repeat(128)), "x".repeat(128));
        assert_eq!(accept_request_id(None).len(), 32);
        assert_ne!(accept_request_id(None), accept_request_id(None));
    }
}
