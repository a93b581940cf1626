//! `GET /events/stream`: the event feed pushed as server-sent events.
//!
//! The same events, order and visibility as `GET /events`. Each stream
//! starts with what the store holds after its position (the `after`
//! parameter, or the `Last-Event-ID` header a reconnecting client sends),
//! then follows the process's shared reader ([`hub`]). Its memory is one
//! page of events at most: batches it is too slow to take are dropped for
//! it and it reads them from the store. A stream ends when the server
//! stops. While the store fails it stays open (heartbeats go on) and tries
//! again with a growing delay, so an outage does not turn every client
//! into a reconnect loop; each stream opens with a `retry:` hint so that
//! clients that do reconnect (after a shutdown, a proxy timeout) wait.

use std::sync::Arc;
use std::time::Duration;

use poem::http::header;
use poem::{Body, IntoResponse, Request, Response};
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::auth::BearerAuth;
use super::declared::{Errors, Reads};
use super::events::{AfterParam, CloudEvent, FeedQuery, Stopping};
use super::extract::query_pairs;
use super::schema::{Doc, ParamSchema};
use super::ApiTags;
use crate::api::error::ApiError;
use crate::domain::event::Event;
use crate::domain::ValidationErrors;
use crate::storage::Store;

pub mod hub;

pub use hub::Hub;

/// The request header a reconnecting `EventSource` sends.
const LAST_EVENT_ID: &str = "Last-Event-ID";

/// The `retry:` hint every stream opens with: how long a client waits
/// before reconnecting once the stream ends (an `EventSource` obeys it).
pub const RETRY_MS: u64 = 2000;
/// The first and the longest wait between two reads of the store while it
/// fails.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The value of `after` that starts at the newest event (only what comes).
pub const LATEST: &str = "latest";

/// The event stream operation.
pub struct StreamApi {
    pub hub: Arc<Hub>,
    /// The CloudEvents `source` of every event.
    pub source: String,
    pub stopping: Stopping,
    /// One permit per open stream (`events.max_streams`).
    pub slots: Arc<Semaphore>,
    /// Silence after which a comment is sent (`events.stream_heartbeat_secs`).
    pub heartbeat: Duration,
}

#[derive(ApiResponse)]
pub enum StreamResponse {
    /// Server-sent events, one per order event, until the server stops:
    /// `id:` the event's sequence number, `event:` its type
    /// (`order.created`, …), `data:` the event as one line of JSON, exactly
    /// as an item of `GET /events`. A comment line `: keep-alive` comes
    /// after every `events.stream_heartbeat_secs` (15) of silence.
    #[oai(status = 200)]
    Ok(EventStreamBody),
}

#[OpenApi(tag = "ApiTags::Events")]
impl StreamApi {
    /// The event feed, pushed
    ///
    /// The events of `GET /events`, in the same order, as server-sent
    /// events (`text/event-stream`), pushed as they are committed, through
    /// this replica or any other on the same database. The stream first
    /// sends every event after its position, then each new one.
    ///
    /// Resuming: the position is the `Last-Event-ID` header when present
    /// (a browser's `EventSource` sends it when it reconnects), else
    /// `after`, else 0 (from the oldest event kept). `after=latest` starts
    /// at the newest event (only new ones follow); the opening block then
    /// carries `id:` with that position, to resume from if the stream drops
    /// before the first event. A client that resumes from the last `id:` it
    /// received gets every event once, in order, across reconnections and
    /// restarts of the server.
    ///
    /// The stream opens with `: stream open` and `retry: 2000` (the
    /// milliseconds a client waits before reconnecting). A comment
    /// `: keep-alive` is sent after every `events.stream_heartbeat_secs`
    /// (15) of silence, so that proxies keep the connection. While the
    /// database cannot be read the stream stays open, keeps sending
    /// heartbeats and tries again with a growing delay (up to 5 s); the
    /// events of the outage follow once it is back. The stream ends when
    /// the server stops (resume then). At most `events.max_streams` (256) streams are open at once:
    /// past it, 503 with `Retry-After`. The token goes in the
    /// `Authorization` header (never in the URL): a browser reads the
    /// stream with `fetch`. A caller restricted to one customer may not
    /// read it (403).
    #[oai(
        path = "/events/stream",
        method = "get",
        operation_id = "stream_events"
    )]
    async fn stream(
        &self,
        auth: BearerAuth,
        request: &Request,
        /// The last sequence number seen (0: from the oldest event kept),
        /// or `latest` (from the newest: only what comes); `Last-Event-ID`
        /// wins when both are sent.
        #[oai(name = "after")]
        _after: Query<Option<Doc<StreamAfterParam>>>,
        /// The last event id received, sent by a reconnecting client.
        #[oai(name = "Last-Event-ID")]
        _last_event_id: Header<Option<Doc<AfterParam>>>,
    ) -> Result<StreamResponse, Errors<Reads>> {
        let start = start_position(request)?;
        if auth.0.actor().owner.is_some() {
            return Err(ApiError::Forbidden(
                "the event stream covers every customer; this caller may see only one".into(),
            )
            .into());
        }
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            ApiError::Overloaded(
                "too many event streams are open; retry after the delay in Retry-After",
            )
        })?;
        // Subscribed before the first read from the store: a batch read
        // meanwhile is either in that read or waiting in the receiver.
        let batches = self.hub.subscribe();
        let (after, tell_position) = match start {
            Start::After(after) => (after, false),
            Start::Latest => (self.hub.store().last_event_sequence().await?, true),
        };
        Ok(StreamResponse::Ok(EventStreamBody(Subscriber {
            store: self.hub.store().clone(),
            batches,
            cursor: after,
            catching_up: true,
            opened: false,
            tell_position,
            backoff: None,
            source: self.source.clone(),
            stopping: self.stopping.clone(),
            heartbeat: self.heartbeat,
            next_beat: Instant::now() + self.heartbeat,
            _slot: slot,
        })))
    }
}

/// `after` of the stream: a sequence number, or `latest`.
pub struct StreamAfterParam;
impl ParamSchema for StreamAfterParam {
    fn schema() -> MetaSchema {
        let mut latest = MetaSchema::new("string");
        latest.enum_items = vec![serde_json::Value::from(LATEST)];
        let mut s = MetaSchema::ANY;
        s.one_of = vec![
            MetaSchemaRef::Inline(Box::new(AfterParam::schema())),
            MetaSchemaRef::Inline(Box::new(latest)),
        ];
        s.default = Some(serde_json::Value::from(0));
        s
    }
}

/// Where a stream starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// After this sequence number.
    After(i64),
    /// After the newest event (`after=latest`).
    Latest,
}

/// The position a stream starts after: `Last-Event-ID`, else `after`.
fn start_position(request: &Request) -> Result<Start, ApiError> {
    let mut pairs = query_pairs(request)?;
    // `latest` is the stream's own value of `after`; the rest of the
    // parameters are checked as the feed's.
    let latest = pairs.iter().any(|(n, v)| n == "after" && v == LATEST);
    if latest {
        pairs.retain(|(n, v)| !(n == "after" && v == LATEST));
    }
    let query = FeedQuery::parse(&pairs, &["after"])?;
    let header = request.headers().get(LAST_EVENT_ID).map(|v| {
        v.to_str()
            .ok()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| {
                ValidationErrors::one(
                    LAST_EVENT_ID,
                    "must be a non-negative integer (the id: of an event)",
                )
            })
    });
    match header {
        Some(position) => Ok(Start::After(position?)),
        None if latest && pairs.iter().any(|(n, _)| n == "after") => {
            Err(ValidationErrors::one("after", "given more than once").into())
        }
        None if latest => Ok(Start::Latest),
        None => Ok(Start::After(query.after)),
    }
}

/// One open stream: its position and where its next events come from.
struct Subscriber {
    store: Arc<dyn Store>,
    batches: broadcast::Receiver<Arc<hub::Batch>>,
    /// The last sequence number sent (or the start position).
    cursor: i64,
    /// Read from the store (not from the broadcast) until a short page.
    catching_up: bool,
    /// Whether the opening comment went out.
    opened: bool,
    /// Whether the opening block names the start position (`after=latest`:
    /// the client does not know it).
    tell_position: bool,
    /// The wait before the next read while the store fails (`None`: it
    /// answered last time).
    backoff: Option<Duration>,
    source: String,
    stopping: Stopping,
    heartbeat: Duration,
    next_beat: Instant,
    /// Held while the stream is open.
    _slot: OwnedSemaphorePermit,
}

impl Subscriber {
    /// The next piece of the body; `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if !self.opened {
            // Something at once, so that the client and every proxy on the
            // way see the stream open before the first event.
            self.opened = true;
            let mut open = format!(": stream open\nretry: {RETRY_MS}\n");
            if self.tell_position {
                // An `id:` without `data:` dispatches nothing but sets the
                // client's last event id: it resumes from here.
                open.push_str(&format!("id: {}\n", self.cursor));
            }
            open.push('\n');
            return Some(open.into_bytes());
        }
        loop {
            if self.stopping.is_set() {
                return None;
            }
            if self.catching_up {
                let events = match self.store.events_after(self.cursor, hub::PAGE).await {
                    Ok(events) => {
                        self.backoff = None;
                        events
                    }
                    Err(e) => {
                        // The hub warns once per outage; this is per stream.
                        tracing::debug!(error = %e, "an event stream cannot read events; it waits");
                        let wait = self
                            .backoff
                            .map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                        self.backoff = Some(wait);
                        tokio::select! {
                            () = self.stopping.raised() => return None,
                            () = tokio::time::sleep(wait) => {}
                        }
                        if Instant::now() >= self.next_beat {
                            self.next_beat = Instant::now() + self.heartbeat;
                            return Some(b": keep-alive\n\n".to_vec());
                        }
                        continue;
                    }
                };
                self.catching_up = events.len() == hub::PAGE as usize;
                if let Some(chunk) = self.chunk(&events) {
                    return Some(chunk);
                }
                continue;
            }
            tokio::select! {
                () = self.stopping.raised() => return None,
                () = tokio::time::sleep_until(self.next_beat) => {
                    self.next_beat = Instant::now() + self.heartbeat;
                    return Some(b": keep-alive\n\n".to_vec());
                }
                received = self.batches.recv() => match received {
                    // The batch follows what was sent: its events above
                    // the cursor are the next ones.
                    Ok(batch) if batch.after <= self.cursor => {
                        if let Some(chunk) = self.chunk(&batch.events) {
                            return Some(chunk);
                        }
                    }
                    // A gap (this stream started or fell behind the
                    // reader), or batches dropped for a slow stream.
                    Ok(_) | Err(RecvError::Lagged(_)) => self.catching_up = true,
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }

    /// The events of `events` above the cursor, written as server-sent
    /// events (`None` if there are none); moves the cursor past them.
    fn chunk(&mut self, events: &[Event]) -> Option<Vec<u8>> {
        let mut text = String::new();
        let sent = self.cursor;
        for event in events.iter().filter(|e| e.sequence > sent) {
            // serde_json writes one line: newlines in strings are escaped.
            let data = event.cloud_event(&self.source).to_string();
            text.push_str(&format!(
                "id: {}\nevent: {}\ndata: {data}\n\n",
                event.sequence,
                event.event.kind.as_str()
            ));
            self.cursor = event.sequence;
        }
        if text.is_empty() {
            return None;
        }
        self.next_beat = Instant::now() + self.heartbeat;
        Some(text.into_bytes())
    }
}

/// The body of an open stream (`text/event-stream`).
pub struct EventStreamBody(Subscriber);

impl Payload for EventStreamBody {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    /// One event of the stream, its fields as the SSE format names them
    /// (what OpenAPI 3.2 calls the item schema of `text/event-stream`, and
    /// what stream checkers such as schemathesis validate each event
    /// against). `data` is one item of `GET /events` as JSON text.
    fn schema_ref() -> MetaSchemaRef {
        let text = |description: &'static str| {
            MetaSchemaRef::Inline(Box::new(MetaSchema {
                description: Some(description),
                ..MetaSchema::new("string")
            }))
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "One server-sent event: `id` is the event's sequence number, `event` its \
                 type, `data` the event as one item of `GET /events` (an `OrderEvent`, as \
                 JSON text).",
            ),
            required: vec!["id", "event", "data"],
            properties: vec![
                ("id", text("The event's sequence number (resume after it).")),
                ("event", text("The event's type, as `type` in `data`.")),
                ("data", text("An `OrderEvent` as JSON, on one line.")),
            ],
            ..MetaSchema::new("object")
        }))
    }

    fn register(registry: &mut Registry) {
        CloudEvent::register(registry);
    }
}

impl IntoResponse for EventStreamBody {
    fn into_response(self) -> Response {
        let chunks = futures_util::stream::unfold(self.0, |mut subscriber| async move {
            let chunk = subscriber.next_chunk().await?;
            Some((Ok::<_, std::io::Error>(chunk), subscriber))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, Self::CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-cache")
            // nginx would otherwise hold the events in its buffer.
            .header("X-Accel-Buffering", "no")
            .body(Body::from_bytes_stream(chunks))
    }
}
