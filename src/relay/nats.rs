//! Publishing to NATS JetStream: subjects `<prefix>.<type>` in one stream,
//! the event id as `Nats-Msg-Id` (the stream drops a repeat within its
//! duplicate window), each message confirmed by its PubAck.

use std::time::Instant;

use std::future::IntoFuture;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use async_nats::HeaderMap;
use async_trait::async_trait;

use super::publish::{send_then_confirm, Broker};
use super::{Failure, Message, Publisher, RelayConfig, Split, CONTENT_TYPE};

/// The header carrying the event's sequence number.
pub const SEQUENCE_HEADER: &str = "Commandes-Sequence";

/// A JetStream connection with the stream in place.
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    prefix: String,
}

impl Nats {
    /// Connects and creates the stream if it is missing (an existing
    /// stream is used as it is). The URL's user info comes apart: a
    /// password with its user, or alone a token (`nats://TOKEN@host`).
    pub(super) async fn connect(server: Split, config: &RelayConfig) -> Result<Nats, String> {
        let options = match (server.user, server.password) {
            (Some(user), Some(password)) => {
                async_nats::ConnectOptions::with_user_and_password(user, password)
            }
            (Some(token), None) => async_nats::ConnectOptions::with_token(token),
            _ => async_nats::ConnectOptions::new(),
        };
        let client = options
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            // The relay makes a new connection after a failure, and resumes
            // from the stored position; a dropped client must not go on
            // reconnecting in the background with old messages.
            .max_reconnects(Some(1))
            .connect(server.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(config.timeout)
            .ack_timeout(config.timeout)
            .build(client.clone());
        jetstream
            .get_or_create_stream(stream::Config {
                name: config.nats_stream.clone(),
                subjects: vec![format!("{}.>", config.nats_subject_prefix)],
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot find or create the stream: {e}"))?;
        Ok(Nats {
            client,
            jetstream,
            prefix: config.nats_subject_prefix.clone(),
        })
    }
}

impl Broker for Nats {
    type Pending = PublishAckFuture;
    const CONFIRM_TIMEOUT: &'static str = "timed out waiting for JetStream's acknowledgement";

    async fn send(&self, m: &Message) -> Result<PublishAckFuture, String> {
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, m.id.as_str());
        headers.insert(SEQUENCE_HEADER, m.sequence.to_string().as_str());
        headers.insert("Content-Type", CONTENT_TYPE);
        if let Some(t) = &m.traceparent {
            headers.insert(crate::trace_context::TRACEPARENT, t.as_str());
        }
        let publish = PublishMessage::build()
            .payload(m.body.clone().into())
            .headers(headers);
        let subject = format!("{}.{}", self.prefix, m.kind.short());
        self.jetstream
            .send_publish(subject, publish)
            .await
            .map_err(|e| e.to_string())
    }

    async fn confirm(ack: PublishAckFuture) -> Result<(), String> {
        ack.into_future()
            .await
            .map(drop)
            .map_err(|e| format!("not stored by JetStream: {e}"))
    }
}

#[async_trait]
impl Publisher for Nats {
    async fn publish(&mut self, messages: &[Message], deadline: Instant) -> Result<(), Failure> {
        send_then_confirm(&*self, messages, deadline).await
    }

    async fn close(&mut self) {
        let _ = self.client.flush().await;
    }
}
