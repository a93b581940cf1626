//! [`ApiError`]: the one place that picks a status code and writes the
//! RFC 9457 problem+json body.
//!
//! Store failures, request-parsing failures and the router's own errors
//! (unknown path, wrong method) all end here. Unexpected failures are logged
//! with their cause chain and answered with a short opaque message: no SQL,
//! driver text or stack trace ever reaches a client.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::Object;
use serde::Serialize;

use crate::domain::{Status, ValidationErrors};
use crate::error_chain::error_chain;
use crate::log_text::{clip, MAX_LOGGED_CHARS};
use crate::storage::{Conflict, StoreError};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// How many seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "2";
/// The same, after a 503 of a limit: queues drain in moments.
const OVERLOADED_RETRY_AFTER_SECONDS: &str = "1";

/// One bad field or parameter.
#[derive(Debug, Clone, Serialize, Object)]
pub struct ProblemField {
    /// The field or query parameter (`body` for the document as a whole).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem details object.
#[derive(Debug, Clone, Serialize, Object)]
pub struct Problem {
    /// Always `about:blank`: the status code says what kind of problem it is.
    #[serde(rename = "type")]
    #[oai(rename = "type")]
    pub kind: String,
    /// The status code's reason phrase.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong, for a human.
    pub detail: String,
    /// Every bad field and parameter (422 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<Vec<ProblemField>>,
    /// The order's current status (409 on an illegal transition).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub current_status: Option<String>,
    /// The statuses the order may move to from its current one (409 on an
    /// illegal transition; empty when the status is final).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub allowed_transitions: Option<Vec<String>>,
    /// The request's id (as in the `X-Request-Id` response header), to
    /// quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(skip_serializing_if_is_none)]
    pub request_id: Option<String>,
}

/// Every way a request can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// The caller is known but may not do this (its permissions or its customer).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The `order_id` (as the caller sent it) is taken. The answer is the
    /// same whoever holds it and names nothing else (no id, customer or
    /// link of that order): `order_id` is unique across the service, and a
    /// customer-scoped caller must learn no more than that it is taken.
    #[error("{0}")]
    DuplicateOrderId(String),
    #[error("illegal transition")]
    Transition { from: Status, to: Status },
    /// The idempotency key is in use by a request still running.
    #[error("idempotency key in use")]
    IdempotencyInProgress,
    /// `If-Match` did not match; carries the order's current tag.
    #[error("precondition failed")]
    PreconditionFailed { etag: String },
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error("service unavailable")]
    Unavailable,
    /// A limit of the service was reached (503 at once, `Retry-After`);
    /// the text says which, in the client's terms.
    #[error("overloaded")]
    Overloaded(&'static str),
    /// Any other client error the HTTP layer raises (e.g. a CORS refusal).
    #[error("client error {0}")]
    Client(StatusCode),
    /// The request conflicts with something running now (a backup); the
    /// text says what, and when to retry.
    #[error("{0}")]
    Busy(String),
    /// What is asked for does not exist with this database (backups of
    /// PostgreSQL: they belong to the database); a 404 whose text says
    /// what to use instead. Not a 501: nothing is broken or missing in the
    /// service, and a 5xx would read as a fault to clients and monitors.
    #[error("{0}")]
    Unsupported(String),
    /// A service this one depends on (the backups' bucket) failed; the
    /// text says what was done all the same. The cause is logged.
    #[error("{0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The status code of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::DuplicateOrderId(_)
            | ApiError::Transition { .. }
            | ApiError::IdempotencyInProgress
            | ApiError::Busy(_) => StatusCode::CONFLICT,
            ApiError::Unsupported(_) => StatusCode::NOT_FOUND,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable | ApiError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Client(status) => *status,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// "No such order", the same words for every lookup.
    pub fn order_not_found() -> ApiError {
        ApiError::NotFound("no such order".into())
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let mut problem = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: String::new(),
            errors: None,
            current_status: None,
            allowed_transitions: None,
            request_id: crate::request_id::current_request_id(),
        };
        problem.detail = match self {
            ApiError::BadRequest(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Busy(detail)
            | ApiError::Unsupported(detail)
            | ApiError::BadGateway(detail) => detail.clone(),
            ApiError::Unauthorized => {
                "a valid bearer token is required (Authorization: Bearer <token>)".into()
            }
            ApiError::MethodNotAllowed => "this path does not accept this method".into(),
            ApiError::DuplicateOrderId(order_id) => {
                format!("order_id {order_id:?} is already taken")
            }
            ApiError::Transition { from, to } => {
                let allowed: Vec<String> =
                    from.next().iter().map(|s| s.as_str().to_string()).collect();
                let detail = if allowed.is_empty() {
                    format!("cannot change status from {from} to {to}: {from} is final")
                } else {
                    format!(
                        "cannot change status from {from} to {to}; allowed from {from}: {}",
                        allowed.join(", ")
                    )
                };
                problem.current_status = Some(from.as_str().into());
                problem.allowed_transitions = Some(allowed);
                detail
            }
            ApiError::IdempotencyInProgress => {
                "a request with this Idempotency-Key is still being processed; retry shortly".into()
            }
            ApiError::PreconditionFailed { etag } => {
                format!("the order has changed since it was read (If-Match); its current ETag is {etag}")
            }
            ApiError::PayloadTooLarge { limit } => {
                format!("the request body is over the limit of {limit} bytes")
            }
            ApiError::UnsupportedMediaType => {
                "the request body must be sent with Content-Type: application/json".into()
            }
            ApiError::Validation(errors) => {
                problem.errors = Some(
                    errors
                        .0
                        .iter()
                        .map(|e| ProblemField {
                            field: e.field.clone(),
                            message: e.message.clone(),
                        })
                        .collect(),
                );
                errors.summary()
            }
            ApiError::Unavailable => "the database cannot be reached; retry shortly".into(),
            ApiError::Overloaded(detail) => (*detail).into(),
            ApiError::Client(status) => match *status {
                StatusCode::FORBIDDEN => "this request is not allowed".into(),
                StatusCode::URI_TOO_LONG => "the request target is too long (at most 8 KiB)".into(),
                StatusCode::REQUEST_TIMEOUT => "the request body did not arrive in time".into(),
                other => other
                    .canonical_reason()
                    .unwrap_or("client error")
                    .to_lowercase(),
            },
            ApiError::Internal => "an unexpected error occurred".into(),
        };
        problem
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::order_not_found(),
            StoreError::Forbidden(reason) => ApiError::Forbidden(reason),
            StoreError::Conflict(Conflict::DuplicateOrderId(id)) => ApiError::DuplicateOrderId(id),
            StoreError::Conflict(Conflict::Transition { from, to }) => {
                ApiError::Transition { from, to }
            }
            StoreError::IdempotencyInProgress => ApiError::IdempotencyInProgress,
            StoreError::IdempotencyMismatch => ApiError::Validation(ValidationErrors::one(
                "Idempotency-Key",
                "was already used with a different request",
            )),
            StoreError::PreconditionFailed(current) => ApiError::PreconditionFailed {
                etag: current.etag(),
            },
            StoreError::Unavailable(reason) => {
                tracing::warn!(reason = %clip(&reason, MAX_LOGGED_CHARS), "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Overloaded(limit) => {
                // Debug only: a flood would otherwise flood the logs too.
                tracing::debug!(limit, "request refused at a limit");
                ApiError::Overloaded(
                    "the service is busy: too many requests are waiting for the database; \
                     retry after the delay in Retry-After",
                )
            }
            StoreError::Backend(source) => {
                let error = error_chain(source.as_ref());
                tracing::error!(error = %clip(&error, MAX_LOGGED_CHARS), "database error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::backup::Error> for ApiError {
    /// A backup running is a 409; anything else is logged whole (paths
    /// and SQLite's words stay in the log) and answered without them.
    fn from(e: crate::backup::Error) -> Self {
        use crate::backup::Error;
        match e {
            Error::Busy(_) => ApiError::Busy(
                "a backup is already running (scheduled, asked for, or `commandes backup` into \
                 the same folder); retry once it has finished"
                    .into(),
            ),
            Error::S3(_) => {
                let error = error_chain(&e);
                tracing::warn!(error = %clip(&error, MAX_LOGGED_CHARS), "the backups' bucket failed");
                ApiError::BadGateway(
                    "the backups' bucket refused or failed the request; the server log says why"
                        .into(),
                )
            }
            e => {
                let error = error_chain(&e);
                tracing::error!(error = %clip(&error, MAX_LOGGED_CHARS), "backup error");
                ApiError::Internal
            }
        }
    }
}

impl From<crate::backup::TakeError> for ApiError {
    fn from(e: crate::backup::TakeError) -> Self {
        match e {
            crate::backup::TakeError::Backup(e) => e.into(),
            crate::backup::TakeError::Upload(failed) => {
                let error = error_chain(&failed);
                tracing::warn!(error = %clip(&error, MAX_LOGGED_CHARS), "backup upload failed");
                ApiError::BadGateway(format!(
                    "the backup {} was taken and verified, and rotation ran in its folder, \
                     but its copy in the bucket failed (the server log says why); the next \
                     backup tries again",
                    failed.name
                ))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = Response::builder()
            .status(self.status())
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .body(body);
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
            }
            ApiError::Overloaded(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(OVERLOADED_RETRY_AFTER_SECONDS),
                );
            }
            ApiError::PreconditionFailed { etag } => {
                if let Ok(v) = HeaderValue::from_str(&etag) {
                    headers.insert(header::ETAG, v);
                }
            }
            // The rest of a stalled body is not waited for: the connection
            // closes once this is sent (HTTP/1.1).
            ApiError::Client(StatusCode::REQUEST_TIMEOUT) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        self.clone().into_response()
    }
}

/// Turns any error that reached the top of the router into a problem
/// response: ours as they are, poem's by status, anything else as an opaque
/// 500 (logged).
pub fn to_problem(err: poem::Error) -> Response {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return poem::error::ResponseError::as_response(api);
    }
    let status = err.status();
    let api = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound("no such route".into()),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: 0 },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::BAD_REQUEST => ApiError::BadRequest("the request is malformed".into()),
        s if s.is_client_error() => ApiError::Client(s),
        _ => {
            let error = err.to_string();
            tracing::error!(%status, error = %clip(&error, MAX_LOGGED_CHARS), "unhandled error");
            ApiError::Internal
        }
    };
    api.into_response()
}
