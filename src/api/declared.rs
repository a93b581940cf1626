//! The error responses each operation declares in the OpenAPI document:
//! exactly the statuses it can answer with, so that a generated client
//! has no case that never happens (no 413 or 415 on `GET /stats`).
//!
//! An operation returns `Result<…, Errors<S>>`: [`ApiError`] as it is,
//! documented with the statuses of the set `S`, one marker type per kind
//! of operation made by [`error_set!`]. The descriptions are written once,
//! here. What any route may answer before an operation runs (404 for an
//! unknown path, 405, 413 for a declared oversize body, 414) is said in
//! the document's description, not on every operation.

use std::marker::PhantomData;

use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::ApiResponse;

use super::error::{ApiError, Problem, PROBLEM_JSON};
use crate::domain::ValidationErrors;
use crate::storage::StoreError;

/// What each error status means, whichever operation answers it.
const DESCRIPTIONS: &[(u16, &str)] = &[
    (400, "The request body is not JSON (an empty body included)."),
    (401, "No token, a malformed `Authorization` header, or an unknown token. Carries `WWW-Authenticate: Bearer`."),
    (403, "The token is valid but may not do this: a read-only token (or a JWT without the `write` scope) on any change, a JWT whose role may not use the service (`anon`), an `authenticated` JWT without the customer claim, a customer-scoped JWT creating an order for another customer or moving one to another customer, or reading the event feed of all customers."),
    (404, "No such order (or an `{id}` outside 1…2⁶³−1); for a customer-scoped JWT, also another customer's order."),
    (408, "The request body did not arrive within `server.body_timeout_secs` (default 30 s) of its head; the connection is closed."),
    (409, "Duplicate `order_id` (unique across the service: the same answer whoever holds it, naming nothing but that it is taken), a status change the transitions do not allow (the body names the current status and the allowed ones), or an `Idempotency-Key` whose first request is still running."),
    (412, "`If-Match` was given and does not match the order's current ETag (`PUT`, `DELETE`); the response's `ETag` header is the current one."),
    (413, "The request body is over the configured limit (default 64 KiB)."),
    (415, "A request body sent without `Content-Type: application/json`."),
    (422, "Values of the wrong shape or out of range, unknown fields or query parameters: every one is listed in `errors`."),
    (503, "The database cannot be reached, or a limit of the service was reached (too many requests waiting for the database, too many `GET /events` long polls or event streams): refused at once. Carries `Retry-After`."),
];

/// The statuses an operation declares (a marker type, never a value).
pub trait ErrorSet: Send + Sync + 'static {
    /// `(status, description)`, in the order the document lists them.
    /// [`error_set!`] takes the descriptions from [`DESCRIPTIONS`]; a set
    /// whose statuses mean something else (the admin operations') writes
    /// its own.
    fn declared() -> Vec<(u16, &'static str)>;
}

/// `statuses` with their descriptions from [`DESCRIPTIONS`] (empty for
/// one that has none: a test checks that none is).
pub fn described(statuses: &[u16]) -> Vec<(u16, &'static str)> {
    statuses
        .iter()
        .map(|status| {
            let description = DESCRIPTIONS
                .iter()
                .find(|(s, _)| s == status)
                .map_or("", |(_, d)| *d);
            (*status, description)
        })
        .collect()
}

/// An [`ApiError`] from an operation whose document lists the statuses of
/// `S`. Any `ApiError` converts (as `?` does); the response is the same.
pub struct Errors<S>(pub ApiError, PhantomData<S>);

impl<S> From<ApiError> for Errors<S> {
    fn from(e: ApiError) -> Self {
        Errors(e, PhantomData)
    }
}

impl<S> From<StoreError> for Errors<S> {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl<S> From<ValidationErrors> for Errors<S> {
    fn from(e: ValidationErrors) -> Self {
        ApiError::from(e).into()
    }
}

/// The error itself, so that the router's error handler finds the
/// `ApiError` it knows (and its problem body) inside the `poem::Error`.
impl<S> From<Errors<S>> for poem::Error {
    fn from(e: Errors<S>) -> Self {
        e.0.into()
    }
}

impl<S: ErrorSet> ApiResponse for Errors<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::declared()
                .into_iter()
                .map(|(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Declares a set of statuses: `error_set!(Name: 401, 403);`.
macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($status:literal),+ $(,)?) => {
        $(#[$doc])*
        pub enum $name {}

        impl ErrorSet for $name {
            fn declared() -> Vec<(u16, &'static str)> {
                described(&[$($status),+])
            }
        }
    };
}

// Every operation behind a token: 401 (no or bad token), 403 (a token that
// may not do this), 422 (a query parameter, if only an unknown one), 503
// (the database or a limit). A path with an `{id}` or `{order_id}` adds
// 404; a JSON body adds 400, 408, 413 and 415; a change adds 409 and,
// with `If-Match`, 412.
error_set!(
    /// A list or figures: `GET /commandes`, `/stats`, `/events`, …
    Reads: 401, 403, 422, 503
);
error_set!(
    /// One order, or its history, by a path value.
    ReadOne: 401, 403, 404, 422, 503
);
error_set!(
    /// `POST /commandes`.
    Create: 400, 401, 403, 408, 409, 413, 415, 422, 503
);
error_set!(
    /// `PUT /commandes/{id}` and `PUT /commandes/{id}/status`.
    Change: 400, 401, 403, 404, 408, 409, 412, 413, 415, 422, 503
);
error_set!(
    /// `DELETE /commandes/{id}`.
    Delete: 401, 403, 404, 412, 422, 503
);

#[cfg(test)]
mod tests {
    use super::*;

    /// A status without a description would be declared with an empty one.
    #[test]
    fn every_declared_status_is_described() {
        for set in [
            Reads::declared(),
            ReadOne::declared(),
            Create::declared(),
            Change::declared(),
            Delete::declared(),
        ] {
            for (status, description) in set {
                assert!(!description.is_empty(), "{status} has no description");
            }
        }
    }
}
