//! Counts and sums per status.

use super::amount::{average_cents, format_cents};
use super::Status;

/// Order counts and amounts per status, as a store computes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Indexed like [`Status::ALL`].
    pub counts: [i64; 4],
    /// Sums in cents, indexed like [`Status::ALL`]; `i128` so that no
    /// number of orders can overflow.
    pub sums: [i128; 4],
}

impl Stats {
    /// Adds `count` orders worth `cents` in all to `status`.
    pub fn add(&mut self, status: Status, count: i64, cents: i128) {
        let i = Status::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is listed");
        self.counts[i] += count;
        self.sums[i] += cents;
    }

    pub fn total_orders(&self) -> i64 {
        self.counts.iter().sum()
    }

    pub fn total_cents(&self) -> i128 {
        self.sums.iter().sum()
    }

    /// `total_amount` as the contract prints it.
    pub fn total_amount(&self) -> String {
        format_cents(self.total_cents())
    }

    /// The mean amount, rounded half away from zero; `"0.00"` when empty.
    pub fn average_amount(&self) -> String {
        format_cents(average_cents(self.total_cents(), self.total_orders()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_average() {
        let mut s = Stats::default();
        assert_eq!(
            (s.total_amount(), s.average_amount()),
            ("0.00".into(), "0.00".into())
        );
        s.add(Status::Pending, 2, 1001);
        s.add(Status::Cancelled, 1, 0);
        assert_eq!(s.total_orders(), 3);
        assert_eq!(s.total_amount(), "10.01");
        assert_eq!(s.average_amount(), "3.34"); // 3.336…
    }
}
