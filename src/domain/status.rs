//! The order status and its one transition rule.

use std::fmt;
use std::str::FromStr;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Cancelled,
}

impl Status {
    /// Every status, in the order they are reported.
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Processing,
        Status::Completed,
        Status::Cancelled,
    ];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Cancelled => "cancelled",
        }
    }

    /// The statuses this one may change into. This is the only place the
    /// transition rule is written; the stores apply it inside their
    /// transactions.
    pub fn next(self) -> &'static [Status] {
        match self {
            Status::Pending => &[Status::Processing, Status::Cancelled],
            Status::Processing => &[Status::Completed, Status::Cancelled],
            Status::Completed | Status::Cancelled => &[],
        }
    }

    /// Whether an order in this status may be set to `target`. Staying in the
    /// same status is always allowed (a no-op).
    pub fn can_become(self, target: Status) -> bool {
        self == target || self.next().contains(&target)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the four statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be one of pending, processing, completed, cancelled")]
pub struct UnknownStatus;

impl FromStr for Status {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(UnknownStatus)
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn the_transition_table_is_the_contracts() {
        let allowed = [
            (Pending, Processing),
            (Pending, Cancelled),
            (Processing, Completed),
            (Processing, Cancelled),
        ];
        for from in Status::ALL {
            for to in Status::ALL {
                let expected = from == to || allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} → {to}");
            }
        }
    }

    #[test]
    fn final_statuses_go_nowhere() {
        assert!(Completed.next().is_empty());
        assert!(Cancelled.next().is_empty());
    }

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
        }
        assert_eq!("Pending".parse::<Status>(), Err(UnknownStatus));
        assert_eq!("".parse::<Status>(), Err(UnknownStatus));
        assert_eq!(" pending".parse::<Status>(), Err(UnknownStatus));
    }
}
