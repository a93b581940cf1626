//! The broker relay: publishes the stored events to NATS JetStream or
//! RabbitMQ, in sequence order, at least once.
//!
//! It reads what follows its position ([`Store::events_after`]), publishes
//! a batch, waits for the broker to confirm every message, and only then
//! advances the position stored in the database. A failure anywhere means
//! backing off and resuming from the stored position: nothing is skipped,
//! and an event published twice carries the same id both times (JetStream
//! drops the repeat; RabbitMQ consumers can). With several replicas, a
//! lease in the database lets one relay at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::event::{Event, EventKind};
use crate::features::Feature;
use crate::secret::{redact_url, scrub, Secret};
use crate::storage::{Store, StoreError};

#[cfg(feature = "amqp")]
pub mod amqp;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(any(feature = "nats", feature = "amqp"))]
mod publish;

/// Events stored but not yet confirmed by the broker.
pub const EVENTS_PENDING: &str = "commandes_relay_events_pending";
/// Age of the oldest event not yet confirmed by the broker (0: none).
pub const LAG_SECONDS: &str = "commandes_relay_lag_seconds";
/// Events the broker confirmed.
pub const PUBLISHED: &str = "commandes_relay_events_published_total";
/// Batches that failed (no connection, a nack, a timeout); each is retried.
pub const FAILURES: &str = "commandes_relay_publish_failures_total";
/// 1 while this process holds the relay lease.
pub const LEASE_HELD: &str = "commandes_relay_lease_held";

/// The message content type: a CloudEvents structured-mode JSON body.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The longest pause between retries after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first pause after a failure.
const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// Describes the relay's metrics to the recorder.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, Unit};
    describe_gauge!(
        EVENTS_PENDING,
        "Order events not yet confirmed by the broker (last sequence minus the relay position)."
    );
    describe_gauge!(
        LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest order event not yet confirmed by the broker."
    );
    describe_counter!(PUBLISHED, "Order events the broker confirmed.");
    describe_counter!(
        FAILURES,
        "Relay batches that failed (connection, nack, timeout) and are retried."
    );
    describe_gauge!(LEASE_HELD, "1 while this process holds the relay lease.");
}

/// A broker URL, understood. Its `Debug` and `Display` hide the
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    /// `nats://…` (or `tls://…`): NATS JetStream.
    Nats(Secret),
    /// `amqp://…` or `amqps://…`: RabbitMQ.
    Amqp(Secret),
}

impl BrokerUrl {
    /// Picks the broker from the URL's scheme (surrounding blanks
    /// ignored). The message never repeats the URL.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let url = url.trim();
        if url.starts_with("nats://") || url.starts_with("tls://") {
            // The NATS client ignores a query (and would log it): a token
            // written as `?token=` would silently not be used.
            if url.contains('?') {
                return Err(
                    "a nats:// URL takes no query: give a token as nats://TOKEN@host, \
                            or a user as nats://USER:PASSWORD@host"
                        .into(),
                );
            }
            Ok(BrokerUrl::Nats(Secret::new(url)))
        } else if url.starts_with("amqp://") || url.starts_with("amqps://") {
            Ok(BrokerUrl::Amqp(Secret::new(url)))
        } else {
            Err("events.relay_url must start with nats:// or amqp:// (or tls://, amqps://)".into())
        }
    }

    /// The part of the binary that publishes to this broker.
    pub fn feature(&self) -> Feature {
        match self {
            BrokerUrl::Nats(_) => Feature::Nats,
            BrokerUrl::Amqp(_) => Feature::Amqp,
        }
    }

    /// The URL itself, credentials included: for the client library
    /// (which is given them apart) and the settings' round trip, never for
    /// output (that is [`Display`](std::fmt::Display)).
    pub fn expose(&self) -> &str {
        match self {
            BrokerUrl::Nats(u) | BrokerUrl::Amqp(u) => u.expose(),
        }
    }
}

/// The URL without its credentials ([`redact_url`]).
impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl std::fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            BrokerUrl::Nats(_) => "Nats",
            BrokerUrl::Amqp(_) => "Amqp",
        };
        write!(f, "{kind}({self})")
    }
}

/// A broker URL with its user info taken out, and that user info
/// (percent-decoded): the client library is given the credentials apart,
/// so they cannot reach its logs (async-nats logs the server's URL).
#[derive(PartialEq, Eq)]
#[cfg_attr(not(feature = "nats"), allow(dead_code))]
struct Split {
    url: String,
    user: Option<String>,
    password: Option<String>,
}

#[cfg_attr(not(feature = "nats"), allow(dead_code))]
fn split_credentials(url: &str) -> Split {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let start = url.find("://").map_or(0, |i| i + 3);
    // The user info ends at the last `@` before the path.
    let authority_end = url[start..]
        .find(['/', '?'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@').map(|i| start + i) {
        Some(at) => {
            let (user, password) = match url[start..at].split_once(':') {
                Some((u, p)) => (decode(u), Some(decode(p))),
                None => (decode(&url[start..at]), None),
            };
            Split {
                url: format!("{}{}", &url[..start], &url[at + 1..]),
                user: Some(user),
                password,
            }
        }
        None => Split {
            url: url.to_string(),
            user: None,
            password: None,
        },
    }
}

/// What the relay needs to know (`app` builds it from `[events]`, so the
/// relay does not depend on the settings module).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub url: BrokerUrl,
    pub name: String,
    pub source: String,
    pub nats_stream: String,
    pub nats_subject_prefix: String,
    pub amqp_exchange: String,
    pub batch: u32,
    pub lease: Duration,
    pub timeout: Duration,
    pub poll: Duration,
}

/// One event, ready to send.
#[derive(Debug, Clone)]
pub struct Message {
    /// The event id: the broker message id.
    pub id: String,
    pub sequence: i64,
    pub kind: EventKind,
    /// The CloudEvents JSON.
    pub body: Vec<u8>,
    /// The W3C `traceparent` of the change, also sent as the message's
    /// `traceparent` header (the CloudEvents NATS and AMQP bindings), so
    /// a consumer continues the trace without parsing the body.
    pub traceparent: Option<String>,
}

impl Message {
    fn of(event: &Event, source: &str) -> Message {
        Message {
            id: event.event.id.clone(),
            sequence: event.sequence,
            kind: event.event.kind,
            body: event.cloud_event(source).to_string().into_bytes(),
            traceparent: event.event.traceparent.clone(),
        }
    }
}

/// A batch that did not go through entirely.
#[derive(Debug)]
pub struct Failure {
    /// How many messages at the start of the batch the broker confirmed.
    pub confirmed: usize,
    /// Why the rest did not go (no credentials in it).
    pub reason: String,
}

/// A connection to a broker.
#[async_trait]
pub trait Publisher: Send {
    /// Sends `messages` in order and waits (until `deadline`) for the
    /// broker to confirm each one. On failure, says how many leading
    /// messages were confirmed; the connection is then dropped.
    async fn publish(&mut self, messages: &[Message], deadline: Instant) -> Result<(), Failure>;

    /// Closes the connection politely.
    async fn close(&mut self);
}

/// Connects to the broker and declares what the relay publishes to.
// A build without any broker client only has the guard below.
#[cfg_attr(not(any(feature = "nats", feature = "amqp")), allow(unreachable_code))]
async fn connect(config: &RelayConfig) -> Result<Box<dyn Publisher>, String> {
    let connecting = async {
        Ok::<Box<dyn Publisher>, String>(match &config.url {
            #[cfg(feature = "nats")]
            BrokerUrl::Nats(url) => {
                Box::new(nats::Nats::connect(split_credentials(url.expose()), config).await?)
            }
            #[cfg(feature = "amqp")]
            BrokerUrl::Amqp(url) => Box::new(amqp::Amqp::connect(url.expose(), config).await?),
            // A broker this binary was built without: the settings refuse
            // its URL at load, so this is only a last guard.
            #[allow(unreachable_patterns)]
            other => return Err(other.feature().missing("events.relay_url")),
        })
    };
    tokio::time::timeout(config.timeout, connecting)
        .await
        .unwrap_or_else(|_| Err("timed out connecting".into()))
}

/// What went wrong last, so each change is logged once, not each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Ok,
    Database,
    Broker,
}

/// The relay's state between steps.
struct Relay {
    store: Arc<dyn Store>,
    config: RelayConfig,
    /// This process's name in the lease.
    holder: String,
    broker: Option<Box<dyn Publisher>>,
    /// The stored position, and when the lease was last taken or renewed;
    /// `None`: (re)claim first.
    lease: Option<(i64, Instant)>,
    held: bool,
    health: Health,
    backoff: Duration,
    gauges_at: Option<Instant>,
}

/// This process's lease holder name: host, process and a random part (two
/// apps in one process are two holders).
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let tag: [u8; 4] = rand::random();
    format!(
        "{}/{}/{}",
        host.trim(),
        std::process::id(),
        crate::hex::encode(&tag)
    )
}

/// Relays until `stop` turns true (or its sender goes), finishing the
/// batch in flight, then gives up the lease.
pub async fn run(
    store: Arc<dyn Store>,
    config: RelayConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tracing::info!(
        broker = %redact_url(config.url.expose()),
        name = %config.name,
        "relaying events to the broker"
    );
    let mut relay = Relay {
        store,
        holder: holder_name(),
        config,
        broker: None,
        lease: None,
        held: false,
        health: Health::Ok,
        backoff: MIN_BACKOFF,
        gauges_at: None,
    };
    loop {
        if *stop.borrow() {
            break;
        }
        let pause = relay.step().await;
        if pause.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
    }
    relay.stop().await;
}

impl Relay {
    /// One round: lease, connection, a batch. Returns how long to wait
    /// before the next.
    async fn step(&mut self) -> Duration {
        let Some(position) = self.position().await else {
            return self.retry_claim_in();
        };
        if self.broker.is_none() {
            match connect(&self.config).await {
                Ok(broker) => self.broker = Some(broker),
                Err(reason) => return self.failed(Health::Broker, &reason),
            }
        }
        let events = match self.store.events_after(position, self.config.batch).await {
            Ok(events) => events,
            Err(e) => return self.store_failed(&e),
        };
        self.gauges(position, &events).await;
        if events.is_empty() {
            self.healthy();
            return self.config.poll;
        }
        let messages: Vec<Message> = events
            .iter()
            .map(|e| Message::of(e, &self.config.source))
            .collect();
        let broker = self.broker.as_mut().expect("connected above");
        let deadline = Instant::now() + self.config.timeout;
        let (confirmed, failure) = match broker.publish(&messages, deadline).await {
            Ok(()) => (messages.len(), None),
            Err(f) => (f.confirmed.min(messages.len()), Some(f.reason)),
        };
        if confirmed > 0 {
            metrics::counter!(PUBLISHED).increment(confirmed as u64);
            // Only what the broker confirmed moves the position.
            let last = messages[confirmed - 1].sequence;
            match self
                .store
                .relay_advance(&self.config.name, &self.holder, last, self.config.lease)
                .await
            {
                Ok(true) => self.lease = Some((last, Instant::now())),
                Ok(false) => {
                    self.lost_lease();
                    return self.retry_claim_in();
                }
                Err(e) => return self.store_failed(&e),
            }
        }
        if let Some(reason) = failure {
            metrics::counter!(FAILURES).increment(1);
            if let Some(mut broker) = self.broker.take() {
                broker.close().await;
            }
            return self.failed(Health::Broker, &reason);
        }
        self.healthy();
        if messages.len() == self.config.batch as usize {
            Duration::ZERO
        } else {
            self.config.poll
        }
    }

    /// The stored position while this process holds the lease, renewing it
    /// when a third of it has passed; `None` while another holder has it
    /// (or the database cannot say).
    async fn position(&mut self) -> Option<i64> {
        if let Some((position, at)) = self.lease {
            if at.elapsed() < self.config.lease / 3 {
                return Some(position);
            }
        }
        match self
            .store
            .relay_claim(&self.config.name, &self.holder, self.config.lease)
            .await
        {
            Ok(Some(position)) => {
                if !self.held {
                    tracing::info!(holder = %self.holder, position, "relay lease taken");
                    self.held = true;
                    metrics::gauge!(LEASE_HELD).set(1.0);
                }
                self.lease = Some((position, Instant::now()));
                Some(position)
            }
            Ok(None) => {
                self.lost_lease();
                None
            }
            Err(e) => {
                self.store_failed(&e);
                None
            }
        }
    }

    fn lost_lease(&mut self) {
        if self.held {
            tracing::info!(holder = %self.holder, "relay lease lost to another replica");
            metrics::gauge!(LEASE_HELD).set(0.0);
        }
        self.held = false;
        self.lease = None;
        // Another replica relays; this one's connection would sit idle.
        self.broker = None;
    }

    /// How long a replica without the lease waits before trying again (or
    /// the backoff, after a database failure).
    fn retry_claim_in(&self) -> Duration {
        if self.health == Health::Database {
            return self.backoff;
        }
        (self.config.lease / 5).clamp(Duration::from_millis(200), Duration::from_secs(3))
    }

    /// Updates the pending and lag gauges (at most every second).
    async fn gauges(&mut self, position: i64, events: &[Event]) {
        if self
            .gauges_at
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.gauges_at = Some(Instant::now());
        if let Ok(last) = self.store.last_event_sequence().await {
            metrics::gauge!(EVENTS_PENDING).set((last - position).max(0) as f64);
        }
        let lag = events.first().map_or(0.0, |e| {
            (crate::domain::now() - e.event.time)
                .to_std()
                .map_or(0.0, |d| d.as_secs_f64())
        });
        metrics::gauge!(LAG_SECONDS).set(lag);
    }

    fn store_failed(&mut self, e: &StoreError) -> Duration {
        // Resume from what the database says, once it answers again.
        self.lease = None;
        self.failed(Health::Database, &crate::error_chain::error_chain(e))
    }

    /// Logs a new kind of trouble once, and returns the next backoff.
    fn failed(&mut self, what: Health, reason: &str) -> Duration {
        if self.health != what {
            let broker = redact_url(self.config.url.expose());
            let reason = scrub(reason, self.config.url.expose());
            let reason = reason.as_str();
            match what {
                Health::Broker => {
                    tracing::warn!(%broker, reason, "cannot publish events; retrying with backoff")
                }
                _ => tracing::warn!(
                    %broker,
                    reason,
                    "the relay cannot use the database; retrying with backoff"
                ),
            }
            self.health = what;
            self.backoff = MIN_BACKOFF;
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        pause
    }

    fn healthy(&mut self) {
        if self.health != Health::Ok {
            tracing::info!("the relay publishes again");
            self.health = Health::Ok;
        }
        self.backoff = MIN_BACKOFF;
    }

    async fn stop(mut self) {
        if let Some(mut broker) = self.broker.take() {
            broker.close().await;
        }
        if self.held {
            if let Err(e) = self
                .store
                .relay_release(&self.config.name, &self.holder)
                .await
            {
                tracing::warn!(error = %e, "cannot give up the relay lease; it will expire");
            }
            metrics::gauge!(LEASE_HELD).set(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_broker() {
        assert!(matches!(
            BrokerUrl::parse("nats://127.0.0.1:4222"),
            Ok(BrokerUrl::Nats(_))
        ));
        assert!(matches!(
            BrokerUrl::parse("amqp://guest:guest@h:5672/%2f"),
            Ok(BrokerUrl::Amqp(_))
        ));
        assert!(BrokerUrl::parse("kafka://h").is_err());
        assert!(BrokerUrl::parse("nats://h:4222?token=t").is_err());
    }

    #[test]
    fn credentials_are_taken_out_of_the_url() {
        let split = split_credentials("nats://s3cr%40t@h:4222");
        assert_eq!(split.url, "nats://h:4222");
        assert_eq!(split.user.as_deref(), Some("s3cr@t"));
        assert_eq!(split.password, None);
        let split = split_credentials("tls://u:p%3Aw@h1:4222/x?y=@");
        assert_eq!(split.url, "tls://h1:4222/x?y=@");
        assert_eq!(split.user.as_deref(), Some("u"));
        assert_eq!(split.password.as_deref(), Some("p:w"));
        let split = split_credentials("nats://h:4222");
        assert_eq!(split.url, "nats://h:4222");
        assert_eq!(split.user, None);
    }

    #[test]
    fn the_debug_form_hides_the_credentials() {
        let url = BrokerUrl::parse("amqp://u:secret@h:5672/v").unwrap();
        assert_eq!(format!("{url:?}"), "Amqp(amqp://u:***@h:5672/v)");
        let url = BrokerUrl::parse("nats://s3cr3t@h:4222").unwrap();
        assert_eq!(format!("{url:?}"), "Nats(nats://***@h:4222)");
        assert_eq!(url.to_string(), "nats://***@h:4222");
        assert_eq!(url.expose(), "nats://s3cr3t@h:4222");
    }
}
