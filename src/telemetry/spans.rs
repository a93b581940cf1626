//! Joining a caller's trace, and naming the server span to the next hop.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use poem::http::HeaderMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::trace_context::{parse_traceparent, MAX_TRACESTATE, TRACEPARENT, TRACESTATE};

/// The W3C headers of a request, as the propagator reads them: a
/// `traceparent` only if valid, a `tracestate` only if not longer than
/// [`MAX_TRACESTATE`] (bounded work and memory whatever was sent).
struct Incoming<'a>(&'a HeaderMap);

impl Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?;
        match key {
            TRACEPARENT => parse_traceparent(value.as_bytes()),
            TRACESTATE if value.len() <= MAX_TRACESTATE => value.to_str().ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Makes `span` a child of the caller's span when the request names a valid
/// one; a missing or malformed `traceparent` starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if headers.contains_key(TRACEPARENT) {
        let parent = TraceContextPropagator::new().extract(&Incoming(headers));
        if parent.span().span_context().is_valid() {
            let _ = span.set_parent(parent);
        }
    }
}

/// The `traceparent` that names `span` (for the response and the events
/// of the request), if it is an exported span.
pub fn server_traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let s = cx.span();
    let s = s.span_context();
    s.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            s.trace_id(),
            s.span_id(),
            s.trace_flags().to_u8()
        )
    })
}

/// Names `span` once its route is known. The span was started when the
/// request began (its id goes into the events), and a started span takes
/// a new name only through OpenTelemetry itself, not through `otel.name`.
pub fn rename(span: &tracing::Span, name: String) {
    span.context().span().update_name(name);
}
