//! The one way a batch goes to a broker, whatever the broker: every message
//! sent first, in order on one connection, then every confirmation awaited
//! in the same order, all before one deadline. What counts is the prefix
//! the broker confirmed: the relay advances its position by that much and
//! resends the rest.
//!
//! Each broker (NATS JetStream, RabbitMQ) only says how one message is sent
//! and how one confirmation is awaited ([`Broker`]).

use std::future::Future;
use std::time::Instant;

use super::{Failure, Message};

/// A broker's half of publishing.
pub(super) trait Broker: Sync {
    /// A sent message's confirmation, still to come.
    type Pending: Send;

    /// The failure reason when a confirmation has not come by the deadline.
    const CONFIRM_TIMEOUT: &'static str;

    /// Sends one message; the error is the broker client's own.
    fn send(&self, message: &Message)
        -> impl Future<Output = Result<Self::Pending, String>> + Send;

    /// Awaits one confirmation; the error says why the broker did not take
    /// the message.
    fn confirm(pending: Self::Pending) -> impl Future<Output = Result<(), String>> + Send;
}

/// Sends `messages` in order and waits, until `deadline`, for the broker to
/// confirm each one. On failure, says how many leading messages were
/// confirmed: a confirmation that fails or does not come ends the count
/// there; after a failed send, every message sent before it counts once
/// confirmed.
pub(super) async fn send_then_confirm<B: Broker>(
    broker: &B,
    messages: &[Message],
    deadline: Instant,
) -> Result<(), Failure> {
    let deadline = tokio::time::Instant::from_std(deadline);
    let mut pending = Vec::with_capacity(messages.len());
    let mut send_error = None;
    for m in messages {
        // Sending waits while the client is disconnected: bounded too.
        match tokio::time::timeout_at(deadline, broker.send(m)).await {
            Ok(Ok(p)) => pending.push(p),
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
    let sent = pending.len();
    for (i, p) in pending.into_iter().enumerate() {
        let reason = match tokio::time::timeout_at(deadline, B::confirm(p)).await {
            Ok(Ok(())) => continue,
            Ok(Err(reason)) => reason,
            Err(_) => B::CONFIRM_TIMEOUT.into(),
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::event::EventKind;

    /// A broker that fails or stalls where it is told to, by message
    /// sequence number.
    #[derive(Default)]
    struct Scripted {
        send_fails: Option<i64>,
        send_stalls: Option<i64>,
        confirm_fails: Option<i64>,
        confirm_stalls: Option<i64>,
    }

    impl Broker for Scripted {
        type Pending = (i64, Option<i64>, Option<i64>);
        const CONFIRM_TIMEOUT: &'static str = "no confirmation in time";

        async fn send(&self, m: &Message) -> Result<Self::Pending, String> {
            if self.send_stalls == Some(m.sequence) {
                std::future::pending::<()>().await;
            }
            if self.send_fails == Some(m.sequence) {
                return Err(format!("connection lost at {}", m.sequence));
            }
            Ok((m.sequence, self.confirm_fails, self.confirm_stalls))
        }

        async fn confirm((sequence, fails, stalls): Self::Pending) -> Result<(), String> {
            if stalls == Some(sequence) {
                std::future::pending::<()>().await;
            }
            if fails == Some(sequence) {
                return Err(format!("nack for {sequence}"));
            }
            Ok(())
        }
    }

    fn batch() -> Vec<Message> {
        (1..=5)
            .map(|sequence| Message {
                id: format!("e{sequence}"),
                sequence,
                kind: EventKind::Created,
                body: b"{}".to_vec(),
                traceparent: None,
            })
            .collect()
    }

    async fn publish(broker: Scripted) -> Result<(), (usize, String)> {
        let deadline = Instant::now() + Duration::from_millis(200);
        send_then_confirm(&broker, &batch(), deadline)
            .await
            .map_err(|f| (f.confirmed, f.reason))
    }

    #[tokio::test]
    async fn a_batch_the_broker_confirms_whole_is_published() {
        assert_eq!(publish(Scripted::default()).await, Ok(()));
    }

    #[tokio::test]
    async fn after_a_failed_send_the_messages_sent_before_it_count() {
        let broker = Scripted {
            send_fails: Some(4),
            ..Scripted::default()
        };
        assert_eq!(
            publish(broker).await,
            Err((3, "cannot send: connection lost at 4".into()))
        );
        let broker = Scripted {
            send_stalls: Some(3),
            ..Scripted::default()
        };
        assert_eq!(publish(broker).await, Err((2, "timed out sending".into())));
    }

    #[tokio::test]
    async fn the_count_stops_at_the_first_confirmation_that_fails_or_does_not_come() {
        let broker = Scripted {
            confirm_fails: Some(2),
            ..Scripted::default()
        };
        assert_eq!(publish(broker).await, Err((1, "nack for 2".into())));
        let broker = Scripted {
            confirm_stalls: Some(5),
            ..Scripted::default()
        };
        assert_eq!(
            publish(broker).await,
            Err((4, "no confirmation in time".into()))
        );
        // A refused confirmation before a failed send: the refusal counts.
        let broker = Scripted {
            confirm_fails: Some(1),
            send_fails: Some(3),
            ..Scripted::default()
        };
        assert_eq!(publish(broker).await, Err((0, "nack for 1".into())));
    }
}
