//! `GET /stats`: counts and amounts per status.

use std::sync::Arc;

use super::json::JsonOut;
use poem::Request;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::BearerAuth;
use super::extract::no_query;
use super::schema::Stats;
use super::ApiTags;
use crate::api::declared::{Errors, Reads};
use crate::api::error::ApiError;
use crate::storage::Store;

/// The statistics operation.
pub struct StatsApi {
    pub store: Arc<dyn Store>,
}

#[derive(ApiResponse)]
pub enum StatsResponse {
    /// Figures over all orders.
    #[oai(status = 200)]
    Ok(JsonOut<Stats>),
}

#[OpenApi(tag = "ApiTags::Stats")]
impl StatsApi {
    /// Order statistics
    ///
    /// Over all orders, cancelled ones included: the total count, counts and
    /// amounts per status (all four always present), the total and the
    /// average amount. For a customer-scoped JWT (`COMMANDES_CUSTOMER_CLAIM`),
    /// over that customer's orders only.
    #[oai(path = "/stats", method = "get", operation_id = "get_stats")]
    async fn stats(
        &self,
        auth: BearerAuth,
        request: &Request,
    ) -> Result<StatsResponse, Errors<Reads>> {
        no_query(request).map_err(ApiError::Validation)?;
        Ok(StatsResponse::Ok(JsonOut(
            self.store.stats(&auth.0.actor()).await?.into(),
        )))
    }
}
