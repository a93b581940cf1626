//! Adopting the original service's table.
//!
//! The FastAPI service this one replaces created `commandes` itself
//! (`id serial`, `varchar(50)` identifiers, `timestamp` without a zone,
//! nullable columns) and kept no migration history. When that table is
//! there and `commandes_schema_migrations` is not, the first migration run
//! brings it to the shape of `sql/postgres/0001_create_commandes.sql`
//! before applying the files, in the same transaction: either every row is
//! kept and the table is ours, or nothing changes and the error lists the
//! rows to fix.
//!
//! What it does, each step only where the table needs it: `id` to `bigint`
//! (its sequence kept, owned by the column, widened to `bigint` and moved
//! past the highest id), the times to `timestamptz` read as UTC, missing
//! times and statuses filled (`updated_at` ← `created_at` ← now,
//! `created_at` ← `updated_at` ← now, `status` ← `pending`), then the
//! primary key, `not null`, defaults and checks of 0001. Its indexes come
//! from 0001 itself (`create index if not exists`).
//!
//! What it refuses, listing the offending ids: a status outside the four
//! this service knows (it cannot guess what `shipped` means), a missing
//! `order_id`, `customer_id` or amount, a negative amount, a missing or
//! repeated `id`, a repeated `order_id`, and a table whose columns are not
//! the original ones.

use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

/// Why the table cannot be adopted; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot adopt the existing commandes table (nothing was changed): {}",
    .0.join("; ")
)]
pub(super) struct Refused(Vec<String>);

/// Errors of an adoption: the database's, or a refusal.
#[derive(Debug, thiserror::Error)]
pub(super) enum AdoptError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Refused(#[from] Refused),
}

/// The original columns, and the types each may have: the original's and
/// ours (a step is skipped where the column is already ours).
const EXPECTED: &[(&str, &[&str])] = &[
    ("id", &["integer", "bigint"]),
    ("order_id", &["character varying(50)"]),
    ("customer_id", &["character varying(50)"]),
    (
        "created_at",
        &["timestamp without time zone", "timestamp with time zone"],
    ),
    (
        "status",
        &["character varying(50)", "character varying(20)"],
    ),
    ("total_amount", &["numeric(10,2)"]),
    (
        "updated_at",
        &["timestamp without time zone", "timestamp with time zone"],
    ),
];

const STATUSES: &str = "'pending', 'processing', 'completed', 'cancelled'";

/// How many offending ids a refusal lists.
const LISTED: i64 = 20;

/// Adopts `commandes` if it is the original service's table, unmanaged;
/// returns what was done (empty: there was nothing to adopt). Runs in the
/// migration's transaction, after its lock.
pub(super) async fn adopt_original(tx: &Transaction<'_>) -> Result<Vec<String>, AdoptError> {
    let row = tx
        .query_typed(
            "select to_regclass('commandes') is not null,
                    to_regclass('commandes_schema_migrations') is not null",
            &[],
        )
        .await?;
    let (exists, managed): (bool, bool) = (row[0].get(0), row[0].get(1));
    if !exists || managed {
        return Ok(Vec::new());
    }
    let columns = tx
        .query_typed(
            "select a.attname::text, format_type(a.atttypid, a.atttypmod)
             from pg_attribute a
             where a.attrelid = 'commandes'::regclass and a.attnum > 0 and not a.attisdropped
             order by a.attnum",
            &[],
        )
        .await?;
    let columns: Vec<(String, String)> = columns.iter().map(|r| (r.get(0), r.get(1))).collect();
    check_columns(&columns)?;
    let type_of = |name: &str| {
        columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_default()
    };
    check_rows(tx).await?;

    let rows: i64 = tx
        .query_typed("select count(*)::int8 from commandes", &[])
        .await?[0]
        .get(0);
    let mut changes = Vec::new();

    // The id: bigint, its sequence kept (or one made), past every id.
    if type_of("id") == "integer" {
        tx.batch_execute("alter table commandes alter column id type bigint")
            .await?;
        changes.push("id integer → bigint".to_string());
    }
    let sequence: Option<String> = tx
        .query_typed(
            "select pg_get_serial_sequence('commandes', 'id')::text",
            &[],
        )
        .await?[0]
        .get(0);
    match sequence {
        Some(seq) => {
            let narrow: bool = tx
                .query_typed(
                    "select data_type <> 'bigint'::regtype from pg_sequences
                     where (quote_ident(schemaname) || '.' || quote_ident(sequencename))::regclass
                           = $1::regclass",
                    &[(&seq, Type::TEXT)],
                )
                .await?
                .first()
                .is_some_and(|r| r.get(0));
            if narrow {
                tx.batch_execute(&format!("alter sequence {seq} as bigint"))
                    .await?;
                changes.push(format!("sequence {seq} widened to bigint (kept)"));
            }
            tx.execute_typed(
                "select setval($1::regclass, top) from (select max(id) as top from commandes) m
                 where top > coalesce(pg_sequence_last_value($1::regclass), 0)",
                &[(&seq, Type::TEXT)],
            )
            .await?;
        }
        None => {
            tx.batch_execute(
                "alter table commandes alter column id set not null;
                 alter table commandes alter column id add generated by default as identity;
                 select setval(pg_get_serial_sequence('commandes', 'id'), max(id))
                 from commandes having max(id) is not null",
            )
            .await?;
            changes.push("id given an identity sequence".to_string());
        }
    }

    // Times: without a zone, they were written in UTC.
    for column in ["created_at", "updated_at"] {
        if type_of(column) == "timestamp without time zone" {
            tx.batch_execute(&format!(
                "alter table commandes alter column {column} type timestamptz
                 using {column} at time zone 'UTC'"
            ))
            .await?;
            changes.push(format!("{column} timestamp → timestamptz (read as UTC)"));
        }
    }
    if type_of("status") != "character varying(20)" {
        tx.batch_execute("alter table commandes alter column status type varchar(20)")
            .await?;
        changes.push("status varchar(50) → varchar(20)".to_string());
    }

    // Missing values, from the row's other time, else now.
    for (sql, what) in [
        (
            "update commandes set updated_at = coalesce(created_at, now()) where updated_at is null",
            "updated_at filled from created_at (or now)",
        ),
        (
            "update commandes set created_at = updated_at where created_at is null",
            "created_at filled from updated_at",
        ),
        (
            "update commandes set status = 'pending' where status is null",
            "status filled with pending",
        ),
    ] {
        let n = tx.execute_typed(sql, &[]).await?;
        if n > 0 {
            changes.push(format!("{what} in {n} row{}", plural(n)));
        }
    }

    // The constraints and defaults of 0001.
    let has_primary_key: bool = tx
        .query_typed(
            "select exists (select 1 from pg_constraint
                            where conrelid = 'commandes'::regclass and contype = 'p')",
            &[],
        )
        .await?[0]
        .get(0);
    if !has_primary_key {
        tx.batch_execute("alter table commandes add primary key (id)")
            .await?;
        changes.push("primary key on id added".to_string());
    }
    let order_id_unique: bool = tx
        .query_typed(
            "select exists (
                select 1 from pg_index i
                where i.indrelid = 'commandes'::regclass and i.indisunique
                  and i.indpred is null and i.indnkeyatts = 1
                  and i.indkey[0] = (select attnum from pg_attribute
                                     where attrelid = 'commandes'::regclass and attname = 'order_id'))",
            &[],
        )
        .await?[0]
        .get(0);
    if !order_id_unique {
        tx.batch_execute("alter table commandes add unique (order_id)")
            .await?;
        changes.push("unique order_id added".to_string());
    }
    tx.batch_execute(
        "alter table commandes
            alter column order_id set not null,
            alter column customer_id set not null,
            alter column status set not null,
            alter column status set default 'pending',
            alter column total_amount set not null,
            alter column created_at set not null,
            alter column created_at set default now(),
            alter column updated_at set not null,
            alter column updated_at set default now()",
    )
    .await?;
    for (name, check) in [
        (
            "commandes_status_check",
            format!("check (status in ({STATUSES}))"),
        ),
        (
            "commandes_total_amount_check",
            "check (total_amount >= 0)".to_string(),
        ),
    ] {
        let present: bool = tx
            .query_typed(
                "select exists (select 1 from pg_constraint
                                where conrelid = 'commandes'::regclass and conname = $1)",
                &[(&name, Type::TEXT)],
            )
            .await?[0]
            .get(0);
        if !present {
            tx.batch_execute(&format!(
                "alter table commandes add constraint {name} {check}"
            ))
            .await?;
        }
    }
    changes.push("not null, defaults and checks of migration 1 added".to_string());

    Ok(vec![format!(
        "adopted the original commandes table: {rows} row{} kept; {}",
        plural(rows as u64),
        changes.join(", ")
    )])
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The table must have the original's columns, no more, no fewer.
fn check_columns(columns: &[(String, String)]) -> Result<(), Refused> {
    let mut problems = Vec::new();
    for (name, types) in EXPECTED {
        match columns.iter().find(|(n, _)| n == name) {
            None => problems.push(format!("it has no column {name}")),
            Some((_, t)) if !types.contains(&t.as_str()) => problems.push(format!(
                "its column {name} is {t}, expected {}",
                types.join(" or ")
            )),
            Some(_) => {}
        }
    }
    for (name, t) in columns {
        if !EXPECTED.iter().any(|(n, _)| n == name) {
            problems.push(format!(
                "it has a column {name} ({t}) the original table does not have"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push(
            "it is not the original service's table; move it aside or migrate it by hand".into(),
        );
        Err(Refused(problems))
    }
}

/// Every row must be representable: the checks that would fail later,
/// run first, each listing the rows to fix.
async fn check_rows(tx: &Transaction<'_>) -> Result<(), AdoptError> {
    // (what is counted, what is wrong, the query: its count and its first
    // `$1` offenders).
    let by_id = |condition: &str, shown: &str| {
        format!(
            "with d as (select id, status from commandes where {condition})
             select (select count(*) from d)::int8,
                    coalesce((select string_agg({shown}, ', ')
                              from (select * from d order by id limit $1) x), '')"
        )
    };
    let checks = [
        (
            "row",
            "with no id, order_ids",
            "with d as (select order_id from commandes where id is null)
             select (select count(*) from d)::int8,
                    coalesce((select string_agg(quote_literal(order_id), ', ')
                              from (select * from d order by order_id limit $1) x), '')"
                .to_string(),
        ),
        (
            "id",
            "repeated:",
            "with d as (select id from commandes where id is not null group by id having count(*) > 1)
             select (select count(*) from d)::int8,
                    coalesce((select string_agg(id::text, ', ')
                              from (select * from d order by id limit $1) x), '')"
                .to_string(),
        ),
        (
            "order_id",
            "repeated:",
            "with d as (select order_id from commandes where order_id is not null
                        group by order_id having count(*) > 1)
             select (select count(*) from d)::int8,
                    coalesce((select string_agg(quote_literal(order_id), ', ')
                              from (select * from d order by order_id limit $1) x), '')"
                .to_string(),
        ),
        (
            "row",
            "with no order_id, ids",
            by_id("order_id is null", "id::text"),
        ),
        (
            "row",
            "with no customer_id, ids",
            by_id("customer_id is null", "id::text"),
        ),
        (
            "row",
            "with no total_amount or a negative one, ids",
            by_id("total_amount is null or total_amount < 0", "id::text"),
        ),
        (
            "row",
            "with a status other than pending, processing, completed or cancelled (this service \
             cannot tell what it means), ids",
            by_id(
                &format!("status is not null and status not in ({STATUSES})"),
                "id::text || ' ' || quote_literal(status)",
            ),
        ),
    ];
    let mut problems = Vec::new();
    for (noun, what, sql) in &checks {
        let row = tx.query_typed(sql, &[(&LISTED, Type::INT8)]).await?;
        let (n, listed): (i64, String) = (row[0].get(0), row[0].get(1));
        if n > 0 {
            let more = if n > LISTED { ", …" } else { "" };
            problems.push(format!(
                "{n} {noun}{} {what} {listed}{more}",
                plural(n as u64)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.push("fix these rows and run the migration again".into());
        Err(Refused(problems).into())
    }
}
