//! The order rules every backend applies in the same way, between its
//! locked read of an order and its write: who may give an order to whom,
//! what `If-Match` requires, and what an update turns into (the new order
//! and its events). A backend keeps only the read under its lock and the
//! write; it never decides one of these itself.

use chrono::{DateTime, Utc};

use super::{Conflict, StoreError, Updated};
use crate::domain::event::{self, NewEvent};
use crate::domain::{Actor, Order, OrderPatch, Precondition, Sort};

/// `Forbidden` unless `actor` may give an order to `customer_id` (create
/// it for, or move it to, that customer). Both backends call it inside the
/// transaction of the change.
pub fn check_assignable(actor: &Actor, customer_id: &str) -> Result<(), StoreError> {
    if actor.sees(customer_id) {
        Ok(())
    } else {
        Err(StoreError::Forbidden(
            "a customer-scoped token may only give orders to its own customer_id".into(),
        ))
    }
}

/// `PreconditionFailed` (carrying the order as it is) unless `if_match`
/// allows changing `current`.
pub fn check_precondition(
    if_match: Option<&Precondition>,
    current: &Order,
) -> Result<(), StoreError> {
    match if_match {
        Some(p) if !p.matches_strong(current) => {
            Err(StoreError::PreconditionFailed(Box::new(current.clone())))
        }
        _ => Ok(()),
    }
}

/// What an update of one order comes to.
#[derive(Debug)]
pub enum UpdatePlan {
    /// The patch changes nothing: answer with the order as it is and write
    /// nothing (no event either).
    Unchanged(Order),
    /// Write `next` in place of `current`, with `events` in the same
    /// transaction.
    Write(PlannedWrite),
}

/// An update that changes the order.
#[derive(Debug)]
pub struct PlannedWrite {
    pub current: Order,
    pub next: Order,
    pub events: Vec<NewEvent>,
}

impl Updated {
    /// The answer to a patch that changes nothing.
    pub fn unchanged(order: Order) -> Updated {
        Updated {
            order,
            previous: None,
        }
    }
}

impl PlannedWrite {
    /// The store's answer once the write is committed.
    pub fn done(self) -> Updated {
        Updated {
            order: self.next,
            previous: Some(self.current),
        }
    }
}

/// Decides an update of `current` (read under the backend's lock, already
/// filtered by the actor's ownership): the new customer must be one the
/// actor may assign, `if_match` must hold, and the status move must be
/// allowed. In this order, so that a forbidden move is a 403 whatever the
/// precondition, and a stale `If-Match` is a 412 before any 409.
pub fn plan_update(
    current: Order,
    patch: &OrderPatch,
    if_match: Option<&Precondition>,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<UpdatePlan, StoreError> {
    if let Some(customer_id) = &patch.customer_id {
        check_assignable(actor, customer_id)?;
    }
    check_precondition(if_match, &current)?;
    match current.apply(patch, now) {
        Ok(None) => Ok(UpdatePlan::Unchanged(current)),
        Ok(Some(next)) => {
            let events = event::changed(&current, &next, actor);
            Ok(UpdatePlan::Write(PlannedWrite {
                current,
                next,
                events,
            }))
        }
        Err(e) => Err(StoreError::Conflict(Conflict::Transition {
            from: e.from,
            to: e.to,
        })),
    }
}

/// The SQL direction of `sort`, and the comparison that keeps the rows
/// after a cursor in that direction.
pub fn direction(sort: Sort) -> (&'static str, &'static str) {
    if sort.descending {
        ("desc", "<")
    } else {
        ("asc", ">")
    }
}
