//! The W3C trace context (`traceparent`) of the request being served: read
//! from the caller's header, checked, and handed to what the request
//! writes (the events of its changes). A leaf: it depends on nothing else
//! in the crate.
//!
//! With the OpenTelemetry exporter on (`crate::telemetry`), the value
//! handed on names this service's server span, so a consumer of an event
//! continues the trace below it. Without it, a valid incoming value is
//! handed on as it came: the service then takes no part in the trace but
//! does not break it.

use std::sync::atomic::{AtomicBool, Ordering};

/// The W3C header of the trace a request belongs to.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header of vendor data that goes with it.
pub const TRACESTATE: &str = "tracestate";

/// Length of a version-00 `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`.
pub const TRACEPARENT_LEN: usize = 55;

/// Longest `tracestate` read (the W3C text asks vendors to pass at least
/// 512 characters on; anything longer is dropped whole, not cut).
pub const MAX_TRACESTATE: usize = 512;

/// Whether spans are exported (set once, when the exporter starts).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: false unless the exporter was installed
/// (`crate::telemetry::layer`). Then requests and database calls make
/// spans of their own; otherwise they make none.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Called once the exporter is installed.
pub fn start_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

tokio::task_local! {
    /// The `traceparent` that the current request hands on, if any.
    static CURRENT: Option<Box<str>>;
}

/// The `traceparent` the current request hands on (`None` outside a
/// request, or when the request has no trace).
pub fn current() -> Option<String> {
    CURRENT
        .try_with(|t| t.as_deref().map(str::to_string))
        .ok()
        .flatten()
}

/// Runs `f` with `traceparent` as the current request's.
pub async fn scope<F: std::future::Future>(traceparent: Option<Box<str>>, f: F) -> F::Output {
    CURRENT.scope(traceparent, f).await
}

/// `value` as a version-00 `traceparent` if it is a valid one (any later
/// version is read as 00, as the W3C text says: its first four fields,
/// and a `-` after them if it says more); `None` otherwise. Never longer
/// than [`TRACEPARENT_LEN`], whatever was sent.
pub fn parse_traceparent(value: &[u8]) -> Option<&str> {
    let head = value.get(..TRACEPARENT_LEN)?;
    let head = std::str::from_utf8(head).ok()?;
    let mut parts = head.split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let ok = parts.next().is_none()
        && hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && !zero(trace_id)
        && hex(parent_id, 16)
        && !zero(parent_id)
        && hex(flags, 2)
        // Version 00 is exactly 55 characters; a later one may add fields.
        && (value.len() == TRACEPARENT_LEN
            || (version != "00" && value[TRACEPARENT_LEN] == b'-'));
    ok.then_some(head)
}

/// The trace id (32 hex digits) of a valid `traceparent`.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.get(3..35)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn only_valid_traceparents_are_read() {
        assert_eq!(parse_traceparent(GOOD.as_bytes()), Some(GOOD));
        assert_eq!(trace_id(GOOD), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let later = format!("01{}-more", &GOOD[2..]);
        assert_eq!(
            parse_traceparent(later.as_bytes()),
            Some(&later[..TRACEPARENT_LEN])
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad}");
        }
        let long = format!("{GOOD}{}", "x".repeat(100_000));
        assert_eq!(parse_traceparent(long.as_bytes()), None);
        assert_eq!(parse_traceparent(&[0xff; 60]), None);
    }

    #[tokio::test]
    async fn the_current_value_is_the_scope_s() {
        assert_eq!(current(), None);
        let inside = scope(Some(GOOD.into()), async { current() }).await;
        assert_eq!(inside.as_deref(), Some(GOOD));
        assert_eq!(scope(None, async { current() }).await, None);
    }
}
