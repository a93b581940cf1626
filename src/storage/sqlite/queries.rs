//! The `commandes` table: its columns, the mapping of a row to an
//! [`Order`], the insert, the point reads, the list query and the figures.

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension};

use super::errors::map_error;
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{format_time, Amount, ListFilter, NewOrder, Order, SortKey, Stats, Status};
use crate::storage::{rules, Conflict, StoreError};

pub(super) const COLUMNS: &str =
    "id, order_id, customer_id, status, total_cents, created_at, updated_at";

pub(super) fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

pub(super) fn row_to_order(row: &rusqlite::Row<'_>) -> rusqlite::Result<Order> {
    let status: String = row.get(3)?;
    let cents: i64 = row.get(4)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("stored {what} is invalid").into(),
        )
    };
    Ok(Order {
        id: row.get(0)?,
        order_id: row.get(1)?,
        customer_id: row.get(2)?,
        status: status.parse::<Status>().map_err(|_| bad("status"))?,
        total_amount: Amount::from_cents(cents).ok_or_else(|| bad("amount"))?,
        created_at: parse_time(&row.get::<_, String>(5)?)?,
        updated_at: parse_time(&row.get::<_, String>(6)?)?,
    })
}

/// The order `id`, if it exists and `owner` (when set) is its customer: an
/// order of another customer is not found, in the same statement.
pub(super) fn select_by_id(
    conn: &Connection,
    id: i64,
    owner: Option<&str>,
) -> Result<Order, StoreError> {
    conn.prepare_cached(&format!(
        "select {COLUMNS} from commandes where id = ?1 and (?2 is null or customer_id = ?2)"
    ))
    .and_then(|mut s| s.query_row(params![id, owner], row_to_order).optional())
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)
}

/// The order with this `order_id`, on the same terms as [`select_by_id`].
pub(super) fn select_by_order_id(
    conn: &Connection,
    order_id: &str,
    owner: Option<&str>,
) -> Result<Order, StoreError> {
    conn.prepare_cached(&format!(
        "select {COLUMNS} from commandes where order_id = ?1 and (?2 is null or customer_id = ?2)"
    ))
    .and_then(|mut s| {
        s.query_row(params![order_id, owner], row_to_order)
            .optional()
    })
    .map_err(map_error)?
    .ok_or(StoreError::NotFound)
}

pub(super) fn insert(
    conn: &Connection,
    order: &NewOrder,
    created_at: &DateTime<Utc>,
    updated_at: &DateTime<Utc>,
) -> Result<Order, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "insert into commandes (order_id, customer_id, status, total_cents, created_at, updated_at)
             values (?1, ?2, ?3, ?4, ?5, ?6)
             on conflict (order_id) do nothing
             returning {COLUMNS}"
        ))
        .map_err(map_error)?;
    stmt.query_row(
        params![
            order.order_id,
            order.customer_id,
            order.status.as_str(),
            order.total_amount.cents(),
            format_time(created_at),
            format_time(updated_at),
        ],
        row_to_order,
    )
    .optional()
    .map_err(map_error)?
    .ok_or_else(|| StoreError::Conflict(Conflict::DuplicateOrderId(order.order_id.clone())))
}

/// Builds the `where`, `order by` and `limit` of a list query.
/// `owner`, when set, restricts the list to that customer's orders (on top
/// of any `customer_id` filter, so another customer's list is empty).
pub(super) fn list_sql(filter: &ListFilter, owner: Option<&str>) -> (String, Vec<Value>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    // Numbers each `?` of `clause` in the order its values are bound.
    let mut push = |clause: &str, values: Vec<Value>| {
        let mut numbered = String::new();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                numbered.push_str(&format!("?{}", args.len() + i));
            }
            numbered.push_str(part);
        }
        args.extend(values);
        clauses.push(numbered);
    };
    if let Some(s) = filter.status {
        push("status = ?", vec![Value::Text(s.as_str().into())]);
    }
    if let Some(c) = &filter.customer_id {
        push("customer_id = ?", vec![Value::Text(c.clone())]);
    }
    if let Some(owner) = owner {
        push("customer_id = ?", vec![Value::Text(owner.to_string())]);
    }
    if let Some(a) = filter.min_amount {
        push("total_cents >= ?", vec![Value::Integer(a.cents())]);
    }
    if let Some(a) = filter.max_amount {
        push("total_cents <= ?", vec![Value::Integer(a.cents())]);
    }
    if let Some(t) = &filter.created_from {
        push("created_at >= ?", vec![Value::Text(format_time(t))]);
    }
    if let Some(t) = &filter.created_to {
        push("created_at <= ?", vec![Value::Text(format_time(t))]);
    }
    let column = match filter.sort.key {
        SortKey::CreatedAt => "created_at",
        SortKey::UpdatedAt => "updated_at",
        SortKey::TotalAmount => "total_cents",
        SortKey::Id => "id",
    };
    let (dir, after) = rules::direction(filter.sort);
    if let Some(c) = &filter.cursor {
        // A row value comparison, which the (column, id) indexes serve.
        match filter.sort.key {
            SortKey::Id => push(&format!("id {after} ?"), vec![Value::Integer(c.id)]),
            SortKey::TotalAmount => push(
                &format!("({column}, id) {after} (?, ?)"),
                vec![Value::Integer(c.value), Value::Integer(c.id)],
            ),
            SortKey::CreatedAt | SortKey::UpdatedAt => {
                let time = DateTime::from_timestamp_micros(c.value)
                    .map(|t| format_time(&t))
                    .unwrap_or_default();
                push(
                    &format!("({column}, id) {after} (?, ?)"),
                    vec![Value::Text(time), Value::Integer(c.id)],
                );
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
    args.push(Value::Integer(filter.limit.into()));
    args.push(Value::Integer(filter.skip as i64));
    sql.push_str(&format!(
        " order by {order} limit ?{} offset ?{}",
        args.len() - 1,
        args.len()
    ));
    (sql, args)
}

/// Runs a list query built by [`list_sql`].
pub(super) fn list(
    conn: &Connection,
    sql: &str,
    args: Vec<Value>,
) -> Result<Vec<Order>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), row_to_order)
        .map_err(map_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_error)
}

/// The figures per status: everyone's, or one customer's (`owner`).
pub(super) fn stats(conn: &Connection, owner: Option<&str>) -> Result<Stats, StoreError> {
    let (sql, args) = match owner {
        // Kept by triggers (migration 0003): four rows, no scan.
        None => (
            "select status, order_count, total_cents from commandes_stats",
            vec![],
        ),
        // The counters cover everyone: one customer's figures are
        // summed from its rows (found by the customer index).
        Some(owner) => (
            "select status, count(*), coalesce(sum(total_cents), 0) from commandes
             where customer_id = ?1 group by status",
            vec![Value::Text(owner.to_string())],
        ),
    };
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    let mut stats = Stats::default();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(map_error)?;
    for row in rows {
        let (status, count, cents) = row.map_err(map_error)?;
        let status = status
            .parse::<Status>()
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        stats.add(status, count, cents.into());
    }
    Ok(stats)
}

/// The orders created in `[from, to)` per UTC day and status (see
/// [`crate::domain::timeseries`]). For everyone: the whole days from the
/// per-day figures of migration 0009, the partial days at the edges from
/// the covering index of 0008 ([`SeriesQuery::day_split`]; `indexed by`:
/// without statistics SQLite would take the status index and look up every
/// row for its amount), in one statement. For one customer (a filter or the
/// caller's scope): one `GROUP BY` over that customer's rows, as the kept
/// figures cover everyone, so SQLite picks the customer index. Only the
/// conditions asked for are in the statement.
pub(super) fn daily_figures(
    conn: &Connection,
    query: &SeriesQuery,
    owner: Option<&str>,
) -> Result<Vec<DayFigures>, StoreError> {
    const SCAN: &str = "select substr(created_at, 1, 10), status, count(*), sum(total_cents)
                        from commandes";
    let customers: Vec<&str> = [query.customer_id.as_deref(), owner]
        .into_iter()
        .flatten()
        .collect();
    let status = query.status.map(Status::as_str);
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |value: String| {
        args.push(Value::Text(value));
        format!("?{}", args.len())
    };
    let sql = if customers.is_empty() {
        let split = query.day_split();
        let only = status.map_or(String::new(), |s| {
            format!(" and status = {}", arg(s.into()))
        });
        let mut scan = |(from, to): (chrono::DateTime<chrono::Utc>, _)| {
            format!(
                "{SCAN} indexed by commandes_created_figures
                 where created_at >= {} and created_at < {}{only} group by 1, 2",
                arg(format_time(&from)),
                arg(format_time(&to))
            )
        };
        let (head, tail) = (scan(split.head), scan(split.tail));
        format!(
            "select day, status, sum(order_count), sum(total_cents) from commandes_daily
             where day >= {} and day < {}{only} group by 1, 2
             union all {head} union all {tail}",
            arg(split.days.0.to_string()),
            arg(split.days.1.to_string()),
        )
    } else {
        let mut sql = format!(
            "{SCAN} where created_at >= {} and created_at < {}",
            arg(format_time(&query.from)),
            arg(format_time(&query.to))
        );
        for value in status
            .map(|s| ("status", s))
            .into_iter()
            .chain(customers.iter().map(|c| ("customer_id", *c)))
        {
            sql.push_str(&format!(" and {} = {}", value.0, arg(value.1.into())));
        }
        sql + " group by 1, 2"
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(map_error)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(map_error)?;
    let bad = |what: &str| {
        StoreError::backend(std::io::Error::other(format!("stored {what} is invalid")))
    };
    let mut days = Vec::new();
    for row in rows {
        let (day, status, count, cents) = row.map_err(map_error)?;
        days.push(DayFigures {
            day: day.parse().map_err(|_| bad("created_at"))?,
            status: status.parse().map_err(|_| bad("status"))?,
            count,
            cents: cents.into(),
        });
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::migrations;
    use crate::storage::sqlite::migrate::apply_migrations;

    #[test]
    fn list_sql_numbers_its_placeholders() {
        let filter = ListFilter {
            status: Some(Status::Pending),
            min_amount: Amount::from_cents(100),
            ..ListFilter::default()
        };
        let (sql, args) = list_sql(&filter, None);
        assert!(sql.contains("status = ?1 and total_cents >= ?2"), "{sql}");
        assert!(
            sql.ends_with("order by created_at desc, id desc limit ?3 offset ?4"),
            "{sql}"
        );
        assert_eq!(args.len(), 4);
    }

    /// Every sort, in both directions, on a first page and on a `cursor`
    /// page, reads an index in order: SQLite never sorts the table.
    #[test]
    fn every_sort_is_read_from_an_index() {
        use crate::domain::filter::{Cursor, Sort};
        let mut conn = Connection::open_in_memory().unwrap();
        apply_migrations(&mut conn, migrations::SQLITE).unwrap();
        for key in [
            SortKey::CreatedAt,
            SortKey::UpdatedAt,
            SortKey::TotalAmount,
            SortKey::Id,
        ] {
            for descending in [false, true] {
                for cursor in [None, Some(Cursor { value: 5, id: 3 })] {
                    let filter = ListFilter {
                        sort: Sort { key, descending },
                        cursor,
                        skip: 10,
                        ..ListFilter::default()
                    };
                    let (sql, args) = list_sql(&filter, None);
                    let mut stmt = conn.prepare(&format!("explain query plan {sql}")).unwrap();
                    let plan: Vec<String> = stmt
                        .query_map(rusqlite::params_from_iter(args), |r| r.get(3))
                        .unwrap()
                        .collect::<rusqlite::Result<_>>()
                        .unwrap();
                    let plan = plan.join("; ");
                    assert!(
                        !plan.contains("TEMP B-TREE"),
                        "{key:?} desc={descending} cursor={}: {plan}",
                        cursor.is_some()
                    );
                }
            }
        }
    }
}
