//! Bulk work on PostgreSQL: import with `COPY`, export in keyset pages.
//!
//! An import is one transaction: a temporary staging table (`on commit
//! drop`), `COPY … FROM STDIN (format binary)` into it as rows arrive, then
//! a few set-based statements into `commandes` as the conflict mode says.
//! Rows with an `id` go first; the identity sequence is then moved past the
//! highest id (never back), and the rows without one take the next values.
//!
//! Through a transaction-mode pooler: `COPY` has no parameters, so the
//! driver has to prepare it as a named statement. It is prepared, used and
//! closed inside the import's transaction, the only time the pooler keeps
//! the server connection ours, so no statement outlives it. Everything else
//! goes through `query_typed` / `execute_typed` / simple queries as in the
//! rest of the backend. An export is one `query_typed_raw` (an unnamed
//! statement, one snapshot) whose rows are streamed as they arrive: the
//! driver reads the socket only as fast as rows are taken, so memory stays
//! flat without a cursor.

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Transaction;

use super::errors::{is_unique_violation, map_error};
use super::queries::{row_to_order, FilterArgs, COLUMNS};
use crate::domain::Order;
use crate::storage::{
    ExportFilter, ImportBatch, ImportOptions, ImportOutcome, OnConflict, RowProblem, StoreError,
};

const STAGE: &str = "create temp table commandes_import_stage (
    file        int4        not null,
    line        int8        not null,
    id          int8,
    order_id    text        not null,
    customer_id text        not null,
    status      text        not null,
    total_cents int8        not null,
    created_at  timestamptz,
    updated_at  timestamptz
) on commit drop";

const STAGE_TYPES: [Type; 9] = [
    Type::INT4,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMPTZ,
];

/// The stage's rows as `commandes` values (without `id`); `$1` is the
/// import's time.
const STAGED_VALUES: &str = "order_id, customer_id, status,
    (total_cents::numeric / 100)::numeric(10,2),
    coalesce(created_at, updated_at, $1), coalesce(updated_at, created_at, $1)";

const INSERT_COLUMNS: &str = "order_id, customer_id, status, total_amount, created_at, updated_at";

/// Sets the `/stats` counters and the per-day figures of
/// `/stats/timeseries` from the table itself, inside the import's
/// transaction. Each exclusive lock first waits for writers that already
/// counted their change, then holds off new ones until the commit, so no
/// concurrent change is counted twice or lost. The per-day figures go
/// first: a writer's triggers fire in name order (`commandes_daily_track`,
/// then `commandes_stats_track`), and taking the locks in the same order
/// leaves no cycle to deadlock on.
const RECOUNT_STATS: &str = "
    lock table commandes_daily in exclusive mode;
    delete from commandes_daily;
    insert into commandes_daily (day, status, shard, order_count, total_amount)
    select (created_at at time zone 'UTC')::date, status, (id % 16)::smallint, count(*), sum(total_amount)
    from commandes group by 1, 2, 3;
    lock table commandes_stats in exclusive mode;
    update commandes_stats s
    set order_count = coalesce(a.n, 0), total_amount = coalesce(a.total, 0)
    from commandes_stats k
    left join (select status, (id % 16)::smallint as shard, count(*) as n, sum(total_amount) as total
               from commandes group by 1, 2) a
           on a.status = k.status and a.shard = k.shard
    where s.status = k.status and s.shard = k.shard";

pub(super) async fn import(
    client: &mut deadpool_postgres::Object,
    rows: &mut mpsc::Receiver<ImportBatch>,
    options: &ImportOptions,
) -> Result<ImportOutcome, StoreError> {
    let started = std::time::Instant::now();
    let tx = client.transaction().await.map_err(map_error)?;
    // Room for the sorts and hashes of the conflict checks.
    // `commandes.bulk` turns the per-row counter triggers off for this
    // transaction; `RECOUNT_STATS` sets the counters once before commit.
    tx.batch_execute(&format!(
        "set local work_mem = '64MB'; set local commandes.bulk = 'on'; {STAGE}"
    ))
    .await
    .map_err(map_error)?;
    let mut outcome = ImportOutcome::default();
    let copy = tx
        .prepare("copy commandes_import_stage from stdin (format binary)")
        .await
        .map_err(map_error)?;
    let sink = tx.copy_in(&copy).await.map_err(map_error)?;
    let writer = BinaryCopyInWriter::new(sink, &STAGE_TYPES);
    let mut writer = std::pin::pin!(writer);
    let (mut commit, mut check_only) = (false, false);
    while let Some(message) = rows.recv().await {
        match message {
            ImportBatch::Rows(batch) => {
                for row in batch {
                    let r = &row.record;
                    let file = row.file as i32;
                    let line = row.line as i64;
                    let status = r.order.status.as_str();
                    let cents = r.order.total_amount.cents();
                    writer
                        .as_mut()
                        .write(&[
                            &file,
                            &line,
                            &r.id,
                            &r.order.order_id,
                            &r.order.customer_id,
                            &status,
                            &cents,
                            &r.created_at,
                            &r.updated_at,
                        ])
                        .await
                        .map_err(map_error)?;
                    outcome.staged += 1;
                }
            }
            ImportBatch::Commit => {
                commit = true;
                break;
            }
            ImportBatch::Check => {
                (commit, check_only) = (true, true);
                break;
            }
            ImportBatch::Abort => break,
        }
    }
    if !commit {
        // An unfinished copy is aborted; dropping `tx` rolls back.
        return Ok(outcome);
    }
    writer.as_mut().finish().await.map_err(map_error)?;
    // Closed here, inside the transaction (see the module comment).
    drop(copy);
    tracing::debug!(
        rows = outcome.staged,
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import staged"
    );
    tx.batch_execute("analyze commandes_import_stage")
        .await
        .map_err(map_error)?;
    let now = options.now;
    let limit = options.max_problems as i64;
    if check_only {
        outcome.problems = match options.on_conflict {
            OnConflict::Fail => conflicts(&tx, limit).await?,
            OnConflict::Update => id_clashes(&tx, limit).await?,
            OnConflict::Skip => Vec::new(),
        };
        return Ok(outcome); // dropping `tx` rolls back
    }
    match options.on_conflict {
        OnConflict::Fail => {
            tx.batch_execute("savepoint import_insert")
                .await
                .map_err(map_error)?;
            match insert_staged(&tx, &now, "", false).await {
                Ok(n) => outcome.inserted = n,
                Err(e) if is_unique_violation(&e) => {
                    tx.batch_execute("rollback to savepoint import_insert")
                        .await
                        .map_err(map_error)?;
                    outcome.problems = conflicts(&tx, limit).await?;
                    if outcome.problems.is_empty() {
                        outcome.problems.push(RowProblem {
                            at: None,
                            field: "order_id".into(),
                            message: "conflicts with a concurrent change".into(),
                            related: None,
                        });
                    }
                    return Ok(outcome);
                }
                Err(e) => return Err(map_error(e)),
            }
        }
        OnConflict::Skip => {
            outcome.inserted = insert_staged(&tx, &now, "on conflict do nothing", true)
                .await
                .map_err(map_error)?;
        }
        OnConflict::Update => {
            outcome.problems = id_clashes(&tx, limit).await?;
            if !outcome.problems.is_empty() {
                return Ok(outcome);
            }
            // The last row of each order_id wins.
            tx.batch_execute(
                "delete from commandes_import_stage s using (
                    select file, line from (
                        select file, line, row_number() over (
                            partition by order_id order by file desc, line desc) as n
                        from commandes_import_stage) x
                    where n > 1) d
                 where s.file = d.file and s.line = d.line",
            )
            .await
            .map_err(map_error)?;
            outcome.updated = tx
                .execute_typed(
                    "update commandes c set
                        customer_id = s.customer_id,
                        status = s.status,
                        total_amount = s.amount,
                        created_at = coalesce(s.created_at, c.created_at),
                        updated_at = greatest(coalesce(s.updated_at, greatest($1, c.updated_at)),
                                              coalesce(s.created_at, c.created_at))
                     from (select *, (total_cents::numeric / 100)::numeric(10,2) as amount
                           from commandes_import_stage) s
                     where c.order_id = s.order_id
                       and (c.customer_id, c.status, c.total_amount, c.created_at, c.updated_at)
                           is distinct from (s.customer_id, s.status, s.amount,
                                             coalesce(s.created_at, c.created_at),
                                             coalesce(s.updated_at, c.updated_at))",
                    &[(&now, Type::TIMESTAMPTZ)],
                )
                .await
                .map_err(map_error)?;
            tx.batch_execute(
                "delete from commandes_import_stage s using commandes c where c.order_id = s.order_id",
            )
            .await
            .map_err(map_error)?;
            outcome.inserted = insert_staged(&tx, &now, "", false)
                .await
                .map_err(map_error)?;
        }
    }
    tracing::debug!(
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import written"
    );
    tx.batch_execute(RECOUNT_STATS).await.map_err(map_error)?;
    tx.commit().await.map_err(map_error)?;
    tracing::debug!(
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import committed"
    );
    outcome.committed = true;
    Ok(outcome)
}

/// Moves the stage into `commandes`: the rows with an id, then the sequence
/// past them, then the others in file order. `in_order` keeps file order
/// for the first group too (where the first of two conflicting rows must
/// win).
async fn insert_staged(
    tx: &Transaction<'_>,
    now: &DateTime<Utc>,
    conflict: &str,
    in_order: bool,
) -> Result<u64, tokio_postgres::Error> {
    let order = if in_order { "order by file, line" } else { "" };
    let mut n = tx
        .execute_typed(
            &format!(
                "insert into commandes (id, {INSERT_COLUMNS})
                 select id, {STAGED_VALUES} from commandes_import_stage where id is not null
                 {order} {conflict}"
            ),
            &[(now, Type::TIMESTAMPTZ)],
        )
        .await?;
    // Never backwards: ids of deleted orders are not given again.
    tx.execute_typed(
        "select setval(seq::regclass, top) from (
            select pg_get_serial_sequence('commandes', 'id') as seq,
                   (select max(id) from commandes) as top) x
         where top > coalesce(pg_sequence_last_value(seq::regclass), 0)",
        &[],
    )
    .await?;
    n += tx
        .execute_typed(
            &format!(
                "insert into commandes ({INSERT_COLUMNS})
                 select {STAGED_VALUES} from commandes_import_stage where id is null
                 order by file, line {conflict}"
            ),
            &[(now, Type::TIMESTAMPTZ)],
        )
        .await?;
    Ok(n)
}

fn problem(file: i32, line: i64, field: &str, message: String) -> RowProblem {
    RowProblem {
        at: Some((file as u32, line as u64)),
        field: field.into(),
        message,
        related: None,
    }
}

/// Where a later row repeats an earlier one's `key`.
fn repeats_sql(key: &str) -> String {
    format!(
        "select file, line, {key}::text, first_file, first_line from (
            select file, line, {key},
                   first_value(file) over w as first_file, first_value(line) over w as first_line,
                   row_number() over w as n
            from commandes_import_stage where {key} is not null
            window w as (partition by {key} order by file, line)) x
         where n > 1 order by file, line limit $1"
    )
}

async fn repeats(
    tx: &Transaction<'_>,
    key: &str,
    limit: i64,
) -> Result<Vec<RowProblem>, StoreError> {
    let rows = tx
        .query_typed(&repeats_sql(key), &[(&limit, Type::INT8)])
        .await
        .map_err(map_error)?;
    rows.iter()
        .map(|r| {
            Ok(problem(
                r.try_get(0).map_err(StoreError::backend)?,
                r.try_get(1).map_err(StoreError::backend)?,
                key,
                format!(
                    "{} appears earlier in the import",
                    r.try_get::<_, String>(2).map_err(StoreError::backend)?
                ),
            )
            .related(
                r.try_get::<_, i32>(3).map_err(StoreError::backend)?.into(),
                r.try_get(4).map_err(StoreError::backend)?,
            ))
        })
        .collect()
}

/// Every staged row whose `order_id` or `id` is taken, in the database or
/// by an earlier row of the import.
async fn conflicts(tx: &Transaction<'_>, limit: i64) -> Result<Vec<RowProblem>, StoreError> {
    let rows = tx
        .query_typed(
            "select s.file, s.line, s.order_id, c.id from commandes_import_stage s
             join commandes c on c.order_id = s.order_id order by s.file, s.line limit $1",
            &[(&limit, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    let mut all = Vec::new();
    for r in &rows {
        all.push(problem(
            r.try_get(0).map_err(StoreError::backend)?,
            r.try_get(1).map_err(StoreError::backend)?,
            "order_id",
            format!(
                "{} already exists (order id {})",
                r.try_get::<_, String>(2).map_err(StoreError::backend)?,
                r.try_get::<_, i64>(3).map_err(StoreError::backend)?
            ),
        ));
    }
    all.extend(repeats(tx, "order_id", limit).await?);
    all.extend(id_taken(tx, limit, false).await?);
    all.extend(repeats(tx, "id", limit).await?);
    Ok(sorted(all, limit))
}

/// Rows whose `id` belongs to another order: what `update` cannot resolve.
async fn id_clashes(tx: &Transaction<'_>, limit: i64) -> Result<Vec<RowProblem>, StoreError> {
    let mut all = id_taken(tx, limit, true).await?;
    let rows = tx
        .query_typed(
            "select file, line, id, first_file, first_line, first_order from (
                select file, line, id, order_id,
                       first_value(file) over w as first_file, first_value(line) over w as first_line,
                       first_value(order_id) over w as first_order
                from commandes_import_stage where id is not null
                window w as (partition by id order by file, line)) x
             where order_id <> first_order order by file, line limit $1",
            &[(&limit, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    for r in &rows {
        all.push(
            problem(
                r.try_get(0).map_err(StoreError::backend)?,
                r.try_get(1).map_err(StoreError::backend)?,
                "id",
                format!(
                    "{} is given to order {} earlier in the import",
                    r.try_get::<_, i64>(2).map_err(StoreError::backend)?,
                    r.try_get::<_, String>(5).map_err(StoreError::backend)?
                ),
            )
            .related(
                r.try_get::<_, i32>(3).map_err(StoreError::backend)?.into(),
                r.try_get(4).map_err(StoreError::backend)?,
            ),
        );
    }
    Ok(sorted(all, limit))
}

/// Staged ids already in `commandes` (only those of other orders when
/// `other_orders_only`).
async fn id_taken(
    tx: &Transaction<'_>,
    limit: i64,
    other_orders_only: bool,
) -> Result<Vec<RowProblem>, StoreError> {
    let extra = if other_orders_only {
        "where c.order_id <> s.order_id"
    } else {
        ""
    };
    let rows = tx
        .query_typed(
            &format!(
                "select s.file, s.line, s.id, c.order_id::text from commandes_import_stage s
                 join commandes c on c.id = s.id {extra} order by s.file, s.line limit $1"
            ),
            &[(&limit, Type::INT8)],
        )
        .await
        .map_err(map_error)?;
    rows.iter()
        .map(|r| {
            Ok(problem(
                r.try_get(0).map_err(StoreError::backend)?,
                r.try_get(1).map_err(StoreError::backend)?,
                "id",
                format!(
                    "{} already belongs to order {}",
                    r.try_get::<_, i64>(2).map_err(StoreError::backend)?,
                    r.try_get::<_, String>(3).map_err(StoreError::backend)?
                ),
            ))
        })
        .collect()
}

fn sorted(mut all: Vec<RowProblem>, limit: i64) -> Vec<RowProblem> {
    all.sort_by_key(|p| p.at);
    all.truncate(limit as usize);
    all
}

/// How many orders go in one batch of an export.
const EXPORT_BATCH: usize = 1000;

pub(super) async fn export(
    client: &mut deadpool_postgres::Object,
    filter: &ExportFilter,
    out: &mpsc::Sender<Vec<Order>>,
) -> Result<u64, StoreError> {
    use futures_util::StreamExt;

    let args = FilterArgs::new(filter);
    let mut params = Vec::new();
    let clauses = args.clauses(&mut params);
    let mut sql = format!("select {COLUMNS} from commandes");
    if !clauses.is_empty() {
        sql.push_str(" where ");
        sql.push_str(&clauses.join(" and "));
    }
    sql.push_str(" order by id");
    let rows = client
        .query_typed_raw(&sql, params)
        .await
        .map_err(map_error)?;
    let mut rows = std::pin::pin!(rows);
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    let mut sent = 0u64;
    while let Some(row) = rows.next().await {
        batch.push(row_to_order(&row.map_err(map_error)?)?);
        if batch.len() == EXPORT_BATCH {
            sent += batch.len() as u64;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
            if out.send(full).await.is_err() {
                // Dropping the stream ends the query; the connection is
                // then discarded by the pool's recycling check if needed.
                return Ok(sent);
            }
        }
    }
    if !batch.is_empty() {
        sent += batch.len() as u64;
        let _ = out.send(batch).await;
    }
    Ok(sent)
}
