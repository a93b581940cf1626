//! The demo data set a new SQLite database starts with.
//!
//! Deterministic: the same orders, amounts and statuses every time, spread
//! over the two years before the day the database is created. They come
//! from the same generator as `commandes generate`.

use chrono::{DateTime, Utc};

use super::generate::{Generator, Spec};
use super::{HistoricalOrder, NewOrder};

/// How many demo orders there are.
pub const DEMO_ORDERS: usize = 300;
const CUSTOMERS: u64 = 60;

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
    Generator::new(spec)
        .map(|o| HistoricalOrder {
            order: NewOrder {
                order_id: o.order_id,
                customer_id: o.customer_id,
                status: o.status,
                total_amount: o.total_amount,
            },
            created_at: o.created_at,
            updated_at: o.updated_at,
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
        assert!(anchor - oldest > TimeDelta::days(600));
        assert!(a
            .iter()
            .all(|o| o.updated_at >= o.created_at && o.updated_at <= anchor));
    }
}
