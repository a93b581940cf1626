//! `JsonOut`: a JSON response body written straight from `serde`.
//!
//! poem-openapi's `Json` builds a `serde_json::Value` tree first and then
//! writes it; for every read that is a second copy of the data and many
//! small allocations. This payload documents the same schema (from the
//! poem-openapi type) but serialises the value directly.

use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;
use serde_json::Value;

/// A JSON response body.
pub struct JsonOut<T>(pub T);

impl<T: Type + Serialize> Payload for JsonOut<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + Serialize> IntoResponse for JsonOut<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder()
                .header(header::CONTENT_TYPE, <Self as Payload>::CONTENT_TYPE)
                .body(body),
            // Our own types always serialise; should one not, it is a bug,
            // answered like any other.
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a response");
                crate::api::error::ApiError::Internal.into_response()
            }
        }
    }
}

/// A JSON response body already built as a value (by the domain),
/// documented as `D`.
pub struct JsonValue<D>(Value, std::marker::PhantomData<fn() -> D>);

impl<D> JsonValue<D> {
    pub fn new(value: Value) -> JsonValue<D> {
        JsonValue(value, std::marker::PhantomData)
    }
}

impl<D: Type> Payload for JsonValue<D> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        D::schema_ref()
    }

    fn register(registry: &mut Registry) {
        D::register(registry);
    }
}

impl<D: Type> IntoResponse for JsonValue<D> {
    fn into_response(self) -> Response {
        Response::builder()
            .header(header::CONTENT_TYPE, <Self as Payload>::CONTENT_TYPE)
            .body(self.0.to_string())
    }
}
