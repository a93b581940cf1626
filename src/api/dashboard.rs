//! The operator's dashboard at `/dashboard`: static pages and scripts from
//! `assets/dashboard/`, embedded in the binary like the docs.
//!
//! The pages need no token to load: the person signs in by pasting one,
//! which the scripts keep for the tab (`sessionStorage`) and send on every
//! API call. Everything under `/dashboard` is served with a strict
//! Content-Security-Policy: scripts, styles, images and API calls from this
//! origin only, no inline script or style, no framing. A page that only
//! ever talks to its own origin cannot leak the token elsewhere even if a
//! bug let an order's text through as markup.

use poem::http::header;
use poem::http::StatusCode;
use poem::{handler, web::Path, IntoResponse, Request, Response};

use super::docs::Assets;

/// The policy every dashboard response carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The single page: the scripts route between sign-in, the overview, the
/// orders and one order on the URL's fragment.
#[handler]
pub fn page(request: &Request) -> Response {
    file(request, "index.html")
}

/// The dashboard's scripts, style sheet and icon.
#[handler]
pub fn asset(request: &Request, Path(path): Path<String>) -> Response {
    // `/dashboard/` is the page too.
    file(request, if path.is_empty() { "index.html" } else { &path })
}

fn file(request: &Request, path: &str) -> Response {
    // rust-embed only knows the files it embedded, so `..` finds nothing.
    match Assets::get(&format!("dashboard/{path}")) {
        Some(file) => {
            let etag = format!(
                "\"{}\"",
                crate::hex::encode(&file.metadata.sha256_hash()[..8])
            );
            let unchanged = request
                .headers()
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            let builder = Response::builder()
                // The files change with the binary: revalidate, which costs
                // a 304 when the ETag matches.
                .header(header::CACHE_CONTROL, "no-cache")
                .header(header::ETAG, etag)
                .header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
                .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
                .header(header::REFERRER_POLICY, "no-referrer");
            if unchanged {
                builder.status(StatusCode::NOT_MODIFIED).finish()
            } else {
                builder
                    .header(header::CONTENT_TYPE, file.metadata.mimetype())
                    .body(file.data.into_owned())
            }
        }
        None => {
            let mut response =
                crate::api::error::ApiError::NotFound("no such route".into()).into_response();
            response.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            response
        }
    }
}
