//! Who makes a change or a read, and what they may see.

/// The caller of a store operation, as the API established it.
///
/// Everything here is safe to log and to store: `who` is a token id or a
/// JWT subject, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    /// Who acts, for records and events: `token:<token id>`, `jwt:<sub>`,
    /// or `system` for the service's own work (demo data, imports).
    pub who: String,
    /// The request this happens in (empty outside a request).
    pub request_id: String,
    /// The W3C `traceparent` of the request, handed on to the events of
    /// its changes (`None` outside a request, or with no trace).
    pub traceparent: Option<String>,
    /// When set, only this customer's orders exist for this caller: others
    /// are not found, and it may create or move orders only to this customer.
    pub owner: Option<String>,
}

impl Actor {
    /// The service itself, outside any request: sees everything.
    pub fn system() -> Actor {
        Actor {
            who: "system".into(),
            request_id: String::new(),
            traceparent: None,
            owner: None,
        }
    }

    /// Whether an order of `customer_id` is visible to this actor.
    pub fn sees(&self, customer_id: &str) -> bool {
        self.owner
            .as_deref()
            .is_none_or(|owner| owner == customer_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_sees_only_its_customer() {
        let mut actor = Actor::system();
        assert!(actor.sees("anyone"));
        actor.owner = Some("c1".into());
        assert!(actor.sees("c1"));
        assert!(!actor.sees("c2"));
    }
}
