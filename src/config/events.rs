//! `[events]`: the feed, histories, retention and the broker relay.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::values::optional_text;
use crate::relay::BrokerUrl;

/// Order events: the feed, histories, retention.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSettings {
    /// The CloudEvents `source` of every event (a URI reference naming this
    /// service, the same on every replica).
    pub source: String,
    /// Days an event is kept; 0 keeps them forever.
    pub retention_days: u64,
    /// How often old events are pruned.
    pub purge_interval_secs: u64,
    /// PostgreSQL: how often committed events are given their sequence
    /// number in the background (readers of the feed also do it).
    pub sequence_interval_ms: u64,
    /// The broker the events are relayed to: `nats://host:port` (JetStream;
    /// `nats://TOKEN@host` or `nats://USER:PASS@host` to authenticate) or
    /// `amqp://user:pass@host:port/vhost` (RabbitMQ); empty (`None`): no
    /// relay.
    #[serde(with = "optional_text")]
    pub relay_url: Option<BrokerUrl>,
    /// The relay's name: its position and lease in the database are kept
    /// under it (two relays of one database need two names).
    pub relay_name: String,
    /// NATS: the JetStream stream, created if missing.
    pub nats_stream: String,
    /// NATS: subjects are `<prefix>.<type>`; the stream takes `<prefix>.>`.
    pub nats_subject_prefix: String,
    /// RabbitMQ: the durable topic exchange, declared if missing.
    pub amqp_exchange: String,
    /// Most events published before waiting for their confirms.
    pub relay_batch: u32,
    /// How long a replica's lease lasts unless renewed (it is renewed
    /// while relaying); a dead holder's is taken over after this.
    pub relay_lease_secs: u64,
    /// Longest wait for the broker: connecting, or confirming a batch.
    pub relay_timeout_ms: u64,
    /// How often an idle relay looks for new events.
    pub relay_poll_ms: u64,
    /// Most `GET /events` long polls waiting at once; past it, 503 with
    /// `Retry-After`.
    pub max_waiters: usize,
    /// Most `GET /events/stream` streams open at once; past it, 503 with
    /// `Retry-After`.
    pub max_streams: usize,
    /// Seconds of silence after which a stream sends a `: keep-alive`
    /// comment (so proxies keep the connection).
    pub stream_heartbeat_secs: u64,
    /// How often the streams' shared reader looks for events committed
    /// through other replicas (this replica's own wake it at once).
    pub stream_poll_ms: u64,
}

impl Default for EventsSettings {
    fn default() -> Self {
        EventsSettings {
            source: "/commandes".into(),
            retention_days: 30,
            purge_interval_secs: 300,
            sequence_interval_ms: 150,
            relay_url: None,
            relay_name: "default".into(),
            nats_stream: "COMMANDES".into(),
            nats_subject_prefix: "commandes.order".into(),
            amqp_exchange: "commandes".into(),
            relay_batch: 256,
            relay_lease_secs: 15,
            relay_timeout_ms: 5000,
            relay_poll_ms: 200,
            max_waiters: 256,
            max_streams: 256,
            stream_heartbeat_secs: 15,
            stream_poll_ms: 200,
        }
    }
}

impl EventsSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.source.is_empty() {
            bail!("events.source must not be empty");
        }
        if self.purge_interval_secs == 0 || self.sequence_interval_ms == 0 {
            bail!("events.purge_interval_secs and events.sequence_interval_ms must be at least 1");
        }
        if self.max_waiters == 0 || self.max_streams == 0 {
            bail!("events.max_waiters and events.max_streams must be at least 1");
        }
        if self.stream_heartbeat_secs == 0 || self.stream_poll_ms == 0 {
            bail!("events.stream_heartbeat_secs and events.stream_poll_ms must be at least 1");
        }
        if self.retention_days > 36_500 {
            bail!("events.retention_days must be at most 36500 (0 keeps events forever)");
        }
        if self.relay_url.is_some() {
            if self.relay_name.is_empty()
                || self.nats_stream.is_empty()
                || self.amqp_exchange.is_empty()
            {
                bail!("events.relay_name, events.nats_stream and events.amqp_exchange must not be empty");
            }
            if self.relay_batch == 0 || self.relay_poll_ms == 0 || self.relay_timeout_ms == 0 {
                bail!("events.relay_batch, events.relay_poll_ms and events.relay_timeout_ms must be at least 1");
            }
            if self.relay_lease_secs < 2 {
                bail!("events.relay_lease_secs must be at least 2");
            }
            // A batch must be confirmed well within the lease, so a lease
            // never runs out in the middle of one.
            if self.relay_timeout_ms.saturating_mul(3) > self.relay_lease_secs.saturating_mul(1000)
            {
                bail!("events.relay_timeout_ms must be at most a third of events.relay_lease_secs");
            }
        }
        Ok(())
    }
}
