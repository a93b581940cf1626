//! Publishing to RabbitMQ: a durable topic exchange, routing keys
//! `order.<type>`, persistent messages with the event id as `message_id`,
//! each confirmed by a publisher confirm (`confirm_select`).

use std::time::Instant;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

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

#[async_trait]
impl Publisher for Amqp {
    async fn publish(&mut self, messages: &[Message], deadline: Instant) -> Result<(), Failure> {
        let deadline = tokio::time::Instant::from_std(deadline);
        // All sent first, in order on one channel, then every confirm
        // awaited in the same order: the prefix confirmed is what counts.
        let mut confirms = Vec::with_capacity(messages.len());
        let mut send_error = None;
        for m in messages {
            let mut headers = FieldTable::default();
            headers.insert(SEQUENCE_HEADER.into(), AMQPValue::LongLongInt(m.sequence));
            let properties = BasicProperties::default()
                .with_message_id(m.id.as_str().into())
                .with_content_type(CONTENT_TYPE.into())
                .with_delivery_mode(PERSISTENT)
                .with_headers(headers);
            let routing_key = format!("order.{}", m.kind.short());
            let sent = tokio::time::timeout_at(
                deadline,
                self.channel.basic_publish(
                    self.exchange.as_str().into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    &m.body,
                    properties,
                ),
            )
            .await;
            match sent {
                Ok(Ok(confirm)) => confirms.push(confirm),
                Ok(Err(e)) => {
                    send_error = Some(format!("cannot send: {e}"));
                    break;
                }
                Err(_) => {
                    send_error = Some("timed out sending".into());
                    break;
                }
            }
        }
        let sent = confirms.len();
        for (i, confirm) in confirms.into_iter().enumerate() {
            let reason = match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(Confirmation::Ack(_))) => continue,
                Ok(Ok(Confirmation::Nack(_))) => "the broker refused the message (nack)".into(),
                Ok(Ok(Confirmation::NotRequested)) => "the channel is not in confirm mode".into(),
                Ok(Err(e)) => format!("no confirmation: {e}"),
                Err(_) => "timed out waiting for the broker's confirmation".into(),
            };
            return Err(Failure {
                confirmed: i,
                reason,
            });
        }
        match send_error {
            // Every message sent before the error was confirmed.
            Some(reason) => Err(Failure {
                confirmed: sent,
                reason,
            }),
            None => Ok(()),
        }
    }

    async fn close(&mut self) {
        let _ = self.connection.close(200, "relay stopping".into()).await;
    }
}
