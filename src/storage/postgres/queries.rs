//! The order rows of PostgreSQL: the columns and their mapping to
//! [`Order`], the insert (with its `order.created` event), the locked read
//! a change starts with, and the `where` and `order by` of lists and
//! exports.
//!
//! Every statement binds its values with their types, named or not as the
//! pool decided ([`Db`]); the builders here number their parameters as they
//! bind them. `numeric(10,2)` amounts map to
//! `rust_decimal` and `timestamptz` times to `chrono` here, once.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Row;

use super::errors::map_error;
use super::statements::Db;
use crate::domain::event;
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{Actor, Amount, ListFilter, NewOrder, Order, Precondition, SortKey, Status};
use crate::storage::{rules, Conflict, ExportFilter, StoreError};

/// The columns of `commandes`, in the order [`row_to_order`] reads them.
pub(super) const COLUMNS: &str =
    "id, order_id, customer_id, status, total_amount, created_at, updated_at";

/// A parameter and its type, as `query_typed` takes them.
pub(super) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Reads and locks the order for the rest of the transaction, and checks
/// `if_match` against it. The row lock makes read-decide-write one atomic
/// step: a concurrent change waits here, then decides against what this one
/// wrote. An order of another customer than `owner` (when set) is not found.
pub(super) async fn lock_row(
    tx: Db<'_>,
    id: i64,
    owner: Option<&str>,
    if_match: Option<&Precondition>,
) -> Result<Order, StoreError> {
    let row = tx
        .query_opt(
            &format!(
                "select {COLUMNS} from commandes
                 where id = $1 and ($2::varchar is null or customer_id = $2) for update"
            ),
            &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
        )
        .await
        .map_err(map_error)?;
    let current = row
        .as_ref()
        .map_or(Err(StoreError::NotFound), row_to_order)?;
    rules::check_precondition(if_match, &current)?;
    Ok(current)
}

pub(super) fn row_to_order(row: &Row) -> Result<Order, StoreError> {
    let status: String = row.try_get(3).map_err(StoreError::backend)?;
    let amount: Decimal = row.try_get(4).map_err(StoreError::backend)?;
    Ok(Order {
        id: row.try_get(0).map_err(StoreError::backend)?,
        order_id: row.try_get(1).map_err(StoreError::backend)?,
        customer_id: row.try_get(2).map_err(StoreError::backend)?,
        status: status.parse().map_err(StoreError::backend)?,
        total_amount: Amount::from_decimal(amount).map_err(StoreError::backend)?,
        created_at: row.try_get(5).map_err(StoreError::backend)?,
        updated_at: row.try_get(6).map_err(StoreError::backend)?,
    })
}

/// Inserts an order; with `actor`, its `order.created` event too, in the
/// same statement (no extra round trip). The event is built before the
/// database has given the order its id: the statement fills it in.
pub(super) async fn insert(
    client: Db<'_>,
    order: &NewOrder,
    created_at: &DateTime<Utc>,
    updated_at: &DateTime<Utc>,
    actor: Option<&Actor>,
) -> Result<Order, StoreError> {
    let amount = order.total_amount.to_decimal();
    let status = order.status.as_str();
    let mut params: Vec<Param<'_>> = vec![
        (&order.order_id, Type::VARCHAR),
        (&order.customer_id, Type::VARCHAR),
        (&status, Type::VARCHAR),
        (&amount, Type::NUMERIC),
        (created_at, Type::TIMESTAMPTZ),
        (updated_at, Type::TIMESTAMPTZ),
    ];
    let insert = format!(
        "insert into commandes (order_id, customer_id, status, total_amount, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (order_id) do nothing
         returning {COLUMNS}"
    );
    let created = actor.map(|actor| {
        let placeholder = Order {
            id: 0,
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            status: order.status,
            total_amount: order.total_amount,
            created_at: *created_at,
            updated_at: *updated_at,
        };
        let e = event::created(&placeholder, actor);
        (
            e.id,
            e.kind.as_str(),
            e.time,
            e.data.to_string(),
            e.traceparent,
        )
    });
    let sql = match &created {
        None => insert,
        Some((id, kind, time, data, traceparent)) => {
            params.push((id, Type::TEXT));
            params.push((kind, Type::TEXT));
            params.push((time, Type::TIMESTAMPTZ));
            params.push((data, Type::TEXT));
            params.push((traceparent, Type::TEXT));
            // No row comes out of `o` for a taken order_id: then no event.
            format!(
                "with o as ({insert}),
                 e as (
                    insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data, traceparent)
                    select $7::uuid, $8, $9, o.id, o.order_id, o.customer_id,
                           jsonb_set(jsonb_set($10::jsonb, '{{id}}', to_jsonb(o.id)), '{{order,id}}', to_jsonb(o.id)),
                           $11
                    from o
                 )
                 select {COLUMNS} from o"
            )
        }
    };
    let rows = client.query(&sql, &params).await.map_err(map_error)?;
    match rows.first() {
        Some(row) => row_to_order(row),
        None => Err(StoreError::Conflict(Conflict::DuplicateOrderId(
            order.order_id.clone(),
        ))),
    }
}

/// The filter values a list or an export binds, kept alive while the query
/// runs; both build their `where` from here.
pub(super) struct FilterArgs {
    status: Option<&'static str>,
    customer_id: Option<String>,
    min: Option<Decimal>,
    max: Option<Decimal>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

impl FilterArgs {
    pub(super) fn new(f: &ExportFilter) -> FilterArgs {
        FilterArgs {
            status: f.status.map(Status::as_str),
            customer_id: f.customer_id.clone(),
            min: f.min_amount.map(Amount::to_decimal),
            max: f.max_amount.map(Amount::to_decimal),
            from: f.created_from,
            to: f.created_to,
        }
    }

    /// The `where` conditions, numbering their parameters after those
    /// already in `params`.
    pub(super) fn clauses<'a>(&'a self, params: &mut Vec<Param<'a>>) -> Vec<String> {
        let mut clauses = Vec::new();
        let mut push = |column: &str, op: &str, param: Param<'a>| {
            params.push(param);
            clauses.push(format!("{column} {op} ${}", params.len()));
        };
        if let Some(s) = &self.status {
            push("status", "=", (s, Type::VARCHAR));
        }
        if let Some(c) = &self.customer_id {
            push("customer_id", "=", (c, Type::VARCHAR));
        }
        if let Some(a) = &self.min {
            push("total_amount", ">=", (a, Type::NUMERIC));
        }
        if let Some(a) = &self.max {
            push("total_amount", "<=", (a, Type::NUMERIC));
        }
        if let Some(t) = &self.from {
            push("created_at", ">=", (t, Type::TIMESTAMPTZ));
        }
        if let Some(t) = &self.to {
            push("created_at", "<=", (t, Type::TIMESTAMPTZ));
        }
        clauses
    }
}

/// The values a list query binds, kept alive while the query runs.
pub(super) struct ListArgs {
    filter: FilterArgs,
    /// The only customer the caller sees, on top of any `customer_id` filter.
    owner: Option<String>,
    cursor_time: Option<DateTime<Utc>>,
    cursor_amount: Option<Decimal>,
    cursor_id: Option<i64>,
    limit: i64,
    skip: i64,
}

impl ListArgs {
    pub(super) fn new(f: &ListFilter, owner: Option<&str>) -> ListArgs {
        ListArgs {
            filter: FilterArgs::new(&ExportFilter::from(f)),
            owner: owner.map(String::from),
            cursor_time: f
                .cursor
                .filter(|_| matches!(f.sort.key, SortKey::CreatedAt | SortKey::UpdatedAt))
                .and_then(|c| DateTime::from_timestamp_micros(c.value)),
            cursor_amount: f
                .cursor
                .filter(|_| f.sort.key == SortKey::TotalAmount)
                .map(|c| Decimal::new(c.value, 2)),
            cursor_id: f.cursor.map(|c| c.id),
            limit: f.limit.into(),
            skip: f.skip as i64,
        }
    }

    /// The SQL and its parameters, numbered in the order they are bound.
    pub(super) fn sql<'a>(&'a self, filter: &ListFilter) -> (String, Vec<Param<'a>>) {
        let mut params: Vec<Param<'a>> = Vec::new();
        let mut clauses = self.filter.clauses(&mut params);
        if let Some(owner) = &self.owner {
            params.push((owner, Type::VARCHAR));
            clauses.push(format!("customer_id = ${}", params.len()));
        }
        let column = match filter.sort.key {
            SortKey::CreatedAt => "created_at",
            SortKey::UpdatedAt => "updated_at",
            SortKey::TotalAmount => "total_amount",
            SortKey::Id => "id",
        };
        let (dir, after) = rules::direction(filter.sort);
        if let Some(id) = &self.cursor_id {
            // A row value comparison, which the (column, id) indexes serve.
            let key: Option<Param<'a>> = match (&self.cursor_time, &self.cursor_amount) {
                (Some(t), _) => Some((t, Type::TIMESTAMPTZ)),
                (_, Some(a)) => Some((a, Type::NUMERIC)),
                _ => None,
            };
            match key {
                Some(key) => {
                    params.push(key);
                    params.push((id, Type::INT8));
                    clauses.push(format!(
                        "({column}, id) {after} (${}, ${})",
                        params.len() - 1,
                        params.len()
                    ));
                }
                None => {
                    params.push((id, Type::INT8));
                    clauses.push(format!("id {after} ${}", params.len()));
                }
            }
        }
        let order = if column == "id" {
            format!("id {dir}")
        } else {
            format!("{column} {dir}, id {dir}")
        };
        let mut sql = format!("select {COLUMNS} from commandes");
        if !clauses.is_empty() {
            sql.push_str(" where ");
            sql.push_str(&clauses.join(" and "));
        }
        params.push((&self.limit, Type::INT8));
        params.push((&self.skip, Type::INT8));
        sql.push_str(&format!(
            " order by {order} limit ${} offset ${}",
            params.len() - 1,
            params.len()
        ));
        (sql, params)
    }
}

/// The orders created in `[from, to)` per UTC day and status (see
/// [`crate::domain::timeseries`]). For everyone: the whole days from the
/// per-day figures of migration 0009, the partial days at the edges from
/// the covering index of 0008 ([`SeriesQuery::day_split`]), in one
/// statement. For one customer (a filter or the caller's scope): one
/// `GROUP BY` over that customer's rows (the customer index), as the kept
/// figures cover everyone. Only the conditions asked for are in the
/// statement.
pub(super) async fn daily_figures(
    client: Db<'_>,
    query: &SeriesQuery,
    owner: Option<&str>,
) -> Result<Vec<DayFigures>, StoreError> {
    const SCAN: &str = "select (created_at at time zone 'UTC')::date, status::text,
                               count(*)::int8, sum(total_amount)::numeric
                        from commandes where created_at >= $1 and created_at < $2";
    let status = query.status.map(Status::as_str);
    let customer = query.customer_id.as_deref();
    let split = query.day_split();
    let mut params: Vec<Param<'_>> = Vec::new();
    let sql = if customer.is_some() || owner.is_some() {
        params.push((&query.from, Type::TIMESTAMPTZ));
        params.push((&query.to, Type::TIMESTAMPTZ));
        let mut sql = SCAN.to_string();
        for value in [&customer, &owner] {
            if value.is_some() {
                params.push((value, Type::VARCHAR));
                sql.push_str(&format!(" and customer_id = ${}", params.len()));
            }
        }
        if status.is_some() {
            params.push((&status, Type::VARCHAR));
            sql.push_str(&format!(" and status = ${}", params.len()));
        }
        sql + " group by 1, 2"
    } else {
        params.push((&split.head.0, Type::TIMESTAMPTZ));
        params.push((&split.head.1, Type::TIMESTAMPTZ));
        params.push((&split.tail.0, Type::TIMESTAMPTZ));
        params.push((&split.tail.1, Type::TIMESTAMPTZ));
        params.push((&split.days.0, Type::DATE));
        params.push((&split.days.1, Type::DATE));
        let only = if status.is_some() {
            params.push((&status, Type::VARCHAR));
            " and status = $7"
        } else {
            ""
        };
        format!(
            "select day, status::text, sum(order_count)::int8, sum(total_amount)::numeric
             from commandes_daily where day >= $5 and day < $6{only} group by 1, 2
             union all {SCAN}{only} group by 1, 2
             union all {tail}{only} group by 1, 2",
            tail = SCAN.replace("$1", "$3").replace("$2", "$4"),
        )
    };
    let rows = client.query(&sql, &params).await.map_err(map_error)?;
    let mut days = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.try_get(1).map_err(StoreError::backend)?;
        let mut sum: Decimal = row.try_get(3).map_err(StoreError::backend)?;
        sum.rescale(2);
        days.push(DayFigures {
            day: row.try_get(0).map_err(StoreError::backend)?,
            status: status.parse().map_err(StoreError::backend)?,
            count: row.try_get(2).map_err(StoreError::backend)?,
            cents: sum.mantissa(),
        });
    }
    Ok(days)
}
