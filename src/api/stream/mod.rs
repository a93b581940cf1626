//! `GET /events/stream`: the event feed pushed as server-sent events.
//!
//! The same events, order and visibility as `GET /events`. Each stream
//! starts with what the store holds after its position (the `after`
//! parameter, or the `Last-Event-ID` header a reconnecting client sends),
//! then follows the process's shared reader ([`hub`]). Its memory is one
//! page of events at most: batches it is too slow to take are dropped for
//! it and it reads them from the store. A stream ends when the server
//! stops, and when the store fails (the client reconnects and resumes).

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
use super::schema::Doc;
use super::ApiTags;
use crate::api::error::ApiError;
use crate::domain::event::Event;
use crate::domain::ValidationErrors;
use crate::storage::Store;

pub mod hub;

pub use hub::Hub;

/// The request header a reconnecting `EventSource` sends.
const LAST_EVENT_ID: &str = "Last-Event-ID";

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
    /// `after`, else 0 (from the oldest event kept). A client that resumes
    /// from the last `id:` it received gets every event once, in order,
    /// across reconnections and restarts of the server.
    ///
    /// A comment `: keep-alive` is sent after every
    /// `events.stream_heartbeat_secs` (15) of silence, so that proxies keep
    /// the connection. The stream ends when the server stops (resume
    /// then). At most `events.max_streams` (256) streams are open at once:
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
        /// The last sequence number seen (0: from the oldest event kept);
        /// `Last-Event-ID` wins when both are sent.
        #[oai(name = "after")]
        _after: Query<Option<Doc<AfterParam>>>,
        /// The last event id received, sent by a reconnecting client.
        #[oai(name = "Last-Event-ID")]
        _last_event_id: Header<Option<Doc<AfterParam>>>,
    ) -> Result<StreamResponse, Errors<Reads>> {
        let after = start_position(request)?;
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
        Ok(StreamResponse::Ok(EventStreamBody(Subscriber {
            store: self.hub.store().clone(),
            batches,
            cursor: after,
            catching_up: true,
            opened: false,
            source: self.source.clone(),
            stopping: self.stopping.clone(),
            heartbeat: self.heartbeat,
            next_beat: Instant::now() + self.heartbeat,
            _slot: slot,
        })))
    }
}

/// The position a stream starts after: `Last-Event-ID`, else `after`.
fn start_position(request: &Request) -> Result<i64, ApiError> {
    let query = query_pairs(request).and_then(|q| FeedQuery::parse(&q, &["after"]))?;
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
        Some(position) => Ok(position?),
        None => Ok(query.after),
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
            return Some(b": stream open\n\n".to_vec());
        }
        loop {
            if self.stopping.is_set() {
                return None;
            }
            if self.catching_up {
                let events = match self.store.events_after(self.cursor, hub::PAGE).await {
                    Ok(events) => events,
                    Err(e) => {
                        tracing::warn!(error = %e, "an event stream cannot read events; it ends");
                        return None;
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
