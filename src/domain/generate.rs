//! Synthetic orders: realistic enough for demos and load tests, and the
//! same for the same seed on every machine.
//!
//! Customers order with Zipf-like frequencies (a few order very often, most
//! rarely), statuses lean towards `completed` with recent orders still
//! pending or in progress, amounts run from 5.00 to 2000.00 with a long
//! tail, and creation times spread evenly over the span (ids follow time).
//! Only integer arithmetic on a fixed PRNG is used, so the output never
//! depends on a floating-point library or a crate's RNG algorithm.

use chrono::{DateTime, TimeDelta, Utc};

use super::{Amount, Order, Status};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// How many orders.
    pub count: u64,
    pub seed: u64,
    /// How many distinct customers may appear.
    pub customers: u64,
    /// The newest creation time; the orders span `span` before it.
    pub end: DateTime<Utc>,
    pub span: TimeDelta,
    /// `id` of the first order; `order_id`s count from 1.
    pub first_id: i64,
    /// `order_id` = prefix + zero-padded number (`ORD0000001`).
    pub order_prefix: String,
    pub order_digits: usize,
    /// `customer_id` = prefix + zero-padded number (`CUST000001`).
    pub customer_prefix: String,
    pub customer_digits: usize,
}

impl Spec {
    /// `count` orders over the two years before `end`, one customer per ten
    /// orders.
    pub fn new(count: u64, seed: u64, end: DateTime<Utc>) -> Spec {
        Spec {
            count,
            seed,
            customers: (count / 10).max(1),
            end,
            span: TimeDelta::days(730),
            first_id: 1,
            order_prefix: "ORD".into(),
            order_digits: 7,
            customer_prefix: "CUST".into(),
            customer_digits: 6,
        }
    }
}

/// A small, fixed pseudo-random sequence (SplitMix64).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` ≥ 1).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough here, and cheaper than a modulo.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// The orders of `spec`, oldest first, ids ascending.
pub struct Generator {
    spec: Spec,
    rng: SplitMix,
    next: u64,
    start_micros: i64,
    slot_micros: i64,
    /// Customer ranks are spread over the numbers by this multiplier, so
    /// that `CUST000001` is not also the busiest customer.
    scatter: u64,
    bits: u32,
}

impl Generator {
    pub fn new(spec: Spec) -> Generator {
        let span = spec.span.num_microseconds().unwrap_or(i64::MAX).max(0);
        let end = spec.end.timestamp_micros();
        let slot = if spec.count == 0 {
            0
        } else {
            span / spec.count.min(i64::MAX as u64) as i64
        };
        let customers = spec.customers.max(1);
        let mut scatter = 1_000_003u64;
        while gcd(scatter, customers) != 1 {
            scatter += 2;
        }
        let bits = 64 - customers.leading_zeros();
        Generator {
            rng: SplitMix(spec.seed ^ 0xC0FF_EE00_D15E_A5E5),
            next: 0,
            start_micros: end - span,
            slot_micros: slot,
            scatter,
            bits,
            spec,
        }
    }

    /// A customer rank in `1..=customers`, with probability roughly
    /// proportional to 1/rank: a power-of-two band is chosen uniformly, then
    /// a rank within it.
    fn customer(&mut self) -> u64 {
        let customers = self.spec.customers.max(1);
        let band = self.rng.below(u64::from(self.bits));
        let lo = 1u64 << band;
        let hi = (lo << 1).min(customers + 1);
        let rank = lo + self.rng.below(hi - lo);
        (rank - 1) % customers * (self.scatter % customers) % customers + 1
    }

    /// Cents from 5.00 to 2000.00: mostly under 100, a long tail above.
    fn cents(&mut self) -> i64 {
        let (lo, hi) = match self.rng.below(100) {
            0..=59 => (500, 10_000),
            60..=89 => (10_000, 50_000),
            90..=97 => (50_000, 150_000),
            _ => (150_000, 200_001),
        };
        lo + self.rng.below((hi - lo) as u64) as i64
    }

    fn status(&mut self, age: TimeDelta) -> Status {
        let roll = self.rng.below(100);
        match roll {
            _ if age < TimeDelta::days(3) && roll < 60 => Status::Pending,
            _ if age < TimeDelta::days(10) && roll < 50 => Status::Processing,
            0..=6 => Status::Pending,
            7..=14 => Status::Processing,
            15..=84 => Status::Completed,
            _ => Status::Cancelled,
        }
    }
}

impl Iterator for Generator {
    type Item = Order;

    fn next(&mut self) -> Option<Order> {
        if self.next >= self.spec.count {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let jitter = self.rng.below(self.slot_micros.max(1) as u64) as i64;
        let micros = self.start_micros + self.slot_micros * i as i64 + jitter;
        let created_at =
            DateTime::from_timestamp_micros(micros.min(self.spec.end.timestamp_micros()))
                .unwrap_or(self.spec.end);
        let customer = self.customer();
        let status = self.status(self.spec.end - created_at);
        let cents = self.cents();
        let updated_at = match status {
            Status::Pending => created_at,
            _ => {
                let later = created_at
                    + TimeDelta::minutes(5)
                    + TimeDelta::microseconds(self.rng.below(3 * 86_400_000_000) as i64);
                later.min(self.spec.end).max(created_at)
            }
        };
        Some(Order {
            id: self.spec.first_id + i as i64,
            order_id: format!(
                "{}{:0width$}",
                self.spec.order_prefix,
                i + 1,
                width = self.spec.order_digits
            ),
            customer_id: format!(
                "{}{:0width$}",
                self.spec.customer_prefix,
                customer,
                width = self.spec.customer_digits
            ),
            status,
            total_amount: Amount::from_cents(cents).expect("in range"),
            created_at,
            updated_at,
        })
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn spec(count: u64) -> Spec {
        Spec::new(count, 42, "2026-01-01T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn the_same_seed_gives_the_same_orders() {
        let a: Vec<Order> = Generator::new(spec(1000)).collect();
        assert_eq!(a, Generator::new(spec(1000)).collect::<Vec<_>>());
        let mut other = spec(1000);
        other.seed = 43;
        assert_ne!(a, Generator::new(other).collect::<Vec<_>>());
        assert_eq!(a.len(), 1000);
        assert_eq!(a[0].order_id, "ORD0000001");
        assert_eq!(a[999].id, 1000);
    }

    #[test]
    fn the_data_looks_like_real_orders() {
        let s = spec(20_000);
        let orders: Vec<Order> = Generator::new(s.clone()).collect();
        let mut per_customer: HashMap<&str, usize> = HashMap::new();
        for o in &orders {
            *per_customer.entry(&o.customer_id).or_default() += 1;
        }
        let mut counts: Vec<usize> = per_customer.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // Zipf-like: the busiest customer orders far more than the median one.
        assert!(counts[0] > 20 * counts[counts.len() / 2], "{counts:?}");
        let completed = orders
            .iter()
            .filter(|o| o.status == Status::Completed)
            .count();
        assert!(completed > orders.len() / 2);
        for status in Status::ALL {
            assert!(orders.iter().any(|o| o.status == status));
        }
        let cents: Vec<i64> = orders.iter().map(|o| o.total_amount.cents()).collect();
        assert!(cents.iter().all(|c| (500..=200_000).contains(c)));
        assert!(cents.iter().any(|c| *c > 150_000));
        assert!(orders
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at));
        assert!(orders
            .iter()
            .all(|o| o.updated_at >= o.created_at && o.updated_at <= s.end));
        assert!(s.end - orders[0].created_at > TimeDelta::days(700));
    }
}
