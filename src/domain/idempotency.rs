//! Idempotency keys for creation (IETF httpapi `Idempotency-Key` draft).

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{NewOrder, ValidationErrors};

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// A key, scoped to its caller, with the fingerprint of the request it
/// came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Who sent it; keys of different callers never meet.
    pub scope: String,
    pub key: String,
    /// Identifies the request: the same key with another body is refused.
    pub fingerprint: String,
    /// How long the outcome is kept for replays.
    pub ttl: Duration,
}

impl IdempotencyKey {
    /// Checks the header value (1–255 visible ASCII characters) and binds
    /// it to the caller and the order it asks to create.
    pub fn new(
        scope: &str,
        key: &str,
        order: &NewOrder,
        ttl: Duration,
    ) -> Result<IdempotencyKey, ValidationErrors> {
        if key.is_empty()
            || key.len() > MAX_KEY_LEN
            || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(ValidationErrors::one(
                "Idempotency-Key",
                "must be 1 to 255 printable ASCII characters",
            ));
        }
        Ok(IdempotencyKey {
            scope: scope.to_string(),
            key: key.to_string(),
            fingerprint: fingerprint(order),
            ttl,
        })
    }
}

/// A digest of the values of the order, so that the same request written
/// differently (`150.5` or `"150.50"`, keys in another order) is the same.
pub fn fingerprint(order: &NewOrder) -> String {
    let mut h = Sha256::new();
    for part in [
        order.order_id.as_str(),
        order.customer_id.as_str(),
        order.status.as_str(),
        &order.total_amount.cents().to_string(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    crate::hex::encode(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Status};

    fn order(amount: i64) -> NewOrder {
        NewOrder {
            order_id: "A".into(),
            customer_id: "C".into(),
            status: Status::Pending,
            total_amount: Amount::from_cents(amount).unwrap(),
        }
    }

    #[test]
    fn the_fingerprint_is_of_the_values() {
        assert_eq!(fingerprint(&order(100)), fingerprint(&order(100)));
        assert_ne!(fingerprint(&order(100)), fingerprint(&order(101)));
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        let ttl = Duration::from_secs(1);
        assert!(IdempotencyKey::new("s", "abc-123", &order(1), ttl).is_ok());
        assert!(IdempotencyKey::new("s", "", &order(1), ttl).is_err());
        assert!(IdempotencyKey::new("s", &"k".repeat(256), &order(1), ttl).is_err());
        assert!(IdempotencyKey::new("s", "tab\there", &order(1), ttl).is_err());
        assert!(IdempotencyKey::new("s", "clé", &order(1), ttl).is_err());
    }
}
