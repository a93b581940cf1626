//! The order and the values that create or change one.

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use super::{Amount, Status};

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Assigned by the store, never reused.
    pub id: i64,
    pub order_id: String,
    pub customer_id: String,
    pub status: Status,
    pub total_amount: Amount,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A valid request to create an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub order_id: String,
    pub customer_id: String,
    pub status: Status,
    pub total_amount: Amount,
}

/// A valid, non-empty set of changes to an order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPatch {
    pub order_id: Option<String>,
    pub customer_id: Option<String>,
    pub status: Option<Status>,
    pub total_amount: Option<Amount>,
}

/// An order with its own timestamps, as loaded from demo data or a
/// historical export. Any status is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoricalOrder {
    pub order: NewOrder,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change the transition rule forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot change status from {from} to {to}")]
pub struct IllegalTransition {
    pub from: Status,
    pub to: Status,
}

impl OrderPatch {
    /// A patch that only sets the status.
    pub fn status(status: Status) -> OrderPatch {
        OrderPatch {
            status: Some(status),
            ..OrderPatch::default()
        }
    }
}

impl Order {
    /// The order after `patch`, or `None` when the patch changes nothing (a
    /// no-op keeps `updated_at`). The transition rule is checked here, so
    /// every store applies it the same way inside its own transaction.
    pub fn apply(
        &self,
        patch: &OrderPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Order>, IllegalTransition> {
        if let Some(to) = patch.status {
            if !self.status.can_become(to) {
                return Err(IllegalTransition {
                    from: self.status,
                    to,
                });
            }
        }
        let mut next = self.clone();
        if let Some(v) = &patch.order_id {
            next.order_id.clone_from(v);
        }
        if let Some(v) = &patch.customer_id {
            next.customer_id.clone_from(v);
        }
        if let Some(v) = patch.status {
            next.status = v;
        }
        if let Some(v) = patch.total_amount {
            next.total_amount = v;
        }
        if next == *self {
            return Ok(None);
        }
        next.updated_at = next_update_time(self.updated_at, now);
        Ok(Some(next))
    }
}

/// The current time at the precision both stores keep (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A new `updated_at` that is strictly later than the previous one even when
/// two changes fall in the same microsecond (or the clock steps back), so
/// that every change is visible in the timestamp.
pub fn next_update_time(previous: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
    let floor = previous + TimeDelta::microseconds(1);
    now.max(floor)
}

/// Formats a time the way the contract shows it: UTC, microseconds, `Z`.
pub fn format_time(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: Status) -> Order {
        let t = "2026-11-25T19:09:25.123456Z".parse().unwrap();
        Order {
            id: 1,
            order_id: "CMD001".into(),
            customer_id: "CLIENT123".into(),
            status,
            total_amount: Amount::parse_str("150.50").unwrap(),
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn a_legal_change_moves_updated_at_forward() {
        let o = order(Status::Pending);
        let later = o.updated_at + TimeDelta::seconds(5);
        let next = o
            .apply(&OrderPatch::status(Status::Processing), later)
            .unwrap()
            .unwrap();
        assert_eq!(next.status, Status::Processing);
        assert_eq!(next.updated_at, later);
        assert_eq!(next.created_at, o.created_at);
    }

    #[test]
    fn same_values_are_a_no_op() {
        let o = order(Status::Completed);
        let patch = OrderPatch {
            order_id: Some("CMD001".into()),
            status: Some(Status::Completed),
            ..OrderPatch::default()
        };
        assert_eq!(o.apply(&patch, now()), Ok(None));
    }

    #[test]
    fn an_illegal_transition_is_refused_whatever_else_changes() {
        let o = order(Status::Cancelled);
        let patch = OrderPatch {
            customer_id: Some("OTHER".into()),
            status: Some(Status::Pending),
            ..OrderPatch::default()
        };
        assert_eq!(
            o.apply(&patch, now()),
            Err(IllegalTransition {
                from: Status::Cancelled,
                to: Status::Pending
            })
        );
    }

    #[test]
    fn changes_in_the_same_microsecond_still_differ() {
        let o = order(Status::Pending);
        let next = o
            .apply(&OrderPatch::status(Status::Processing), o.updated_at)
            .unwrap()
            .unwrap();
        assert!(next.updated_at > o.updated_at);
        let earlier = o.updated_at - TimeDelta::seconds(1);
        assert!(next_update_time(o.updated_at, earlier) > o.updated_at);
    }

    #[test]
    fn times_print_with_microseconds_and_z() {
        let t: DateTime<Utc> = "2026-11-25T19:09:25Z".parse().unwrap();
        assert_eq!(format_time(&t), "2026-11-25T19:09:25.000000Z");
    }
}
