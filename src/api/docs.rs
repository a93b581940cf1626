//! The documentation pages and their assets, embedded in the binary so that
//! `/docs` and `/redoc` work with no network.

use poem::http::{header, StatusCode};
use poem::{handler, web::Path, IntoResponse, Response};
use rust_embed::RustEmbed;

/// Everything under `assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
pub struct Assets;

fn asset(path: &str) -> Response {
    match Assets::get(path) {
        Some(file) => Response::builder()
            .header(header::CONTENT_TYPE, file.metadata.mimetype())
            .header(header::CACHE_CONTROL, "public, max-age=3600")
            .body(file.data.into_owned()),
        None => crate::api::error::ApiError::NotFound("no such route".into()).into_response(),
    }
}

/// Swagger UI.
#[handler]
pub fn swagger() -> Response {
    asset("docs.html")
}

/// ReDoc.
#[handler]
pub fn redoc() -> Response {
    asset("redoc.html")
}

/// The embedded scripts, styles and icons.
#[handler]
pub fn assets(Path(path): Path<String>) -> Response {
    // The dashboard's files are served under `/dashboard` only, with its
    // Content-Security-Policy: its page must not load without it.
    if path.starts_with("dashboard/") {
        return crate::api::error::ApiError::NotFound("no such route".into()).into_response();
    }
    asset(&path)
}

/// Serves a fixed JSON document (the OpenAPI spec).
pub fn json(body: String) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
}
