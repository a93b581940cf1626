//! Publishing to RabbitMQ: a durable topic exchange, routing keys
//! `order.<type>`, persistent messages with the event id as `message_id`,
//! each confirmed by a publisher confirm (`confirm_select`).

use std::time::Instant;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};

use super::publish::{send_then_confirm, Broker};
use super::{Failure, Message, Publisher, RelayConfig, CONTENT_TYPE};

/// The header carrying the event's sequence number.
pub const SEQUENCE_HEADER: &str = "sequence";

/// A connection and a channel in confirm mode.
pub struct Amqp {
    connection: Connection,
    channel: Channel,
    exchange: String,
}

/// Delivery mode 2: the broker writes the message to disk (in a durable
/// queue).
const PERSISTENT: u8 = 2;

impl Amqp {
    /// Connects, puts a channel in confirm mode and declares the exchange.
    pub async fn connect(url: &str, config: &RelayConfig) -> Result<Amqp, String> {
        let properties =
            ConnectionProperties::default().with_connection_name("commandes event relay".into());
        let connection = Connection::connect(url, properties)
            .await
            .map_err(|e| format!("cannot connect to RabbitMQ: {e}"))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
        channel
            .exchange_declare(
                config.amqp_exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot declare the exchange: {e}"))?;
        Ok(Amqp {
            connection,
            channel,
            exchange: config.amqp_exchange.clone(),
        })
    }
}

impl Broker for Amqp {
    type Pending = PublisherConfirm;
    const CONFIRM_TIMEOUT: &'static str = "timed out waiting for the broker's confirmation";

    async fn send(&self, m: &Message) -> Result<PublisherConfirm, String> {
        let mut headers = FieldTable::default();
        headers.insert(SEQUENCE_HEADER.into(), AMQPValue::LongLongInt(m.sequence));
        if let Some(t) = &m.traceparent {
            headers.insert(
                crate::trace_context::TRACEPARENT.into(),
                AMQPValue::LongString(t.as_str().into()),
            );
        }
        let properties = BasicProperties::default()
            .with_message_id(m.id.as_str().into())
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_headers(headers);
        let routing_key = format!("order.{}", m.kind.short());
        self.channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &m.body,
                properties,
            )
            .await
            .map_err(|e| e.to_string())
    }

    async fn confirm(confirm: PublisherConfirm) -> Result<(), String> {
        match confirm.await {
            Ok(Confirmation::Ack(_)) => Ok(()),
            Ok(Confirmation::Nack(_)) => Err("the broker refused the message (nack)".into()),
            Ok(Confirmation::NotRequested) => Err("the channel is not in confirm mode".into()),
            Err(e) => Err(format!("no confirmation: {e}")),
        }
    }
}

#[async_trait]
impl Publisher for Amqp {
    async fn publish(&mut self, messages: &[Message], deadline: Instant) -> Result<(), Failure> {
        send_then_confirm(&*self, messages, deadline).await
    }

    async fn close(&mut self) {
        let _ = self.connection.close(200, "relay stopping".into()).await;
    }
}
