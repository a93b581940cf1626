//! The demo data set a new SQLite database starts with.
//!
//! Deterministic: the same orders, amounts and statuses every time, spread
//! over the two years before the day the database is created.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Amount, HistoricalOrder, NewOrder, Status};

/// How many demo orders there are.
pub const DEMO_ORDERS: usize = 300;
const CUSTOMERS: u64 = 60;

/// A small, fixed pseudo-random sequence (SplitMix64): the demo must not
/// depend on a crate's RNG algorithm staying the same between versions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The demo orders, oldest first, ending at `anchor`.
pub fn demo_orders(anchor: DateTime<Utc>) -> Vec<HistoricalOrder> {
    let mut rng = SplitMix(0xC0FFEE);
    let span_micros = TimeDelta::days(730).num_microseconds().expect("fits");
    let mut offsets: Vec<i64> = (0..DEMO_ORDERS)
        .map(|_| (rng.next() % span_micros as u64) as i64)
        .collect();
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    offsets
        .into_iter()
        .enumerate()
        .map(|(i, back)| {
            let created_at = anchor - TimeDelta::microseconds(back);
            // A few customers order often, most rarely.
            let c = rng.below(CUSTOMERS);
            let customer = (c * c) / CUSTOMERS + 1;
            let roll = rng.below(100);
            let age_days = back / 86_400_000_000;
            let status = match roll {
                _ if age_days < 3 && roll < 60 => Status::Pending,
                _ if age_days < 10 && roll < 50 => Status::Processing,
                0..=6 => Status::Pending,
                7..=14 => Status::Processing,
                15..=84 => Status::Completed,
                _ => Status::Cancelled,
            };
            // Mostly 5–300, with a long tail up to 2000.
            let cents = if rng.below(10) == 0 {
                30_000 + rng.below(170_001) as i64
            } else {
                500 + rng.below(29_501) as i64
            };
            let updated_at = match status {
                Status::Pending => created_at,
                _ => created_at + TimeDelta::minutes(5 + rng.below(60 * 24 * 3) as i64),
            };
            HistoricalOrder {
                order: NewOrder {
                    order_id: format!("CMD{:05}", i + 1),
                    customer_id: format!("CLIENT{customer:03}"),
                    status,
                    total_amount: Amount::from_cents(cents).expect("in range"),
                },
                created_at,
                updated_at: updated_at.min(anchor).max(created_at),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
