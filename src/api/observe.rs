//! What every request goes through first: a request id, a tracing span
//! (an OpenTelemetry server span when traces are exported, see
//! `crate::telemetry`), metrics by route template, and one log line.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use poem::http::{HeaderValue, Method};
use poem::PathPattern;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use tracing::Instrument;

use crate::log_text::{clip, millis};
use crate::prometheus::{HTTP_IN_FLIGHT, HTTP_REQUESTS, HTTP_SECONDS};
use crate::request_id::{self, accept_request_id, REQUEST_ID_HEADER};
use crate::trace_context;

/// Routes whose requests are not logged (probes and scrapes are frequent
/// and say nothing).
fn quiet(route: &str) -> bool {
    route.starts_with("/health/") || route == "/metrics"
}

/// The method label of anything but the methods the API serves (and
/// `HEAD`, `OPTIONS` for CORS preflights).
pub const OTHER_METHOD: &str = "other";
/// The route label of a request no route matched.
pub const UNMATCHED: &str = "unmatched";
/// Longest method name written to a log line as sent (its label is `other`).
const MAX_LOGGED_METHOD: usize = 32;

/// The metric label of a method: one of a fixed set, so no client can add
/// series (hyper accepts method names of any length, and series never
/// expire).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => OTHER_METHOD,
    }
}

/// Route templates by operation id, read from the OpenAPI document, so
/// metrics and logs name a route as the docs do (`/commandes/{id}`); and
/// the templates a route label may take, so it is one of a fixed set
/// whatever the request was.
#[derive(Debug, Default)]
pub struct RouteNames {
    by_operation: HashMap<String, String>,
    known: HashSet<String>,
}

impl RouteNames {
    /// The operations of `doc`, plus the app's `plain` routes (those
    /// outside the OpenAPI document, as they are declared).
    pub fn from_spec(doc: &serde_json::Value, plain: &[&str]) -> RouteNames {
        let mut by_operation = HashMap::new();
        let mut known: HashSet<String> = plain.iter().map(|p| p.to_string()).collect();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, operations) in paths {
                known.insert(path.clone());
                for operation in operations.as_object().into_iter().flat_map(|o| o.values()) {
                    if let Some(id) = operation["operationId"].as_str() {
                        by_operation.insert(id.to_string(), path.clone());
                    }
                }
            }
        }
        RouteNames {
            by_operation,
            known,
        }
    }

    /// The template of the route that answered `response`, or `unmatched`:
    /// never anything taken from the request.
    fn of(&self, response: &Response) -> String {
        if let Some(path) = response
            .data::<OperationId>()
            .and_then(|id| self.by_operation.get(id.0))
        {
            return path.clone();
        }
        // poem builds a pattern from the declared routes only; checking it
        // against them keeps that true whatever poem does next.
        match response.data::<PathPattern>() {
            Some(p) if self.known.contains(&*p.0) => p.0.to_string(),
            _ => UNMATCHED.to_string(),
        }
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
    let method = method_label(req.method());
    // An odd method is logged as sent, clipped (its label says only `other`).
    let sent_method = (method == OTHER_METHOD && !quiet_level())
        .then(|| clip(req.method().as_str(), MAX_LOGGED_METHOD).into_owned());
    // Hashing the token again only pays when the line will be written.
    let token_id = if quiet_level() {
        String::new()
    } else {
        super::auth::presented_token_id(&req).unwrap_or_default()
    };
    let traced = crate::telemetry::enabled();
    let span = if traced {
        crate::telemetry::server_span(&request_id, method)
    } else {
        tracing::info_span!("request", request_id = %request_id)
    };
    // What the request's events carry (`crate::trace_context`).
    let handed_on = crate::telemetry::join_trace(&span, req.headers());
    let started = Instant::now();
    let in_flight = metrics::gauge!(HTTP_IN_FLIGHT);
    in_flight.increment(1.0);
    // Boxed first: the inner future is the whole app's, several KiB, and
    // each wrapper below would otherwise copy it (a tenth of the service's
    // time under load went to such copies; BENCHMARKS.md).
    let call = Box::pin(ep.call(req));
    let result = trace_context::scope(
        handed_on.clone(),
        request_id::scope(request_id.clone(), call),
    )
    .instrument(span.clone())
    .await;
    in_flight.decrement(1.0);
    let mut response = match result {
        Ok(r) => r.into_response(),
        Err(e) => crate::api::error::to_problem(e),
    };
    let elapsed = started.elapsed();
    let route = routes.of(&response);
    let status = response.status().as_u16();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_SECONDS, &labels).record(elapsed.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    if traced {
        let matched = (route != UNMATCHED).then_some(route.as_str());
        crate::telemetry::end_server_span(&span, method, matched, status, handed_on, &mut response);
    }
    if !quiet(&route) {
        span.in_scope(|| {
            tracing::info!(
                method = sent_method.as_deref().unwrap_or(method),
                route = %route,
                status,
                latency_ms = millis(elapsed),
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
    fn labels_come_from_fixed_sets() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        assert_eq!(method_label(&Method::PATCH), OTHER_METHOD);
        let odd = Method::from_bytes("X".repeat(50_000).as_bytes()).unwrap();
        assert_eq!(method_label(&odd), OTHER_METHOD);

        let doc =
            serde_json::json!({"paths": {"/commandes/{id}": {"get": {"operationId": "read"}}}});
        let names = RouteNames::from_spec(&doc, &["/metrics"]);
        let labelled = |data: Option<PathPattern>| {
            let mut r = Response::default();
            if let Some(p) = data {
                r.set_data(p);
            }
            names.of(&r)
        };
        assert_eq!(labelled(Some(PathPattern("/metrics".into()))), "/metrics");
        assert_eq!(
            labelled(Some(PathPattern("/commandes/{id}".into()))),
            "/commandes/{id}"
        );
        assert_eq!(
            labelled(Some(PathPattern("/anything/else".into()))),
            UNMATCHED
        );
        assert_eq!(labelled(Some(PathPattern("".into()))), UNMATCHED);
        assert_eq!(labelled(None), UNMATCHED);
    }
}
