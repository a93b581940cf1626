//! Entity tags and the `If-Match` / `If-None-Match` preconditions
//! (RFC 9110 §8.8.3, §13.1).
//!
//! An order's tag is built from its id and `updated_at` in microseconds.
//! `updated_at` moves forward on every change, even for two changes in the
//! same microsecond ([`super::order::next_update_time`]), so the tag is
//! strong: it changes on every change and only then.

use super::Order;

impl Order {
    /// The strong entity tag of the order's current state, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.id, self.updated_at.timestamp_micros())
    }
}

/// A parsed `If-Match` or `If-None-Match` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// `*`: any current representation.
    Any,
    /// A list of entity tags, each with its `W/` prefix if weak.
    Tags(Vec<String>),
}

impl Precondition {
    /// Parses the header value. Members that are not valid entity tags are
    /// kept as given: they simply never match.
    pub fn parse(value: &str) -> Precondition {
        if value.trim() == "*" {
            return Precondition::Any;
        }
        Precondition::Tags(
            value
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    /// `If-Match`: strong comparison, so a weak tag never matches.
    pub fn matches_strong(&self, order: &Order) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Tags(tags) => {
                let current = order.etag();
                tags.contains(&current)
            }
        }
    }

    /// `If-None-Match`: weak comparison, `W/` is ignored.
    pub fn matches_weak(&self, order: &Order) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::Tags(tags) => {
                let current = order.etag();
                tags.iter()
                    .any(|t| t.strip_prefix("W/").unwrap_or(t) == current)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::{Amount, Status};

    fn order() -> Order {
        let t = "2026-11-25T19:09:25.123456Z".parse().unwrap();
        Order {
            id: 7,
            order_id: "A".into(),
            customer_id: "C".into(),
            status: Status::Pending,
            total_amount: Amount::ZERO,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn the_tag_changes_with_every_change() {
        let a = order();
        let mut b = a.clone();
        b.updated_at += TimeDelta::microseconds(1);
        assert_ne!(a.etag(), b.etag());
        assert!(a.etag().starts_with("\"7-") && a.etag().ends_with('"'));
    }

    #[test]
    fn if_match_is_strong_and_if_none_match_weak() {
        let o = order();
        let tag = o.etag();
        assert!(Precondition::parse(&tag).matches_strong(&o));
        assert!(Precondition::parse(&format!("\"x\", {tag}")).matches_strong(&o));
        assert!(!Precondition::parse(&format!("W/{tag}")).matches_strong(&o));
        assert!(Precondition::parse(&format!("W/{tag}")).matches_weak(&o));
        assert!(Precondition::parse("*").matches_strong(&o));
        assert!(!Precondition::parse("\"7-0\"").matches_strong(&o));
        assert!(!Precondition::parse("garbage").matches_strong(&o));
    }
}
