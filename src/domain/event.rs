//! Order events: what changed, by whom, in which request.
//!
//! A store writes the events of a change in the same transaction as the
//! change (the outbox), so an event exists exactly when its change was
//! committed. This module decides which events a change makes and what they
//! carry; the stores only persist them and hand out sequence numbers.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{format_time, Actor, Order};

/// The four kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Created,
    Updated,
    StatusChanged,
    Deleted,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Created,
        EventKind::Updated,
        EventKind::StatusChanged,
        EventKind::Deleted,
    ];

    /// The CloudEvents `type`: `order.created`, `order.updated`,
    /// `order.status_changed`, `order.deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "order.created",
            EventKind::Updated => "order.updated",
            EventKind::StatusChanged => "order.status_changed",
            EventKind::Deleted => "order.deleted",
        }
    }

    /// The part after `order.` (`created`, …), for broker subjects and keys.
    pub fn short(self) -> &'static str {
        &self.as_str()["order.".len()..]
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event about to be stored with its change; the store gives it its
/// sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// A random UUID (v4), unique across replicas: the broker message id.
    pub id: String,
    pub kind: EventKind,
    pub time: DateTime<Utc>,
    /// The order's `id`.
    pub order_ref: i64,
    /// The order's `order_id` at the time of the event.
    pub order_id: String,
    /// The order's customer after the change (who may see this history).
    pub customer_id: String,
    /// The CloudEvents `data` object, without `sequence` (added when read).
    pub data: Value,
    /// The W3C `traceparent` of the request that made the change (the
    /// CloudEvents distributed-tracing extension), if it had one.
    pub traceparent: Option<String>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Increases with commit order: a reader that has seen `n` has seen every
    /// event below it that will ever exist.
    pub sequence: i64,
    pub event: NewEvent,
}

/// A random UUID v4 in its usual text form.
pub fn new_event_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::hex::encode(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An order as the API shows it (the events carry the same shape).
pub fn order_json(order: &Order) -> Value {
    json!({
        "id": order.id,
        "order_id": order.order_id,
        "customer_id": order.customer_id,
        "status": order.status.as_str(),
        "total_amount": order.total_amount.to_string(),
        "created_at": format_time(&order.created_at),
        "updated_at": format_time(&order.updated_at),
    })
}

fn event(
    kind: EventKind,
    order: &Order,
    actor: &Actor,
    time: DateTime<Utc>,
    extra: Map<String, Value>,
) -> NewEvent {
    let mut data = Map::new();
    data.insert("id".into(), json!(order.id));
    data.insert("order_id".into(), json!(order.order_id));
    data.insert("actor".into(), json!(actor.who));
    data.insert("request_id".into(), json!(actor.request_id));
    data.extend(extra);
    data.insert("order".into(), order_json(order));
    NewEvent {
        id: new_event_id(),
        kind,
        time,
        order_ref: order.id,
        order_id: order.order_id.clone(),
        customer_id: order.customer_id.clone(),
        data: Value::Object(data),
        traceparent: actor.traceparent.clone(),
    }
}

/// The event of a new order. A store that learns the order's `id` only
/// from the insert itself may build it with `id` 0 and set `order_ref`,
/// `data.id` and `data.order.id` in the same statement.
pub fn created(order: &Order, actor: &Actor) -> NewEvent {
    event(
        EventKind::Created,
        order,
        actor,
        order.created_at,
        Map::new(),
    )
}

/// The kinds of event a change from `before` to `after` makes, in order
/// (what [`changed`] builds, without building it: for counting).
pub fn change_kinds(before: &Order, after: &Order) -> Vec<EventKind> {
    let mut kinds = Vec::new();
    if before.order_id != after.order_id
        || before.customer_id != after.customer_id
        || before.total_amount != after.total_amount
    {
        kinds.push(EventKind::Updated);
    }
    if before.status != after.status {
        kinds.push(EventKind::StatusChanged);
    }
    kinds
}

/// The events of a change from `before` to `after`: `order.updated` with the
/// fields other than the status that changed (before and after), and
/// `order.status_changed` if the status did, in that order. None for a no-op.
pub fn changed(before: &Order, after: &Order, actor: &Actor) -> Vec<NewEvent> {
    let mut events = Vec::new();
    let mut changes = Map::new();
    let mut field = |name: &str, b: Value, a: Value| {
        if b != a {
            changes.insert(name.into(), json!({ "before": b, "after": a }));
        }
    };
    field("order_id", json!(before.order_id), json!(after.order_id));
    field(
        "customer_id",
        json!(before.customer_id),
        json!(after.customer_id),
    );
    field(
        "total_amount",
        json!(before.total_amount.to_string()),
        json!(after.total_amount.to_string()),
    );
    if !changes.is_empty() {
        let mut extra = Map::new();
        extra.insert("changes".into(), Value::Object(changes));
        events.push(event(
            EventKind::Updated,
            after,
            actor,
            after.updated_at,
            extra,
        ));
    }
    if before.status != after.status {
        let mut extra = Map::new();
        extra.insert("from".into(), json!(before.status.as_str()));
        extra.insert("to".into(), json!(after.status.as_str()));
        events.push(event(
            EventKind::StatusChanged,
            after,
            actor,
            after.updated_at,
            extra,
        ));
    }
    events
}

/// The event of a deletion; it carries the order as it was.
pub fn deleted(order: &Order, actor: &Actor, time: DateTime<Utc>) -> NewEvent {
    event(EventKind::Deleted, order, actor, time, Map::new())
}

impl Event {
    /// The event as `actor` may read it in an order's history, or `None`
    /// when it is not for `actor` at all.
    ///
    /// A caller restricted to customer C reads the events after which the
    /// order was C's (the event's `customer_id`): the time the order was
    /// C's. The event that took the order away from C belongs to the new
    /// customer. What C reads names no other caller and no other customer:
    /// no `actor`, no `request_id`, no `traceparent`, and in the event that gave the order to
    /// C, no `before` in `changes` (it describes the order as another
    /// customer had it). Every other caller reads every event whole.
    pub fn seen_by(mut self, actor: &Actor) -> Option<Event> {
        let Some(owner) = actor.owner.as_deref() else {
            return Some(self);
        };
        if self.event.customer_id != owner {
            return None;
        }
        self.event.traceparent = None;
        if let Value::Object(data) = &mut self.event.data {
            data.remove("actor");
            data.remove("request_id");
            if let Some(Value::Object(changes)) = data.get_mut("changes") {
                // Within C's time, only the move to C changes the customer.
                if changes.contains_key("customer_id") {
                    for change in changes.values_mut() {
                        if let Value::Object(change) = change {
                            change.remove("before");
                        }
                    }
                }
            }
        }
        Some(self)
    }

    /// The CloudEvents 1.0 JSON envelope. `source` names this service (a
    /// URI reference, the same on every replica). The sequence number is in
    /// `data.sequence` (the CloudEvents `sequence` extension would want a
    /// string). `traceparent` (the distributed-tracing extension) is there
    /// when the change was made in a traced request.
    pub fn cloud_event(&self, source: &str) -> Value {
        let mut data = self.event.data.clone();
        if let Value::Object(map) = &mut data {
            map.insert("sequence".into(), json!(self.sequence));
        }
        let mut envelope = json!({
            "specversion": "1.0",
            "id": self.event.id,
            "source": source,
            "type": self.event.kind.as_str(),
            "subject": self.event.order_ref.to_string(),
            "time": format_time(&self.event.time),
            "datacontenttype": "application/json",
            "data": data,
        });
        if let (Some(t), Value::Object(map)) = (&self.event.traceparent, &mut envelope) {
            map.insert("traceparent".into(), json!(t));
        }
        envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Status};

    fn order() -> Order {
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        Order {
            id: 7,
            order_id: "CMD-7".into(),
            customer_id: "c1".into(),
            status: Status::Pending,
            total_amount: Amount::from_cents(1050).unwrap(),
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn ids_are_uuid_v4() {
        let id = new_event_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_event_id());
    }

    #[test]
    fn a_change_makes_updated_then_status_changed() {
        let before = order();
        let mut after = before.clone();
        after.total_amount = Amount::from_cents(1100).unwrap();
        after.status = Status::Processing;
        let events = changed(&before, &after, &Actor::system());
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Updated, EventKind::StatusChanged]);
        assert_eq!(
            events[0].data["changes"]["total_amount"],
            json!({"before": "10.50", "after": "11.00"})
        );
        assert!(events[0].data["changes"].get("status").is_none());
        assert_eq!(events[1].data["from"], "pending");
        assert_eq!(events[1].data["to"], "processing");
        assert!(changed(&before, &before, &Actor::system()).is_empty());
        assert_eq!(change_kinds(&before, &after), kinds);
        assert!(change_kinds(&before, &before).is_empty());
        let mut moved = before.clone();
        moved.customer_id = "c2".into();
        assert_eq!(change_kinds(&before, &moved), [EventKind::Updated]);
        assert_eq!(
            changed(&before, &moved, &Actor::system())[0].customer_id,
            "c2"
        );
    }

    #[test]
    fn a_customer_reads_only_its_time_without_other_callers() {
        let order = order();
        let by = Actor {
            who: "jwt:user-1".into(),
            request_id: "r1".into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            owner: None,
        };
        let mut moved = order.clone();
        moved.customer_id = "c2".into();
        moved.total_amount = Amount::from_cents(1100).unwrap();
        let stored = |e: NewEvent| Event {
            sequence: 1,
            event: e,
        };
        let made = stored(created(&order, &by));
        let move_to_c2 = stored(changed(&order, &moved, &by).remove(0));
        let c1 = Actor {
            owner: Some("c1".into()),
            ..Actor::system()
        };
        let c2 = Actor {
            owner: Some("c2".into()),
            ..Actor::system()
        };
        // Everyone else reads it whole.
        assert_eq!(move_to_c2.clone().seen_by(&by), Some(move_to_c2.clone()));
        // c1 reads its own time, and not the move away.
        let seen = made.clone().seen_by(&c1).unwrap();
        assert!(seen.event.data.get("actor").is_none());
        assert!(seen.event.data.get("request_id").is_none());
        assert_eq!(seen.event.traceparent, None);
        assert_eq!(seen.event.data["order"], made.event.data["order"]);
        assert_eq!(move_to_c2.clone().seen_by(&c1), None);
        assert_eq!(made.seen_by(&c2), None);
        // c2 reads the move without what the order was before.
        let seen = move_to_c2.seen_by(&c2).unwrap();
        assert_eq!(
            seen.event.data["changes"],
            json!({"customer_id": {"after": "c2"}, "total_amount": {"after": "11.00"}})
        );
        assert!(!seen.event.data.to_string().contains("c1"));
    }

    #[test]
    fn the_envelope_is_cloudevents() {
        let e = Event {
            sequence: 3,
            event: created(&order(), &Actor::system()),
        };
        let v = e.cloud_event("/commandes");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "order.created");
        assert_eq!(v["subject"], "7");
        assert_eq!(v["data"]["sequence"], 3);
        assert_eq!(v["data"]["order"]["total_amount"], "10.50");
        assert!(v.get("traceparent").is_none());
        let traced = Actor {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..Actor::system()
        };
        let e = Event {
            sequence: 3,
            event: created(&order(), &traced),
        };
        assert_eq!(
            e.cloud_event("/commandes")["traceparent"],
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert_eq!(EventKind::parse("order.deleted"), Some(EventKind::Deleted));
        assert_eq!(EventKind::StatusChanged.short(), "status_changed");
    }
}
