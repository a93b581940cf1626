//! `/commandes`: the orders resource (its French name is what existing
//! clients use).

use std::sync::Arc;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::BearerAuth;
use super::extract::{no_query, query_pairs, JsonBody};
use super::schema::{
    AmountParam, Doc, IdText, LimitParam, NewOrderRequest, Order, OrderPatchRequest, SkipParam, SortParam,
    StatusParam, StatusText, StatusUpdate, TextParam, TimeBoundParam,
};
use super::ApiTags;
use crate::domain::validation::{parse_id, status_from_json};
use crate::domain::{ListFilter, ListScope, NewOrder, OrderPatch, Status, ValidationErrors};
use crate::error::ApiError;
use crate::storage::Store;

/// The orders operations.
pub struct OrdersApi {
    pub store: Arc<dyn Store>,
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// The matching orders, in the requested order (an empty array if none).
    #[oai(status = 200)]
    Ok(Json<Vec<Order>>),
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// The order was created.
    #[oai(status = 201)]
    Created(
        Json<Order>,
        /// Where the new order is: `/commandes/{id}`.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum OrderResponse {
    /// The order.
    #[oai(status = 200)]
    Ok(Json<Order>),
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// The order was deleted; its `order_id` may be used again (its `id` never is).
    #[oai(status = 204)]
    Deleted,
}

/// Parses an `{id}`: 422 unless digits; 404 if no order can have it.
fn order_id_number(raw: &IdText) -> Result<i64, ApiError> {
    parse_id(&raw.0)?.ok_or_else(ApiError::order_not_found)
}

fn orders(list: Vec<crate::domain::Order>) -> ListResponse {
    ListResponse::Ok(Json(list.into_iter().map(Order::from).collect()))
}

#[OpenApi(tag = "ApiTags::Orders")]
impl OrdersApi {
    /// List orders
    ///
    /// Filters combine with AND; every bound is inclusive. Sorted by
    /// `-created_at` unless `sort` says otherwise, ties broken by `id` in
    /// the same direction. A bad, empty, repeated or unknown parameter is a
    /// 422 naming it, never a silently ignored filter.
    #[oai(path = "/commandes", method = "get", operation_id = "list_orders")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// Only orders in this status.
        #[oai(name = "status")]
        _status: Query<Option<Doc<StatusParam>>>,
        /// Only this customer's orders (exact match).
        #[oai(name = "customer_id")]
        _customer_id: Query<Option<Doc<TextParam>>>,
        /// Smallest `total_amount`, inclusive.
        #[oai(name = "min_amount")]
        _min_amount: Query<Option<Doc<AmountParam>>>,
        /// Largest `total_amount`, inclusive.
        #[oai(name = "max_amount")]
        _max_amount: Query<Option<Doc<AmountParam>>>,
        /// Earliest `created_at`, inclusive; a date means from its first microsecond (UTC).
        #[oai(name = "created_from")]
        _created_from: Query<Option<Doc<TimeBoundParam>>>,
        /// Latest `created_at`, inclusive; a date means to its last microsecond (UTC).
        #[oai(name = "created_to")]
        _created_to: Query<Option<Doc<TimeBoundParam>>>,
        /// Sort key; a leading `-` means descending.
        #[oai(name = "sort")]
        _sort: Query<Option<Doc<SortParam>>>,
        /// Orders to skip.
        #[oai(name = "skip")]
        _skip: Query<Option<Doc<SkipParam>>>,
        /// Most orders to return, 1–1000.
        #[oai(name = "limit")]
        _limit: Query<Option<Doc<LimitParam>>>,
    ) -> Result<ListResponse, ApiError> {
        let filter = ListFilter::from_query(&query_pairs(request), ListScope::All)?;
        Ok(orders(self.store.list(&filter).await?))
    }

    /// Create an order
    ///
    /// `status` defaults to `pending`; any status may be given. The
    /// response carries `Location: /commandes/{id}`. A taken `order_id` is
    /// a 409.
    #[oai(path = "/commandes", method = "post", operation_id = "create_order")]
    async fn create(
        &self,
        _auth: BearerAuth,
        request: &Request,
        body: JsonBody<NewOrderRequest>,
    ) -> Result<CreateResponse, ApiError> {
        no_query(request)?;
        let new = NewOrder::from_json(&body.0)?;
        let order = self.store.create(&new).await?;
        let location = format!("/commandes/{}", order.id);
        Ok(CreateResponse::Created(Json(order.into()), location))
    }

    /// Get an order by id
    #[oai(path = "/commandes/:id", method = "get", operation_id = "get_order")]
    async fn get(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The order's numeric id (digits only).
        id: Path<IdText>,
    ) -> Result<OrderResponse, ApiError> {
        let id = order_id_number(&id)?;
        no_query(request)?;
        Ok(OrderResponse::Ok(Json(self.store.get(id).await?.into())))
    }

    /// Get an order by its order_id
    ///
    /// An `order_id` holding `/` or other reserved characters is sent
    /// percent-encoded (`CMD%2F2025%2F001`).
    #[oai(path = "/commandes/order/:order_id", method = "get", operation_id = "get_order_by_order_id")]
    async fn get_by_order_id(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The business identifier, percent-encoded.
        order_id: Path<String>,
    ) -> Result<OrderResponse, ApiError> {
        no_query(request)?;
        // A value no order can hold (too long, control characters) is simply
        // absent; it never reaches the database.
        if crate::domain::check_text(&order_id.0).is_err() {
            return Err(ApiError::order_not_found());
        }
        Ok(OrderResponse::Ok(Json(self.store.get_by_order_id(&order_id.0).await?.into())))
    }

    /// List a customer's orders
    ///
    /// Takes the same filters as the full list, except `customer_id`. An
    /// unknown customer has an empty list.
    #[oai(path = "/commandes/customer/:customer_id", method = "get", operation_id = "list_customer_orders")]
    #[allow(clippy::too_many_arguments)]
    async fn by_customer(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The customer, percent-encoded.
        customer_id: Path<String>,
        /// Only orders in this status.
        #[oai(name = "status")]
        _status: Query<Option<Doc<StatusParam>>>,
        /// Smallest `total_amount`, inclusive.
        #[oai(name = "min_amount")]
        _min_amount: Query<Option<Doc<AmountParam>>>,
        /// Largest `total_amount`, inclusive.
        #[oai(name = "max_amount")]
        _max_amount: Query<Option<Doc<AmountParam>>>,
        /// Earliest `created_at`, inclusive.
        #[oai(name = "created_from")]
        _created_from: Query<Option<Doc<TimeBoundParam>>>,
        /// Latest `created_at`, inclusive.
        #[oai(name = "created_to")]
        _created_to: Query<Option<Doc<TimeBoundParam>>>,
        /// Sort key; a leading `-` means descending.
        #[oai(name = "sort")]
        _sort: Query<Option<Doc<SortParam>>>,
        /// Orders to skip.
        #[oai(name = "skip")]
        _skip: Query<Option<Doc<SkipParam>>>,
        /// Most orders to return, 1–1000.
        #[oai(name = "limit")]
        _limit: Query<Option<Doc<LimitParam>>>,
    ) -> Result<ListResponse, ApiError> {
        let mut filter = ListFilter::from_query(&query_pairs(request), ListScope::Customer)?;
        // A value no order can hold matches nothing: an empty list.
        if crate::domain::check_text(&customer_id.0).is_err() {
            return Ok(ListResponse::Ok(Json(Vec::new())));
        }
        filter.customer_id = Some(customer_id.0);
        Ok(orders(self.store.list(&filter).await?))
    }

    /// List the orders in a status
    ///
    /// Takes the same filters as the full list, except `status`.
    #[oai(path = "/commandes/status/:status", method = "get", operation_id = "list_status_orders")]
    #[allow(clippy::too_many_arguments)]
    async fn by_status(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// One of the four statuses.
        status: Path<StatusText>,
        /// Only this customer's orders.
        #[oai(name = "customer_id")]
        _customer_id: Query<Option<Doc<TextParam>>>,
        /// Smallest `total_amount`, inclusive.
        #[oai(name = "min_amount")]
        _min_amount: Query<Option<Doc<AmountParam>>>,
        /// Largest `total_amount`, inclusive.
        #[oai(name = "max_amount")]
        _max_amount: Query<Option<Doc<AmountParam>>>,
        /// Earliest `created_at`, inclusive.
        #[oai(name = "created_from")]
        _created_from: Query<Option<Doc<TimeBoundParam>>>,
        /// Latest `created_at`, inclusive.
        #[oai(name = "created_to")]
        _created_to: Query<Option<Doc<TimeBoundParam>>>,
        /// Sort key; a leading `-` means descending.
        #[oai(name = "sort")]
        _sort: Query<Option<Doc<SortParam>>>,
        /// Orders to skip.
        #[oai(name = "skip")]
        _skip: Query<Option<Doc<SkipParam>>>,
        /// Most orders to return, 1–1000.
        #[oai(name = "limit")]
        _limit: Query<Option<Doc<LimitParam>>>,
    ) -> Result<ListResponse, ApiError> {
        let status: Result<Status, ValidationErrors> = status
            .0
             .0
            .parse()
            .map_err(|e: crate::domain::status::UnknownStatus| ValidationErrors::one("status", e.to_string()));
        let query = ListFilter::from_query(&query_pairs(request), ListScope::Status);
        // Report the path and the query problems together.
        let (status, mut filter) = match (status, query) {
            (Ok(s), Ok(f)) => (s, f),
            (s, f) => {
                let mut errors = s.err().unwrap_or_default();
                errors.0.extend(f.err().unwrap_or_default().0);
                return Err(errors.into());
            }
        };
        filter.status = Some(status);
        Ok(orders(self.store.list(&filter).await?))
    }

    /// Change an order
    ///
    /// Any non-empty subset of `order_id`, `customer_id`, `total_amount`
    /// and `status`; the whole change is applied atomically or not at all.
    /// A status change must follow the transitions (409 otherwise); fields
    /// equal to the stored ones change nothing, `updated_at` included.
    #[oai(path = "/commandes/:id", method = "put", operation_id = "update_order")]
    async fn update(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        body: JsonBody<OrderPatchRequest>,
    ) -> Result<OrderResponse, ApiError> {
        let id = order_id_number(&id);
        let patch = OrderPatch::from_json(&body.0);
        no_query(request)?;
        let (id, patch) = match (id, patch) {
            (Ok(id), Ok(patch)) => (id, patch),
            (Err(ApiError::Validation(mut e)), Err(p)) => {
                e.0.extend(p.0);
                return Err(e.into());
            }
            (Err(e), _) => return Err(e),
            (_, Err(p)) => return Err(p.into()),
        };
        Ok(OrderResponse::Ok(Json(self.store.update(id, &patch).await?.order.into())))
    }

    /// Delete an order
    #[oai(path = "/commandes/:id", method = "delete", operation_id = "delete_order")]
    async fn delete(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
    ) -> Result<DeleteResponse, ApiError> {
        let id = order_id_number(&id)?;
        no_query(request)?;
        self.store.delete(id).await?;
        Ok(DeleteResponse::Deleted)
    }

    /// Change an order's status
    ///
    /// The body is a bare JSON string (`"processing"`) or
    /// `{"status": "processing"}`. `pending → processing | cancelled`,
    /// `processing → completed | cancelled`; `completed` and `cancelled`
    /// are final. Setting the current status again is a no-op.
    #[oai(path = "/commandes/:id/status", method = "put", operation_id = "update_order_status")]
    async fn set_status(
        &self,
        _auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        body: JsonBody<StatusUpdate>,
    ) -> Result<OrderResponse, ApiError> {
        let id = order_id_number(&id);
        let status = status_from_json(&body.0);
        no_query(request)?;
        let (id, status) = match (id, status) {
            (Ok(id), Ok(status)) => (id, status),
            (Err(ApiError::Validation(mut e)), Err(s)) => {
                e.0.extend(s.0);
                return Err(e.into());
            }
            (Err(e), _) => return Err(e),
            (_, Err(s)) => return Err(s.into()),
        };
        Ok(OrderResponse::Ok(Json(self.store.set_status(id, status).await?.order.into())))
    }
}
