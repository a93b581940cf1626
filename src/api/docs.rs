//! The documentation pages and their assets, embedded in the binary so that
//! `/docs` and `/redoc` work with no network.

use poem::http::{header, StatusCode};
use std::io::Read;

use flate2::read::GzDecoder;
use poem::{handler, web::Path, IntoResponse, Request, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;

/// Everything under `assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

fn asset(request: &Request, path: &str) -> Response {
    // The large vendored files are stored gzipped (`name.gz`): 3 MB of
    // scripts take 0.8 MB of the binary, and most browsers take them as
    // they are. A name ending in `.gz` is not a URL of its own.
    if path.ends_with(".gz") {
        return not_found();
    }
    if let Some(file) = Assets::get(path) {
        return Response::builder()
            .header(header::CONTENT_TYPE, file.metadata.mimetype())
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .body(file.data.into_owned());
    }
    let Some(file) = Assets::get(&format!("{path}.gz")) else {
        return not_found();
    };
    let builder = Response::builder()
        .header(header::CONTENT_TYPE, media_type(path))
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .header(header::VARY, "accept-encoding");
    if accepts_gzip(request) {
        return builder
            .header(header::CONTENT_ENCODING, "gzip")
            .body(file.data.into_owned());
    }
    let mut plain = Vec::new();
    match GzDecoder::new(file.data.as_ref()).read_to_end(&mut plain) {
        Ok(_) => builder.body(plain),
        // Only a broken build could embed a file that is not gzip.
        Err(_) => ApiError::Internal.into_response(),
    }
}

fn not_found() -> Response {
    ApiError::NotFound("no such route".into()).into_response()
}

/// The media type of a file stored gzipped, by the name it is served under.
fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        _ => "application/octet-stream",
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3: a coding, or
/// `*`, with a weight other than 0).
fn accepts_gzip(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

/// Swagger UI.
#[handler]
pub fn swagger(request: &Request) -> Response {
    asset(request, "docs.html")
}

/// ReDoc.
#[handler]
pub fn redoc(request: &Request) -> Response {
    asset(request, "redoc.html")
}

/// The embedded scripts, styles and icons.
#[handler]
pub fn assets(request: &Request, Path(path): Path<String>) -> Response {
    // The dashboard's files are served under `/dashboard` only, with its
    // Content-Security-Policy: its page must not load without it.
    if path.starts_with("dashboard/") {
        return not_found();
    }
    asset(request, &path)
}

/// Serves a fixed JSON document (the OpenAPI spec).
pub fn json(body: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gzipped_asset_unpacks() {
        let mut seen = 0;
        for name in Assets::iter().filter(|n| n.ends_with(".gz")) {
            let file = Assets::get(&name).unwrap();
            let mut plain = Vec::new();
            GzDecoder::new(file.data.as_ref())
                .read_to_end(&mut plain)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(plain.len() > file.data.len(), "{name} did not shrink");
            assert_ne!(
                media_type(name.trim_end_matches(".gz")),
                "application/octet-stream"
            );
            seen += 1;
        }
        assert_eq!(
            seen, 3,
            "swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js"
        );
    }

    fn with(value: &str) -> Request {
        Request::builder()
            .header(header::ACCEPT_ENCODING, value)
            .finish()
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        for yes in [
            "gzip",
            "gzip, deflate, br, zstd",
            "br;q=1.0, GZIP;q=0.5",
            "*",
        ] {
            assert!(accepts_gzip(&with(yes)), "{yes}");
        }
        for no in ["identity", "gzip;q=0", "br, gzip ; q=0.0", "x-gzip-not", ""] {
            assert!(!accepts_gzip(&with(no)), "{no}");
        }
        assert!(!accepts_gzip(&Request::builder().finish()));
    }
}
