//! OpenTelemetry traces: the `tracing` spans of requests and database
//! calls, exported over OTLP/HTTP when `telemetry.otlp_endpoint` is set.
//!
//! Nothing exists when it is not set: no exporter, no layer, no extra span
//! per request or database call ([`enabled`] is false, and `api/observe.rs`
//! and `storage/metered.rs` then do what they did before). When it is set,
//! `logging.rs` adds [`layer`] to the subscriber: tracing-opentelemetry
//! turns the spans of this crate into OpenTelemetry spans, a batch
//! processor (a thread of its own) sends them, and [`shutdown`] flushes
//! what is left when the process ends.
//!
//! Spans are named by route template and operation, never by anything a
//! client sent, so their names are a fixed set.

use poem::http::{HeaderMap, HeaderValue};
use poem::Response;
use tracing::field::Empty;

use crate::trace_context::{parse_traceparent, TRACEPARENT};

#[cfg(feature = "otel")]
mod export;
#[cfg(feature = "otel")]
mod spans;

/// Whether spans are exported: false unless [`layer`] installed the
/// exporter. (The switch is in the leaf `trace_context`, so that the store
/// can read it without depending on this module.)
pub use crate::trace_context::exporting as enabled;

/// The span of a request when spans are exported: an OpenTelemetry server
/// span, named by [`end_server_span`] once the route is known.
pub fn server_span(request_id: &str, method: &'static str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
    )
}

/// Joins the caller's trace when spans are exported, and returns the
/// `traceparent` the request hands on: its server span's, or, with no
/// exporter, the caller's own when valid (so the trace is not broken; no
/// allocation without the header).
pub fn join_trace(span: &tracing::Span, headers: &HeaderMap) -> Option<Box<str>> {
    #[cfg(feature = "otel")]
    if enabled() {
        spans::continue_trace(span, headers);
        return spans::server_traceparent(span).map(Into::into);
    }
    let _ = span;
    headers
        .get(TRACEPARENT)
        .and_then(|v| parse_traceparent(v.as_bytes()))
        .map(Into::into)
}

/// Names a server span after its route template (`GET /commandes/{id}`:
/// a fixed set, never the raw path; the method alone when no route
/// matched), records the status, and tells the caller the span's
/// `traceparent`.
pub fn end_server_span(
    span: &tracing::Span,
    method: &'static str,
    route: Option<&str>,
    status: u16,
    traceparent: Option<Box<str>>,
    response: &mut Response,
) {
    let name = match route {
        Some(route) => {
            span.record("http.route", route);
            format!("{method} {route}")
        }
        None => method.to_string(),
    };
    #[cfg(feature = "otel")]
    spans::rename(span, name);
    #[cfg(not(feature = "otel"))]
    let _ = name;
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
    if let Some(value) = traceparent.and_then(|t| HeaderValue::from_str(&t).ok()) {
        response.headers_mut().insert(TRACEPARENT, value);
    }
}

/// The exporter's layer for the subscriber, or `None` when no endpoint is
/// set. Must be called inside the tokio runtime (the exporter sends with
/// it).
#[cfg(feature = "otel")]
pub fn layer<S>(
    settings: &crate::config::TelemetrySettings,
) -> anyhow::Result<Option<impl tracing_subscriber::Layer<S>>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;

    if !settings.exports() {
        return Ok(None);
    }
    let tracer = export::tracer(settings)?;
    crate::trace_context::start_exporting();
    // Only this crate's spans: the log's events stay in the log, and other
    // crates' spans would name things the docs do not.
    let ours =
        tracing_subscriber::filter::Targets::new().with_target("commandes", tracing::Level::INFO);
    Ok(Some(
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_filter(ours),
    ))
}

/// Sends the spans not sent yet and stops the exporter (at most a few
/// seconds); nothing when it was never started.
pub async fn shutdown() {
    #[cfg(feature = "otel")]
    if enabled() {
        let _ = tokio::task::spawn_blocking(export::shutdown).await;
    }
}
