//! The demo data set a new SQLite database starts with.
//!
//! Deterministic: the same orders, amounts and statuses every time. They
//! come from the same generator as `commandes generate` (two years, evenly
//! spread), and their creation times are then drawn into the
//! [`DEMO_DAYS`] before the day the database is created, denser towards
//! today, so that the dashboard's chart of orders over time shows a shop
//! that grows rather than a flat line.

use chrono::{DateTime, TimeDelta, Utc};

use super::generate::{Generator, Spec};
use super::{HistoricalOrder, NewOrder};

/// How many demo orders there are.
pub const DEMO_ORDERS: usize = 300;
const CUSTOMERS: u64 = 60;
/// The days the demo orders were created in, up to the anchor.
pub const DEMO_DAYS: i64 = 90;
/// How much denser the newest orders are: an age `a` of the generator's
/// span becomes `DEMO_DAYS × (a / span)^GROWTH`, so about four times as
/// many orders a day at the end as at the start. The order of the orders
/// (ids follow time) and their statuses are kept.
const GROWTH: f64 = 1.5;

/// The demo's time for a generated time: the same order, closer to `anchor`.
fn drawn_in(time: DateTime<Utc>, anchor: DateTime<Utc>, span: TimeDelta) -> DateTime<Utc> {
    let span_micros = span.num_microseconds().unwrap_or(i64::MAX) as f64;
    let age =
        ((anchor - time).num_microseconds().unwrap_or(0) as f64 / span_micros).clamp(0.0, 1.0);
    let demo = TimeDelta::days(DEMO_DAYS).num_microseconds().unwrap_or(0) as f64;
    anchor - TimeDelta::microseconds((demo * age.powf(GROWTH)) as i64)
}

/// The demo orders, oldest first, ending at `anchor`: the generator's
/// orders with the demo's own seed, names and customer count.
pub fn demo_orders(anchor: DateTime<Utc>) -> Vec<HistoricalOrder> {
    let spec = Spec {
        customers: CUSTOMERS,
        order_prefix: "CMD".into(),
        order_digits: 5,
        customer_prefix: "CLIENT".into(),
        customer_digits: 3,
        ..Spec::new(DEMO_ORDERS as u64, 0xC0FFEE, anchor)
    };
    let span = spec.span;
    Generator::new(spec)
        .map(|o| {
            let created_at = drawn_in(o.created_at, anchor, span);
            // The order keeps the time it took to change, within the anchor.
            let updated_at = (created_at + (o.updated_at - o.created_at)).min(anchor);
            HistoricalOrder {
                order: NewOrder {
                    order_id: o.order_id,
                    customer_id: o.customer_id,
                    status: o.status,
                    total_amount: o.total_amount,
                },
                created_at,
                updated_at: updated_at.max(created_at),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::Status;

    #[test]
    fn the_demo_is_deterministic_and_varied() {
        let anchor: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
        let a = demo_orders(anchor);
        assert_eq!(a, demo_orders(anchor));
        assert_eq!(a.len(), DEMO_ORDERS);
        for status in Status::ALL {
            assert!(a.iter().any(|o| o.order.status == status), "{status}");
        }
        let customers: std::collections::HashSet<_> =
            a.iter().map(|o| &o.order.customer_id).collect();
        assert!(customers.len() > 20);
        let oldest = a.iter().map(|o| o.created_at).min().unwrap();
        assert!(anchor - oldest > TimeDelta::days(DEMO_DAYS - 5));
        assert!(anchor - oldest <= TimeDelta::days(DEMO_DAYS));
        assert!(a
            .iter()
            .all(|o| o.updated_at >= o.created_at && o.updated_at <= anchor));
        assert!(a.windows(2).all(|w| w[0].created_at <= w[1].created_at));
        // A shape, not a flat line: the last 30 days hold far more orders
        // than the first 30.
        let within = |from: i64, to: i64| {
            a.iter()
                .filter(|o| {
                    let age = anchor - o.created_at;
                    age >= TimeDelta::days(from) && age < TimeDelta::days(to)
                })
                .count()
        };
        let (recent, early) = (within(0, 30), within(60, 90));
        assert!(recent > 2 * early, "{recent} vs {early}");
    }
}
