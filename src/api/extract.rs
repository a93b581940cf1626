//! Request extraction in the contract's order: token (see [`super::auth`]),
//! then `Content-Type` (415), then JSON syntax (400); the values (422) are
//! the domain's business.

use std::marker::PhantomData;

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde_json::Value;

use crate::api::error::ApiError;
use crate::domain::ValidationErrors;

/// The body size limit, stored in the request data by the app.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a body may take to arrive once the head is in, stored in the
/// request data by the app: a client that stalls its upload gets 408 and
/// loses the connection instead of holding it.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub std::time::Duration);

/// A JSON request body, syntax-checked but not yet validated. `D` is the
/// documented shape (a poem-openapi type); the domain parses the value.
pub struct JsonBody<D>(pub Value, PhantomData<D>);

/// Whether a `Content-Type` is `application/json`, with any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
}

impl<D: Type> Payload for JsonBody<D> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        is_json(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        D::schema_ref()
    }

    fn register(registry: &mut Registry) {
        D::register(registry);
    }
}

impl<D: Type> ParsePayload for JsonBody<D> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        // A declared oversize body was refused before routing (api::routes);
        // this bounds what is actually read, chunked bodies included.
        let limit = request.data::<BodyLimit>().map_or(64 * 1024, |l| l.0);
        let deadline = request
            .data::<BodyTimeout>()
            .map_or(std::time::Duration::from_secs(30), |t| t.0);
        let reading = body
            .take()
            .map_err(|_| ApiError::BadRequest("the request body was already read".into()))?
            .into_bytes_limit(limit);
        let bytes = tokio::time::timeout(deadline, reading)
            .await
            .map_err(|_| ApiError::Client(poem::http::StatusCode::REQUEST_TIMEOUT))?
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => ApiError::PayloadTooLarge { limit },
                _ => ApiError::BadRequest("the request body could not be read".into()),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::BadRequest(
                "the request body is empty; a JSON document is expected".into(),
            )
            .into());
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::BadRequest(format!(
                "the request body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(JsonBody(value, PhantomData))
    }
}

impl<'a, D: Type> ApiExtractor<'a> for JsonBody<D> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        D::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: <Self as Payload>::CONTENT_TYPE,
                schema: D::schema_ref(),
            }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        match request.content_type() {
            Some(ct) if is_json(ct) => <Self as ParsePayload>::from_request(request, body).await,
            _ => Err(ApiError::UnsupportedMediaType.into()),
        }
    }
}

/// The query string as name/value pairs, percent-decoded. A name or value
/// that is not UTF-8 once decoded is a problem, not a lossy replacement: it
/// would otherwise match text it was never equal to.
pub fn query_pairs(request: &Request) -> Result<Vec<(String, String)>, ValidationErrors> {
    let mut pairs = Vec::new();
    let mut errors = ValidationErrors::default();
    let decode = |raw: &str| -> Result<String, String> {
        let spaced = raw.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| {
                String::from_utf8_lossy(
                    &percent_encoding::percent_decode_str(&spaced).collect::<Vec<u8>>(),
                )
                .into_owned()
            })
    };
    for part in request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        // `str::is_empty` spelled out: poem-openapi's `Type` trait, in scope
        // here, has an `is_empty` that a `&&str` would pick, always false.
        .filter(|p| !str::is_empty(p))
    {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        match (decode(name), decode(value)) {
            (Ok(name), Ok(value)) => pairs.push((name, value)),
            (Ok(name), Err(_)) => errors.push(name, "is not valid UTF-8"),
            (Err(lossy), _) => errors.push(lossy, "is not valid UTF-8"),
        }
    }
    errors.into_result()?;
    Ok(pairs)
}

/// Refuses any query parameter on an operation that takes none.
pub fn no_query(request: &Request) -> Result<(), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    match query_pairs(request) {
        Ok(pairs) => {
            for (name, _) in pairs {
                errors.push(name, "unknown query parameter");
            }
        }
        Err(e) => errors.0.extend(e.0),
    }
    errors.into_result()
}

/// The problems found in one request's path, query, headers and body,
/// gathered so that they are all reported in one 422.
#[derive(Debug, Default)]
pub struct Problems(ValidationErrors);

impl Problems {
    /// The value, or `None` with its problems kept.
    pub fn check<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                self.0 .0.extend(e.0);
                None
            }
        }
    }

    /// A 422 with everything found, if anything was.
    pub fn finish(self) -> Result<(), ApiError> {
        self.0.into_result().map_err(ApiError::Validation)
    }
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn query_pairs_decode_strictly() {
        let pairs = |uri: &'static str| {
            let req = poem::Request::builder()
                .uri(poem::http::Uri::from_static(uri))
                .finish();
            super::query_pairs(&req)
        };
        assert_eq!(pairs("/stats"), Ok(vec![]));
        assert_eq!(pairs("/stats?"), Ok(vec![]));
        assert_eq!(
            pairs("/x?a=1&&b=%C3%A9+x&c"),
            Ok(vec![
                ("a".into(), "1".into()),
                ("b".into(), "é x".into()),
                ("c".into(), "".into())
            ])
        );
        assert!(pairs("/x?customer_id=%FF").is_err());
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("Application/JSON;charset=UTF-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json("application/merge-patch+json"));
        assert!(!is_json(""));
    }
}
