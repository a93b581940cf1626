//! Order events over HTTP: an order's history, and the feed consumers
//! pull (`GET /events`, with optional long polling).

use std::sync::Arc;
use std::time::Duration;

use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::registry::MetaSchema;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;
use tokio::sync::{watch, Semaphore};

use super::auth::BearerAuth;
use super::extract::{query_pairs, Problems};
use super::json::JsonValue;
use super::schema::{AmountText, Doc, IdText, Order, ParamSchema, Status, Timestamp};
use super::ApiTags;
use crate::api::declared::{Errors, ReadOne, Reads};
use crate::api::error::ApiError;
use crate::domain::event::Event;
use crate::domain::filter::accepted_once;
use crate::domain::validation::parse_id;
use crate::domain::ValidationErrors;
use crate::storage::Store;

/// The longest `wait` of a long poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// Most events a feed page holds.
pub const MAX_LIMIT: u32 = 1000;
/// Events a feed page holds by default.
pub const DEFAULT_LIMIT: u32 = 100;
/// How often a long poll looks again. No LISTEN/NOTIFY: it must work
/// through a transaction pooler; a look finding nothing costs an index probe.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Set when the server starts to stop, so long polls answer at once instead
/// of holding the shutdown for up to [`MAX_WAIT_SECS`].
#[derive(Debug, Clone)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// The signal and the handle that raises it (send `true`).
    pub fn new() -> (watch::Sender<bool>, Stopping) {
        let (tx, rx) = watch::channel(false);
        (tx, Stopping(rx))
    }

    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the server is stopping (or nobody can tell it any more).
    pub(crate) async fn raised(&mut self) {
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// The events operations.
pub struct EventsApi {
    pub store: Arc<dyn Store>,
    /// The CloudEvents `source` of every event.
    pub source: String,
    pub stopping: Stopping,
    /// One permit per long poll that may wait at once
    /// (`events.max_waiters`).
    pub waiters: Arc<Semaphore>,
}

/// What `GET /events` asks for (and an order's history, without `wait`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedQuery {
    pub after: i64,
    pub limit: u32,
    pub wait: Duration,
}

impl FeedQuery {
    /// Parses the query string; every bad, repeated, empty or unknown
    /// parameter is reported.
    pub fn from_query(pairs: &[(String, String)]) -> Result<FeedQuery, ValidationErrors> {
        Self::parse(pairs, &["after", "limit", "wait"])
    }

    /// The query of an order's history: `after` and `limit` as in the feed
    /// (a history does not wait).
    pub fn history_query(pairs: &[(String, String)]) -> Result<FeedQuery, ValidationErrors> {
        Self::parse(pairs, &["after", "limit"])
    }

    /// Parses the parameters `known` (any others are unknown).
    pub(super) fn parse(
        pairs: &[(String, String)],
        known: &[&str],
    ) -> Result<FeedQuery, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let mut query = FeedQuery {
            after: 0,
            limit: DEFAULT_LIMIT,
            wait: Duration::ZERO,
        };
        let digits = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        for (name, value) in accepted_once(pairs, |name| known.contains(&name), &mut errors) {
            let ok = match name {
                "after" => value
                    .parse::<i64>()
                    .ok()
                    .filter(|_| digits(value))
                    .map(|n| query.after = n)
                    .ok_or("must be a non-negative integer (a sequence number)"),
                "limit" => value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| digits(value) && (1..=MAX_LIMIT).contains(n))
                    .map(|n| query.limit = n)
                    .ok_or("must be an integer from 1 to 1000"),
                _ => value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| digits(value) && *n <= MAX_WAIT_SECS)
                    .map(|n| query.wait = Duration::from_secs(n))
                    .ok_or("must be an integer from 0 to 30 (seconds)"),
            };
            if let Err(message) = ok {
                errors.push(name, message);
            }
        }
        errors.into_result().map(|()| query)
    }
}

#[derive(ApiResponse)]
pub enum FeedResponse {
    /// The events after `after`, by ascending `data.sequence` (an empty
    /// array when there are none yet, also after a `wait`).
    #[oai(status = 200)]
    Ok(
        JsonValue<Vec<CloudEvent>>,
        /// Always: `</events?after=N&limit=L>; rel="next"`, where to ask
        /// next (`N` is the last sequence number returned, or `after` if
        /// none was).
        #[oai(header = "Link")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum HistoryResponse {
    /// The order's events after `after`, oldest first, at most `limit` (an
    /// empty array for an order that has none: loaded by an import or as
    /// demo data, or made before events existed, or whose events are past
    /// the retention).
    #[oai(status = 200)]
    Ok(
        JsonValue<Vec<CloudEvent>>,
        /// When the page is full (more may follow):
        /// `</commandes/{id}/history?after=N&limit=L>; rel="next"`, where
        /// `N` is the last sequence number returned. A shorter page is the
        /// end of the history and has no `Link`.
        #[oai(header = "Link")]
        Option<String>,
    ),
}

fn envelopes(events: &[Event], source: &str) -> Value {
    Value::Array(events.iter().map(|e| e.cloud_event(source)).collect())
}

/// `<{path}?after=N&limit=L>; rel="next"`: the page after `events`, where
/// `N` is the last sequence number returned, or `after` if none was.
fn next_link(path: &str, query: &FeedQuery, events: &[Event]) -> String {
    let next = events.last().map_or(query.after, |e| e.sequence);
    format!("<{path}?after={next}&limit={}>; rel=\"next\"", query.limit)
}

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// An order's history
    ///
    /// Every change of the order as CloudEvents, oldest first: the status
    /// timeline with who and when. Still served once the order is deleted
    /// (the deletion is the last entry); 404 for an id that never had an
    /// order (or a deleted one whose events are past the retention). Events
    /// are kept for the configured retention (default 30 days).
    ///
    /// Paged like `GET /events`: at most `limit` events (default 100, at
    /// most 1000) after the sequence number `after`; a full page carries
    /// `Link: rel="next"` to the following one, and a history shorter than
    /// a page is the whole of it, without a `Link`.
    ///
    /// A customer-scoped JWT (`COMMANDES_CUSTOMER_CLAIM`) reads only the
    /// time the order was its customer's: the events after which the order
    /// belonged to that customer. The event that moved the order to another
    /// customer, and everything after it, is the new customer's; the event
    /// that moved it to this customer shows only the `after` values of its
    /// `changes` (no `before`: that was another customer's order). Such a
    /// caller never gets `data.actor` nor `data.request_id`, which name
    /// other callers. It gets a 404 for an order of which it may read no
    /// event and which is not its own. Static tokens and unscoped JWTs read
    /// every event whole.
    #[oai(
        path = "/commandes/:id/history",
        method = "get",
        operation_id = "get_order_history"
    )]
    async fn history(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The order's numeric id.
        id: Path<IdText>,
        /// The last sequence number seen (0: from the oldest event kept).
        #[oai(name = "after")]
        _after: Query<Option<Doc<AfterParam>>>,
        /// Most events to return, 1–1000.
        #[oai(name = "limit")]
        _limit: Query<Option<Doc<FeedLimitParam>>>,
    ) -> Result<HistoryResponse, Errors<ReadOne>> {
        let mut problems = Problems::default();
        let id = problems.check(parse_id(&id.0 .0));
        let query = problems.check(query_pairs(request).and_then(|q| FeedQuery::history_query(&q)));
        problems.finish()?;
        let id = id.flatten().ok_or_else(ApiError::order_not_found)?;
        let query = query.expect("checked");
        let events = self
            .store
            .history(id, query.after, query.limit, &auth.0.actor())
            .await?;
        let next = (events.len() == query.limit as usize)
            .then(|| next_link(&format!("/commandes/{id}/history"), &query, &events));
        Ok(HistoryResponse::Ok(
            JsonValue::new(envelopes(&events, &self.source)),
            next,
        ))
    }

    /// The event feed
    ///
    /// Every order event, by ascending `data.sequence`, after `after`. A
    /// consumer that always asks for `after=<the last data.sequence it
    /// saw>` gets every event exactly once and in order, even while many
    /// changes commit concurrently: a number is given only once its change
    /// is committed, above every number given before. With `wait`, a
    /// request that finds nothing waits up to that many seconds for an
    /// event (long polling) and answers as soon as one arrives, or with an
    /// empty array. At most `events.max_waiters` (default 256) long polls
    /// wait at once: past it, a request with `wait` is refused at once with
    /// 503 and `Retry-After`. A waiting poll holds no database connection
    /// (it looks every 200 ms). A caller restricted to one customer may not
    /// read the feed (403).
    #[oai(path = "/events", method = "get", operation_id = "list_events")]
    async fn feed(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The last sequence number seen (0: from the oldest event kept).
        #[oai(name = "after")]
        _after: Query<Option<Doc<AfterParam>>>,
        /// Most events to return, 1–1000.
        #[oai(name = "limit")]
        _limit: Query<Option<Doc<FeedLimitParam>>>,
        /// Seconds to wait for an event when there is none yet, 0–30.
        #[oai(name = "wait")]
        _wait: Query<Option<Doc<WaitParam>>>,
    ) -> Result<FeedResponse, Errors<Reads>> {
        let query = query_pairs(request).and_then(|q| FeedQuery::from_query(&q))?;
        if auth.0.actor().owner.is_some() {
            return Err(ApiError::Forbidden(
                "the event feed covers every customer; this caller may see only one".into(),
            )
            .into());
        }
        // A long poll holds a slot for its whole wait.
        let _slot = if query.wait.is_zero() {
            None
        } else {
            Some(self.waiters.clone().try_acquire_owned().map_err(|_| {
                ApiError::Overloaded(
                    "too many long polls are waiting; retry after the delay in Retry-After, \
                     or read without wait",
                )
            })?)
        };
        let deadline = tokio::time::Instant::now() + query.wait;
        let mut stopping = self.stopping.clone();
        let events = loop {
            let events = self.store.events_after(query.after, query.limit).await?;
            let now = tokio::time::Instant::now();
            if !events.is_empty() || now >= deadline || stopping.is_set() {
                break events;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY.min(deadline - now)) => {}
                () = stopping.raised() => {}
            }
        };
        let link = next_link("/events", &query, &events);
        Ok(FeedResponse::Ok(
            JsonValue::new(envelopes(&events, &self.source)),
            link,
        ))
    }
}

/// `after`: a sequence number.
pub struct AfterParam;
impl ParamSchema for AfterParam {
    fn schema() -> MetaSchema {
        let mut s = MetaSchema::new_with_format("integer", "int64");
        s.minimum = Some(0.0);
        s.default = Some(Value::from(0));
        s
    }
}

/// `limit` of the feed.
pub struct FeedLimitParam;
impl ParamSchema for FeedLimitParam {
    fn schema() -> MetaSchema {
        let mut s = MetaSchema::new_with_format("integer", "int32");
        s.minimum = Some(1.0);
        s.maximum = Some(f64::from(MAX_LIMIT));
        s.default = Some(Value::from(DEFAULT_LIMIT));
        s
    }
}

/// `wait`: seconds of long polling.
pub struct WaitParam;
impl ParamSchema for WaitParam {
    fn schema() -> MetaSchema {
        let mut s = MetaSchema::new_with_format("integer", "int32");
        s.minimum = Some(0.0);
        s.maximum = Some(MAX_WAIT_SECS as f64);
        s.default = Some(Value::from(0));
        s
    }
}

// The shapes below document the events; the bodies are written from
// `Event::cloud_event`, the one place that decides what an event holds.

/// An order event: a CloudEvents 1.0 envelope in its JSON format.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderEvent")]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// The event's unique id (a UUID): the same in the feed, the history
    /// and every broker message, so a consumer can drop repeats.
    pub id: String,
    /// This service (`events.source`, default `/commandes`).
    pub source: String,
    #[oai(rename = "type")]
    pub kind: EventType,
    /// The order's `id`, as text.
    pub subject: String,
    /// When the change happened (RFC 3339, UTC, microseconds).
    pub time: Timestamp,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The CloudEvents distributed-tracing extension: the W3C
    /// `traceparent` of the request that made the change, so a consumer
    /// continues its trace (brokers get it as the `traceparent` message
    /// header too). With traces exported it names this service's span of
    /// that request; otherwise it is the caller's own header, when valid.
    /// Absent when the request had none, for changes made outside a
    /// request, for events written before the column existed, and for a
    /// customer-scoped JWT.
    #[oai(validator(
        pattern = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        max_length = 55
    ))]
    pub traceparent: Option<String>,
    pub data: EventData,
}

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum EventType {
    /// A new order.
    #[oai(rename = "order.created")]
    Created,
    /// Fields other than the status changed (`data.changes`).
    #[oai(rename = "order.updated")]
    Updated,
    /// The status changed (`data.from`, `data.to`).
    #[oai(rename = "order.status_changed")]
    StatusChanged,
    /// The order was deleted (`data.order` is as it was).
    #[oai(rename = "order.deleted")]
    Deleted,
}

/// The event's content.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderEventData")]
pub struct EventData {
    /// The event's place in the feed: increases with commit order.
    pub sequence: i64,
    /// The order's `id`.
    pub id: i64,
    /// The order's `order_id` after the change.
    pub order_id: String,
    /// Who made the change: `token:<token id>`, `jwt:<subject>` or
    /// `system` (never a credential). Never shown to a customer-scoped JWT.
    pub actor: Option<String>,
    /// The `X-Request-Id` of the request that made it. Never shown to a
    /// customer-scoped JWT.
    pub request_id: Option<String>,
    /// `order.updated`: each changed field, before and after.
    pub changes: Option<FieldChanges>,
    /// `order.status_changed`: the status before.
    pub from: Option<Status>,
    /// `order.status_changed`: the status after.
    pub to: Option<Status>,
    /// The order after the change (as it was, for `order.deleted`).
    pub order: Order,
}

/// The fields an `order.updated` changed (only those).
#[derive(Debug, Clone, Object)]
pub struct FieldChanges {
    pub order_id: Option<TextChange>,
    pub customer_id: Option<TextChange>,
    pub total_amount: Option<AmountChange>,
}

/// A text field's values before and after a change.
#[derive(Debug, Clone, Object)]
pub struct TextChange {
    /// Left out in the event that moved the order to a customer-scoped
    /// caller's customer (it was another customer's order then).
    pub before: Option<String>,
    pub after: String,
}

/// An amount before and after a change.
#[derive(Debug, Clone, Object)]
pub struct AmountChange {
    /// Left out like `TextChange.before`.
    pub before: Option<AmountText>,
    pub after: AmountText,
}

/// An example event for the docs: a real one, built by the domain.
pub fn example_event(source: &str) -> Value {
    use crate::domain::{event, Actor, Amount, Order as DomainOrder};
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T19:09:25.123456Z")
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_default();
    let before = DomainOrder {
        id: 42,
        order_id: "CMD-2026-0042".into(),
        customer_id: "CUST-7".into(),
        status: crate::domain::Status::Pending,
        total_amount: Amount::from_cents(15_050).expect("150.50 is an amount"),
        created_at: t,
        updated_at: t,
    };
    let mut after = before.clone();
    after.status = crate::domain::Status::Processing;
    after.updated_at = t + chrono::TimeDelta::minutes(5);
    let actor = Actor {
        who: "token:3f9a12c4".into(),
        request_id: "6b1d0c8e2f4a4b7d".into(),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        owner: None,
    };
    let mut e = event::changed(&before, &after, &actor).remove(0);
    e.id = "0b6e4f52-8d1a-4c3e-9f27-5a8b1c2d3e4f".into();
    Event {
        sequence: 1234,
        event: e,
    }
    .cloud_event(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<FeedQuery, Vec<String>> {
        let pairs: Vec<(String, String)> = q
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        FeedQuery::from_query(&pairs).map_err(|e| e.0.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn the_feed_query_has_defaults_and_bounds() {
        let q = parse(&[]).unwrap();
        assert_eq!((q.after, q.limit, q.wait), (0, 100, Duration::ZERO));
        let q = parse(&[("after", "42"), ("limit", "1000"), ("wait", "30")]).unwrap();
        assert_eq!(
            (q.after, q.limit, q.wait),
            (42, 1000, Duration::from_secs(30))
        );
        assert_eq!(parse(&[("wait", "31")]).unwrap_err(), ["wait"]);
        assert_eq!(parse(&[("limit", "+5")]).unwrap_err(), ["limit"]);
        assert_eq!(parse(&[("after", "-0")]).unwrap_err(), ["after"]);
        assert_eq!(
            parse(&[("after", "1"), ("after", "2"), ("x", "")]).unwrap_err(),
            ["after", "x"]
        );
    }

    #[test]
    fn a_history_query_is_the_feed_query_without_wait() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let q = FeedQuery::history_query(&pairs(&[("after", "7"), ("limit", "5")])).unwrap();
        assert_eq!((q.after, q.limit, q.wait), (7, 5, Duration::ZERO));
        let q = FeedQuery::history_query(&[]).unwrap();
        assert_eq!((q.after, q.limit), (0, DEFAULT_LIMIT));
        let e = FeedQuery::history_query(&pairs(&[("wait", "1")])).unwrap_err();
        assert_eq!(e.0[0].field, "wait");
    }

    #[test]
    fn the_docs_example_is_a_status_change() {
        let e = example_event("/commandes");
        assert_eq!(e["type"], "order.status_changed");
        assert_eq!(e["data"]["from"], "pending");
        assert_eq!(e["data"]["sequence"], 1234);
    }
}
