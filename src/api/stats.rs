//! `GET /stats`: counts and amounts per status; `GET /stats/timeseries`:
//! the same figures per day, week or month of creation, for charts.

use std::sync::Arc;

use super::json::JsonOut;
use chrono::{DateTime, SecondsFormat, Utc};
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::registry::MetaSchema;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;

use super::auth::BearerAuth;
use super::extract::{no_query, query_pairs};
use super::schema::{
    AmountText, Doc, ParamSchema, StatusAmounts, StatusParam, TextParam, TimeBoundParam,
};
use super::schema::{Stats, StatusCounts};
use super::ApiTags;
use crate::api::declared::{Errors, Reads};
use crate::api::error::ApiError;
use crate::domain::amount::format_cents;
use crate::domain::timeseries::{Bucket, SeriesQuery};
use crate::storage::Store;

/// The statistics operations.
pub struct StatsApi {
    pub store: Arc<dyn Store>,
}

#[derive(ApiResponse)]
pub enum StatsResponse {
    /// Figures over all orders.
    #[oai(status = 200)]
    Ok(JsonOut<Stats>),
}

#[derive(ApiResponse)]
pub enum SeriesResponse {
    /// One bucket per day, week or month from `from` to `to`, empty ones
    /// included.
    #[oai(status = 200)]
    Ok(JsonOut<TimeSeries>),
}

/// Orders created per day, week or month.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct TimeSeries {
    /// `day`, `week` or `month`.
    pub interval: String,
    /// The start of the range (inclusive).
    pub from: String,
    /// The end of the range (exclusive).
    pub to: String,
    /// Every bucket that meets `[from, to)`, oldest first.
    pub buckets: Vec<SeriesBucket>,
}

/// The orders created in one bucket (and in `[from, to)`), with their
/// status now.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct SeriesBucket {
    /// Midnight UTC of the bucket's first day: a day, a Monday (ISO week)
    /// or the 1st of a month. The first bucket may start before `from`;
    /// it counts only the orders from `from` on.
    pub start: String,
    /// How many orders were created in the bucket.
    pub total_orders: i64,
    /// The sum of their amounts.
    pub total_amount: AmountText,
    /// How many of them are in each status now.
    pub by_status: StatusCounts,
    /// The sum of their amounts per status.
    pub amount_by_status: StatusAmounts,
}

/// RFC 3339 in UTC; fractional seconds only when there are some.
fn instant(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl From<&Bucket> for SeriesBucket {
    fn from(b: &Bucket) -> Self {
        let figures = Stats::from(b.figures.clone());
        SeriesBucket {
            start: instant(&b.start),
            total_orders: figures.total_orders,
            total_amount: AmountText(format_cents(b.figures.total_cents())),
            by_status: figures.by_status,
            amount_by_status: figures.amount_by_status,
        }
    }
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

    /// Orders over time
    ///
    /// The orders created from `from` (inclusive) to `to` (exclusive), per
    /// bucket of `interval`: a UTC day, an ISO week (from Monday 00:00
    /// UTC) or a calendar month. Each bucket has the figures of `/stats`
    /// for its orders (count and amount, per status, where status is the
    /// one they have now; no average). Every bucket that meets the range is
    /// there, in order, empty ones with zeros; buckets follow the calendar,
    /// so the first and the last may be partly outside the range (they
    /// count only the orders inside it). At most 1000 buckets (else 422).
    ///
    /// Defaults: `to` is the end of the current day, week or month (it is
    /// the last bucket), `from` 30 buckets before that: with no parameter,
    /// the last 30 days including today. A `YYYY-MM-DD` date means its
    /// midnight UTC (so `from=2026-01-01&to=2026-02-01` is January).
    ///
    /// `status` and `customer_id` keep only the orders with that status or
    /// customer. For a customer-scoped JWT, only that customer's orders.
    #[oai(
        path = "/stats/timeseries",
        method = "get",
        operation_id = "get_stats_timeseries"
    )]
    // The query parameters are declared for the document only (parsed by
    // the domain from the raw query, every problem reported at once).
    #[allow(clippy::too_many_arguments)]
    async fn timeseries(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The width of a bucket: `day` (default), `week` (ISO, from
        /// Monday) or `month`.
        #[oai(name = "interval")]
        _interval: Query<Option<Doc<IntervalParam>>>,
        /// The start of the range, inclusive: an RFC 3339 time or a
        /// `YYYY-MM-DD` date (its midnight UTC).
        #[oai(name = "from")]
        _from: Query<Option<Doc<InstantParam>>>,
        /// The end of the range, exclusive: an RFC 3339 time or a
        /// `YYYY-MM-DD` date (its midnight UTC).
        #[oai(name = "to")]
        _to: Query<Option<Doc<InstantParam>>>,
        /// Only orders in this status.
        #[oai(name = "status")]
        _status: Query<Option<Doc<StatusParam>>>,
        /// Only this customer's orders (exact match).
        #[oai(name = "customer_id")]
        _customer_id: Query<Option<Doc<TextParam>>>,
    ) -> Result<SeriesResponse, Errors<Reads>> {
        let query = query_pairs(request)
            .and_then(|pairs| SeriesQuery::from_query(&pairs, crate::domain::now()))?;
        let days = self.store.daily_figures(&query, &auth.0.actor()).await?;
        Ok(SeriesResponse::Ok(JsonOut(TimeSeries {
            interval: query.interval.as_str().into(),
            from: instant(&query.from),
            to: instant(&query.to),
            buckets: query
                .buckets(&days)
                .iter()
                .map(SeriesBucket::from)
                .collect(),
        })))
    }
}

/// `interval` of a time series.
pub struct IntervalParam;
impl ParamSchema for IntervalParam {
    fn schema() -> MetaSchema {
        let mut s = MetaSchema::new("string");
        s.enum_items = ["day", "week", "month"].map(Value::from).to_vec();
        s.default = Some(Value::from("day"));
        s
    }
}

/// `from` and `to` of a time series.
pub struct InstantParam;
impl ParamSchema for InstantParam {
    /// The lists' time bounds' schema (a date-time or a date, so never
    /// empty), with what a date means here.
    fn schema() -> MetaSchema {
        let mut s = TimeBoundParam::schema();
        s.description = Some("RFC 3339 time or YYYY-MM-DD (its midnight UTC)");
        s
    }
}
