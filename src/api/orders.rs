//! `/commandes`: the orders resource (its French name is what existing
//! clients use).

use std::sync::Arc;
use std::time::Duration;

use super::json::JsonOut;
use poem::Request;
use poem_openapi::param::{Header, Path};
use poem_openapi::{ApiResponse, OpenApi};

use super::auth::BearerAuth;
use super::extract::{no_query, query_pairs, JsonBody, Problems};
use super::schema::{
    IdText, IdempotencyKeyText, NewOrderRequest, Order, OrderPatchRequest, StatusText, StatusUpdate,
};
use super::ApiTags;
use crate::api::declared::{Change, Create, Delete, Errors, ReadOne, Reads};
use crate::api::error::ApiError;
use crate::domain::filter::Cursor;
use crate::domain::validation::{parse_id, status_from_json};
use crate::domain::{
    IdempotencyKey, ListFilter, ListScope, NewOrder, OrderPatch, Precondition, Status,
    ValidationErrors,
};
use crate::storage::Store;

/// The orders operations.
pub struct OrdersApi {
    pub store: Arc<dyn Store>,
    /// How long an idempotency key's outcome is kept.
    pub idempotency_ttl: Duration,
    /// The largest `skip` of a list (`server.max_skip`).
    pub max_skip: u64,
}

impl OrdersApi {
    /// The list filter of `request`'s query string.
    fn filter(&self, request: &Request, scope: ListScope) -> Result<ListFilter, ValidationErrors> {
        query_pairs(request).and_then(|q| ListFilter::from_query(&q, scope, self.max_skip))
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// The matching orders, in the requested order (an empty array if none).
    #[oai(status = 200)]
    Ok(
        JsonOut<Vec<Order>>,
        /// When the page is full: `<…&cursor=…>; rel="next"`, the URL of the
        /// next page (keyset pagination: as cheap at page 10,000 as at page 1).
        #[oai(header = "Link")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// The order was created.
    #[oai(status = 201)]
    Created(
        JsonOut<Order>,
        /// Where the new order is: `/commandes/{id}`.
        #[oai(header = "Location")]
        String,
        /// The order's entity tag, for `If-Match` on a later change.
        #[oai(header = "ETag")]
        String,
        /// `true` when this answer replays an earlier request with the
        /// same `Idempotency-Key` (nothing was created this time).
        #[oai(header = "Idempotent-Replayed")]
        Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum OrderResponse {
    /// The order.
    #[oai(status = 200)]
    Ok(
        JsonOut<Order>,
        /// The order's entity tag: it changes on every change.
        #[oai(header = "ETag")]
        String,
    ),
    /// `If-None-Match` matched: the order has not changed.
    #[oai(status = 304)]
    NotModified(
        /// The order's entity tag.
        #[oai(header = "ETag")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum ChangedResponse {
    /// The order as it now is (unchanged if the request changed nothing).
    #[oai(status = 200)]
    Ok(
        JsonOut<Order>,
        /// The order's new entity tag.
        #[oai(header = "ETag")]
        String,
    ),
}

/// A precondition header, if one was given (an empty one counts as none).
fn precondition(header: Option<String>) -> Option<Precondition> {
    header
        .filter(|v| !v.trim().is_empty())
        .map(|v| Precondition::parse(&v))
}

/// A read answer, honouring `If-None-Match`.
fn read_response(order: crate::domain::Order, if_none_match: Option<String>) -> OrderResponse {
    let etag = order.etag();
    match precondition(if_none_match) {
        Some(p) if p.matches_weak(&order) => OrderResponse::NotModified(etag),
        _ => OrderResponse::Ok(JsonOut(order.into()), etag),
    }
}

fn changed_response(order: crate::domain::Order) -> ChangedResponse {
    let etag = order.etag();
    ChangedResponse::Ok(JsonOut(order.into()), etag)
}

#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// The order was deleted; its `order_id` may be used again (its `id` never is).
    #[oai(status = 204)]
    Deleted,
}

/// An `{id}` that passed [`parse_id`]: 404 if no order can have it.
fn existing(id: Option<Option<i64>>) -> Result<i64, ApiError> {
    id.flatten().ok_or_else(ApiError::order_not_found)
}

/// A page of orders, with a `Link` to the next one when this one is full.
fn page(request: &Request, filter: &ListFilter, list: Vec<crate::domain::Order>) -> ListResponse {
    let full = list.len() == filter.limit as usize;
    let next = list.last().filter(|_| full).map(|last| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in query_pairs(request).unwrap_or_default() {
            // The cursor replaces the offset: skipping again would skip twice.
            if name != "cursor" && name != "skip" {
                query.append_pair(&name, &value);
            }
        }
        query.append_pair("cursor", &Cursor::after(last, filter.sort).encode());
        format!(
            "<{}?{}>; rel=\"next\"",
            request.uri().path(),
            query.finish()
        )
    });
    ListResponse::Ok(JsonOut(list.into_iter().map(Order::from).collect()), next)
}

/// The three lists read their query string with [`ListFilter::from_query`];
/// their parameters are added to the document by
/// [`super::list_params::WithListParameters`], not declared here.
#[OpenApi(tag = "ApiTags::Orders")]
impl OrdersApi {
    /// List orders
    ///
    /// Filters combine with AND; every bound is inclusive. Sorted by
    /// `-created_at` unless `sort` says otherwise, ties broken by `id` in
    /// the same direction. A bad, empty, repeated or unknown parameter is a
    /// 422 naming it, never a silently ignored filter. A customer-scoped JWT
    /// (`COMMANDES_CUSTOMER_CLAIM`) sees only its customer's orders, in this
    /// list and every other; another customer's order is a 404 to it.
    #[oai(path = "/commandes", method = "get", operation_id = "list_orders")]
    async fn list(
        &self,
        auth: BearerAuth,
        request: &Request,
    ) -> Result<ListResponse, Errors<Reads>> {
        let filter = self.filter(request, ListScope::All)?;
        Ok(page(
            request,
            &filter,
            self.store.list(&filter, &auth.0.actor()).await?,
        ))
    }

    /// Create an order
    ///
    /// `status` defaults to `pending`; any status may be given. The
    /// response carries `Location: /commandes/{id}`.
    ///
    /// `order_id` is unique across the service (case-sensitive), so a taken
    /// one is a 409 whoever holds it, another customer included for a
    /// customer-scoped JWT. That 409 is the same in every case and says only
    /// that the `order_id` is taken: no id, customer, status or link of the
    /// order holding it. An `order_id` is a business id, not a secret: that
    /// one exists can be learned by trying it. Where that matters, use
    /// unguessable `order_id`s.
    ///
    /// With an `Idempotency-Key`, a retry of the same request (same key,
    /// same values, same caller) within the key's lifetime (default 24 h)
    /// replays the first answer with `Idempotent-Replayed: true` instead of
    /// creating again; the same key with other values is a 422, and a retry
    /// while the first is still running a 409. The caller is the static
    /// token, or a JWT's issuer and `sub` (a refreshed token is the same
    /// caller); a JWT without `sub` is a caller of its own.
    #[oai(path = "/commandes", method = "post", operation_id = "create_order")]
    async fn create(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// A client-chosen unique key (1–255 printable ASCII characters)
        /// that makes retries safe.
        #[oai(name = "Idempotency-Key")]
        idempotency_key: Header<Option<IdempotencyKeyText>>,
        body: JsonBody<NewOrderRequest>,
    ) -> Result<CreateResponse, Errors<Create>> {
        let mut problems = Problems::default();
        problems.check(no_query(request));
        let new = problems.check(NewOrder::from_json(&body.0));
        let key = match (&new, &idempotency_key.0) {
            (Some(order), Some(k)) => problems.check(IdempotencyKey::new(
                &auth.0.scope,
                &k.0,
                order,
                self.idempotency_ttl,
            )),
            _ => None,
        };
        problems.finish()?;
        let new = new.expect("checked");
        let created = self
            .store
            .create(&new, key.as_ref(), &auth.0.actor())
            .await?;
        let order = created.order;
        let location = format!("/commandes/{}", order.id);
        let etag = order.etag();
        let replayed = created.replayed.then(|| "true".to_string());
        Ok(CreateResponse::Created(
            JsonOut(order.into()),
            location,
            etag,
            replayed,
        ))
    }

    /// Get an order by id
    ///
    /// The `ETag` header identifies this version; send it back in
    /// `If-None-Match` to get a 304 while it has not changed.
    #[oai(path = "/commandes/:id", method = "get", operation_id = "get_order")]
    async fn get(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The order's numeric id (digits only).
        id: Path<IdText>,
        /// Answer 304 if the order's ETag is one of these.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<OrderResponse, Errors<ReadOne>> {
        let mut problems = Problems::default();
        let id = problems.check(parse_id(&id.0 .0));
        problems.check(no_query(request));
        problems.finish()?;
        Ok(read_response(
            self.store.get(existing(id)?, &auth.0.actor()).await?,
            if_none_match.0,
        ))
    }

    /// Get an order by its order_id
    ///
    /// An `order_id` holding `/` or other reserved characters is sent
    /// percent-encoded (`CMD%2F2025%2F001`).
    #[oai(
        path = "/commandes/order/:order_id",
        method = "get",
        operation_id = "get_order_by_order_id"
    )]
    async fn get_by_order_id(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The business identifier, percent-encoded.
        order_id: Path<String>,
        /// Answer 304 if the order's ETag is one of these.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> Result<OrderResponse, Errors<ReadOne>> {
        no_query(request).map_err(ApiError::Validation)?;
        // A value no order can hold (too long, control characters) is simply
        // absent; it never reaches the database.
        if crate::domain::check_text(&order_id.0).is_err() {
            return Err(ApiError::order_not_found().into());
        }
        Ok(read_response(
            self.store
                .get_by_order_id(&order_id.0, &auth.0.actor())
                .await?,
            if_none_match.0,
        ))
    }

    /// List a customer's orders
    ///
    /// Takes the same filters as the full list, except `customer_id`. An
    /// unknown customer has an empty list.
    #[oai(
        path = "/commandes/customer/:customer_id",
        method = "get",
        operation_id = "list_customer_orders"
    )]
    async fn by_customer(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The customer, percent-encoded.
        customer_id: Path<String>,
    ) -> Result<ListResponse, Errors<Reads>> {
        let mut filter = self.filter(request, ListScope::Customer)?;
        // A value no order can hold matches nothing: an empty list.
        if crate::domain::check_text(&customer_id.0).is_err() {
            return Ok(ListResponse::Ok(JsonOut(Vec::new()), None));
        }
        filter.customer_id = Some(customer_id.0);
        Ok(page(
            request,
            &filter,
            self.store.list(&filter, &auth.0.actor()).await?,
        ))
    }

    /// List the orders in a status
    ///
    /// Takes the same filters as the full list, except `status`.
    #[oai(
        path = "/commandes/status/:status",
        method = "get",
        operation_id = "list_status_orders"
    )]
    async fn by_status(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// One of the four statuses.
        status: Path<StatusText>,
    ) -> Result<ListResponse, Errors<Reads>> {
        let mut problems = Problems::default();
        let status = problems.check(
            status
                .0
                 .0
                .parse::<Status>()
                .map_err(|e| ValidationErrors::one("status", e.to_string())),
        );
        let filter = problems.check(self.filter(request, ListScope::Status));
        problems.finish()?;
        let (status, mut filter) = (status.expect("checked"), filter.expect("checked"));
        filter.status = Some(status);
        Ok(page(
            request,
            &filter,
            self.store.list(&filter, &auth.0.actor()).await?,
        ))
    }

    /// Change an order
    ///
    /// Any non-empty subset of `order_id`, `customer_id`, `total_amount`
    /// and `status`; the whole change is applied atomically or not at all.
    /// A status change must follow the transitions (409 otherwise); fields
    /// equal to the stored ones change nothing, `updated_at` included. A
    /// taken `order_id` is a 409, the same as on create.
    ///
    /// Send `If-Match` with the `ETag` you read to change only that version
    /// (412 if someone changed it since); without it, the last write wins.
    #[oai(path = "/commandes/:id", method = "put", operation_id = "update_order")]
    async fn update(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        /// Change only if the order's ETag is one of these (else 412).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<OrderPatchRequest>,
    ) -> Result<ChangedResponse, Errors<Change>> {
        let mut problems = Problems::default();
        let id = problems.check(parse_id(&id.0 .0));
        problems.check(no_query(request));
        let patch = problems.check(OrderPatch::from_json(&body.0));
        problems.finish()?;
        let (id, patch) = (existing(id)?, patch.expect("checked"));
        let if_match = precondition(if_match.0);
        Ok(changed_response(
            self.store
                .update(id, &patch, if_match.as_ref(), &auth.0.actor())
                .await?
                .order,
        ))
    }

    /// Delete an order
    ///
    /// With `If-Match`, only the version whose `ETag` is given is deleted (412 otherwise).
    #[oai(
        path = "/commandes/:id",
        method = "delete",
        operation_id = "delete_order"
    )]
    async fn delete(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        /// Delete only if the order's ETag is one of these (else 412).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
    ) -> Result<DeleteResponse, Errors<Delete>> {
        let mut problems = Problems::default();
        let id = problems.check(parse_id(&id.0 .0));
        problems.check(no_query(request));
        problems.finish()?;
        let id = existing(id)?;
        let if_match = precondition(if_match.0);
        self.store
            .delete(id, if_match.as_ref(), &auth.0.actor())
            .await?;
        Ok(DeleteResponse::Deleted)
    }

    /// Change an order's status
    ///
    /// The body is a bare JSON string (`"processing"`) or
    /// `{"status": "processing"}`. `pending → processing | cancelled`,
    /// `processing → completed | cancelled`; `completed` and `cancelled`
    /// are final. Setting the current status again is a no-op. Honours
    /// `If-Match` like `PUT /commandes/{id}`.
    #[oai(
        path = "/commandes/:id/status",
        method = "put",
        operation_id = "update_order_status"
    )]
    async fn set_status(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        /// Change only if the order's ETag is one of these (else 412).
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: JsonBody<StatusUpdate>,
    ) -> Result<ChangedResponse, Errors<Change>> {
        let mut problems = Problems::default();
        let id = problems.check(parse_id(&id.0 .0));
        problems.check(no_query(request));
        let status = problems.check(status_from_json(&body.0));
        problems.finish()?;
        let (id, status) = (existing(id)?, status.expect("checked"));
        let if_match = precondition(if_match.0);
        Ok(changed_response(
            self.store
                .set_status(id, status, if_match.as_ref(), &auth.0.actor())
                .await?
                .order,
        ))
    }
}
