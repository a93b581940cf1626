//! The changes of one order on PostgreSQL (an update, a delete) and their
//! events, in as few round trips and as short row locks as the rules
//! allow.
//!
//! A change is read, decided ([`rules`]), then written by one statement,
//! in its own implicit transaction, that applies only if the row is still
//! the one that was read (every column compared) and inserts the change's
//! events from what it changed. That statement holds the order's row lock
//! and the counter rows its trigger updates (`commandes_stats`) only while
//! it runs on the server: no client round trip, no `COMMIT` to wait for
//! in between. The first version held them from `select … for update`
//! through a `COMMIT` sent after the reply: four round trips per change,
//! and writers of different orders queued on the same counter rows for the
//! whole of it (1,824 transitions/s, see BENCHMARKS.md).
//!
//! A row changed in between writes nothing (the statement's own row lock
//! re-checks the comparison on the row as committed), and the change is
//! decided again on what is there now. After [`OPTIMISTIC_TRIES`] such
//! losses (a hot order), the change takes the row lock first, in a
//! transaction, as before: it then cannot lose again. Either way the
//! order's changes are applied one at a time, each decided on the previous
//! one's result, and its events are inserted in that order.

use rust_decimal::Decimal;
use tokio_postgres::types::Type;

use super::connect::Connections;
use super::errors::{map_error, map_write_error};
use super::events::{with_events, EventArrays};
use super::queries::{lock_row, row_to_order, Param, COLUMNS};
use super::statements::Db;
use crate::domain::event;
use crate::domain::{now, Actor, Order, OrderPatch, Precondition};
use crate::storage::rules::{self, UpdatePlan};
use crate::storage::{StoreError, Updated};

/// Tries decided on an unlocked read before the change takes the row lock.
const OPTIMISTIC_TRIES: usize = 3;

/// The condition that the row is still `current` (parameters `$first` to
/// `$first + 4`; the id is `$1`).
fn unchanged_since(first: usize) -> String {
    format!(
        "id = $1 and order_id = ${} and customer_id = ${} and status = ${}
         and total_amount = ${} and updated_at = ${}",
        first,
        first + 1,
        first + 2,
        first + 3,
        first + 4
    )
}

/// The values [`unchanged_since`] compares, kept alive while bound.
struct Snapshot<'a> {
    order: &'a Order,
    status: &'static str,
    amount: rust_decimal::Decimal,
}

impl<'a> Snapshot<'a> {
    fn new(order: &'a Order) -> Snapshot<'a> {
        Snapshot {
            order,
            status: order.status.as_str(),
            amount: order.total_amount.to_decimal(),
        }
    }

    fn push<'b>(&'b self, params: &mut Vec<Param<'b>>) {
        params.push((&self.order.order_id, Type::VARCHAR));
        params.push((&self.order.customer_id, Type::VARCHAR));
        params.push((&self.status, Type::VARCHAR));
        params.push((&self.amount, Type::NUMERIC));
        params.push((&self.order.updated_at, Type::TIMESTAMPTZ));
    }
}

/// The order, unlocked, if `owner` (when set) may see it.
async fn read(db: Db<'_>, id: i64, owner: Option<&str>) -> Result<Order, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "select {COLUMNS} from commandes
                 where id = $1 and ($2::varchar is null or customer_id = $2)"
            ),
            &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
        )
        .await
        .map_err(map_error)?;
    row.as_ref().map_or(Err(StoreError::NotFound), row_to_order)
}

/// The new values of an update, then the events (`$1` is the id).
const UPDATE_SET: &str = "update commandes
     set order_id = $2, customer_id = $3, status = $4, total_amount = $5, updated_at = $6";

pub(super) async fn update(
    connections: &Connections,
    id: i64,
    patch: &OrderPatch,
    if_match: Option<&Precondition>,
    actor: &Actor,
) -> Result<Updated, StoreError> {
    let owner = actor.owner.as_deref();
    for _ in 0..OPTIMISTIC_TRIES {
        let client = connections.client().await?;
        let db = client.db();
        let current = read(db, id, owner).await?;
        let write = match rules::plan_update(current, patch, if_match, actor, now())? {
            UpdatePlan::Write(write) => write,
            UpdatePlan::Unchanged(order) => return Ok(Updated::unchanged(order)),
        };
        let next = &write.next;
        let (amount, status) = (next.total_amount.to_decimal(), next.status.as_str());
        let events = EventArrays::new(&write.events);
        let was = Snapshot::new(&write.current);
        let mut params = new_values(&id, next, &amount, &status);
        was.push(&mut params);
        events.push(&mut params);
        let sql = with_events(
            &format!("{UPDATE_SET} where {} returning id", unchanged_since(7)),
            12,
        );
        if written(db, &sql, &params)
            .await
            .map_err(|e| map_write_error(e, &next.order_id))?
        {
            return Ok(write.done());
        }
    }
    update_locked(connections, id, patch, if_match, actor).await
}

/// Parameters `$1` to `$6` of [`UPDATE_SET`]: the order's id and its new
/// values (`amount` and `status` in their bound forms).
fn new_values<'a>(
    id: &'a i64,
    next: &'a Order,
    amount: &'a Decimal,
    status: &'a &'a str,
) -> Vec<Param<'a>> {
    vec![
        (id, Type::INT8),
        (&next.order_id, Type::VARCHAR),
        (&next.customer_id, Type::VARCHAR),
        (status, Type::VARCHAR),
        (amount, Type::NUMERIC),
        (&next.updated_at, Type::TIMESTAMPTZ),
    ]
}

/// The update under the row lock, for an order others keep changing.
async fn update_locked(
    connections: &Connections,
    id: i64,
    patch: &OrderPatch,
    if_match: Option<&Precondition>,
    actor: &Actor,
) -> Result<Updated, StoreError> {
    let mut client = connections.client().await?;
    let named = client.named();
    let tx = client.transaction().await.map_err(map_error)?;
    let db = Db::tx(&tx, named);
    // The owner is checked on the locked row, before anything is decided.
    let current = lock_row(db, id, actor.owner.as_deref(), None).await?;
    let write = match rules::plan_update(current, patch, if_match, actor, now())? {
        UpdatePlan::Write(write) => write,
        UpdatePlan::Unchanged(order) => return Ok(Updated::unchanged(order)),
    };
    let next = &write.next;
    let (amount, status) = (next.total_amount.to_decimal(), next.status.as_str());
    let events = EventArrays::new(&write.events);
    let mut params = new_values(&id, next, &amount, &status);
    events.push(&mut params);
    let sql = with_events(&format!("{UPDATE_SET} where id = $1 returning id"), 7);
    written(db, &sql, &params)
        .await
        .map_err(|e| map_write_error(e, &next.order_id))?;
    tx.commit().await.map_err(map_error)?;
    Ok(write.done())
}

pub(super) async fn delete(
    connections: &Connections,
    id: i64,
    if_match: Option<&Precondition>,
    actor: &Actor,
) -> Result<(), StoreError> {
    let owner = actor.owner.as_deref();
    for _ in 0..OPTIMISTIC_TRIES {
        let client = connections.client().await?;
        let db = client.db();
        let current = read(db, id, owner).await?;
        rules::check_precondition(if_match, &current)?;
        // The event carries the order as it was.
        let events = EventArrays::new(&[event::deleted(&current, actor, now())]);
        let was = Snapshot::new(&current);
        let mut params: Vec<Param<'_>> = vec![(&id, Type::INT8)];
        was.push(&mut params);
        events.push(&mut params);
        let sql = with_events(
            &format!(
                "delete from commandes where {} returning id",
                unchanged_since(2)
            ),
            7,
        );
        if written(db, &sql, &params).await.map_err(map_error)? {
            return Ok(());
        }
    }
    let mut client = connections.client().await?;
    let named = client.named();
    let tx = client.transaction().await.map_err(map_error)?;
    let db = Db::tx(&tx, named);
    let current = lock_row(db, id, owner, if_match).await?;
    let events = EventArrays::new(&[event::deleted(&current, actor, now())]);
    let mut params: Vec<Param<'_>> = vec![(&id, Type::INT8)];
    events.push(&mut params);
    let sql = with_events("delete from commandes where id = $1 returning id", 2);
    written(db, &sql, &params).await.map_err(map_error)?;
    tx.commit().await.map_err(map_error)
}

/// Runs a [`with_events`] statement: whether it changed the order.
async fn written(
    db: Db<'_>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<bool, tokio_postgres::Error> {
    let rows = db.query(sql, params).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) > 0)
}
