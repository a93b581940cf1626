//! The request id: accepted from the client or made here, and known to
//! everything that runs while the request is served (problem bodies, event
//! records, log spans). A leaf: it depends on nothing else in the crate
//! but the hex encoder.

use poem::http::HeaderValue;

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
pub fn accept_request_id(value: Option<&HeaderValue>) -> String {
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

/// Runs `f` with `id` as the current request's id.
pub async fn scope<F: std::future::Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
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
