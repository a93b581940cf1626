//! `GET /whoami`: what the presented token may do, so that a client (the
//! dashboard) can shape its UI without probing with requests that fail.

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::BearerAuth;
use super::extract::no_query;
use super::json::JsonOut;
use super::ApiTags;
use crate::access::Permission;
use crate::api::declared::{Errors, Reads};
use crate::api::error::ApiError;

/// The caller's own permissions.
pub struct WhoamiApi;

/// What the presented token may do.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Identity {
    /// `token:<token id>` (the first 8 hex digits of the token's SHA-256)
    /// for a static token, `jwt:<sub>` for a JWT: as `actor` in events.
    pub who: String,
    /// Whether it may change orders (`POST`, `PUT`, `DELETE`); a read-only
    /// token may not.
    pub may_write: bool,
    /// The one customer whose orders it sees (a customer-scoped JWT);
    /// absent for a caller that sees every customer. Such a caller may not
    /// read the event feed or stream.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

#[derive(ApiResponse)]
pub enum WhoamiResponse {
    /// The caller's permissions.
    #[oai(status = 200)]
    Ok(JsonOut<Identity>),
}

#[OpenApi(tag = "ApiTags::Service")]
impl WhoamiApi {
    /// What this token may do
    ///
    /// Who the token is (as events name it), whether it may change orders,
    /// and which customer it is limited to, if any. Changes nothing; any
    /// token that may read gets a 200 (an unknown token a 401).
    #[oai(path = "/whoami", method = "get", operation_id = "whoami")]
    async fn whoami(
        &self,
        auth: BearerAuth,
        request: &Request,
    ) -> Result<WhoamiResponse, Errors<Reads>> {
        no_query(request).map_err(ApiError::Validation)?;
        let caller = auth.0;
        Ok(WhoamiResponse::Ok(JsonOut(Identity {
            who: caller.who,
            may_write: caller.permissions.has(Permission::Write),
            customer_id: caller.owner,
        })))
    }
}
