//! Bulk work on SQLite: import through a staging table, export in one read.
//!
//! An import runs in one `IMMEDIATE` transaction on the writer connection:
//! rows go into a temporary table with a prepared insert as they arrive
//! (the temporary database lives in a file, so memory stays flat), then a
//! few set-based statements move them into `commandes` as the conflict mode
//! says. Rows with an `id` go first, so that the ids SQLite assigns to the
//! others (AUTOINCREMENT: above every id ever used, explicit ones included)
//! never collide with one the file asked for.

use rusqlite::types::Value;
use rusqlite::{params, Connection, TransactionBehavior};
use tokio::sync::mpsc;

use super::errors::map_error;
use super::queries::{row_to_order, COLUMNS};
use crate::domain::format_time;
use crate::domain::record::write_time;
use crate::domain::Order;
use crate::storage::{
    ExportFilter, ImportBatch, ImportOptions, ImportOutcome, OnConflict, RowProblem, StoreError,
};

/// Cache while importing (KiB), so that the indexes being filled mostly
/// stay in memory. The staging table is only appended to and read in
/// order, so the temporary database keeps a small cache.
const IMPORT_CACHE_KIB: i64 = 32 * 1024;
const STAGE_CACHE_KIB: i64 = 4 * 1024;

const STAGE: &str = "create temp table commandes_import_stage (
    file        integer not null,
    line        integer not null,
    id          integer,
    order_id    text    not null,
    customer_id text    not null,
    status      text    not null,
    total_cents integer not null,
    created_at  text,
    updated_at  text
)";

/// The stage's rows as `commandes` columns; `?1` is the import's time.
const SELECT_STAGED: &str = "select id, order_id, customer_id, status, total_cents,
    coalesce(created_at, updated_at, ?1), coalesce(updated_at, created_at, ?1)
    from temp.commandes_import_stage";

const INSERT_COLUMNS: &str =
    "commandes (id, order_id, customer_id, status, total_cents, created_at, updated_at)";

/// Runs a whole import on the writer connection (a blocking thread).
pub(super) fn import(
    conn: &mut Connection,
    rows: &mut mpsc::Receiver<ImportBatch>,
    options: &ImportOptions,
) -> Result<ImportOutcome, StoreError> {
    let cache: i64 = conn
        .query_row("pragma cache_size", [], |r| r.get(0))
        .map_err(map_error)?;
    conn.execute_batch(&format!("pragma cache_size = -{IMPORT_CACHE_KIB}"))
        .map_err(map_error)?;
    let result = import_in_transaction(conn, rows, options);
    // The temporary table went with the transaction; the cache shrinks back.
    let _ = conn.execute_batch(&format!(
        "pragma cache_size = {cache}; pragma temp.cache_size = {cache}"
    ));
    result
}

fn import_in_transaction(
    conn: &mut Connection,
    rows: &mut mpsc::Receiver<ImportBatch>,
    options: &ImportOptions,
) -> Result<ImportOutcome, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(map_error)?;
    tx.execute_batch(&format!(
        "pragma temp.cache_size = -{STAGE_CACHE_KIB}; drop table if exists temp.commandes_import_stage; {STAGE}"
    ))
    .map_err(map_error)?;
    let started = std::time::Instant::now();
    let mut outcome = ImportOutcome::default();
    let (mut commit, mut check_only) = (false, false);
    {
        let mut stage = tx
            .prepare("insert into temp.commandes_import_stage values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)")
            .map_err(map_error)?;
        let (mut created, mut updated) = (String::new(), String::new());
        let time = |buf: &mut String, t: &Option<chrono::DateTime<chrono::Utc>>| {
            buf.clear();
            t.as_ref().map(|t| {
                write_time(buf, t);
                buf.len()
            })
        };
        while let Some(message) = rows.blocking_recv() {
            match message {
                ImportBatch::Rows(batch) => {
                    for row in batch {
                        let r = &row.record;
                        let c = time(&mut created, &r.created_at).map(|_| created.as_str());
                        let u = time(&mut updated, &r.updated_at).map(|_| updated.as_str());
                        stage
                            .execute(params![
                                row.file,
                                row.line as i64,
                                r.id,
                                r.order.order_id,
                                r.order.customer_id,
                                r.order.status.as_str(),
                                r.order.total_amount.cents(),
                                c,
                                u,
                            ])
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
    }
    if !commit {
        return Ok(outcome); // dropping `tx` rolls back
    }
    tracing::debug!(
        rows = outcome.staged,
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import staged"
    );
    if check_only {
        outcome.problems = match options.on_conflict {
            OnConflict::Fail => conflicts(&tx, options.max_problems)?,
            OnConflict::Update => id_clashes(&tx, options.max_problems)?,
            OnConflict::Skip => Vec::new(),
        };
        return Ok(outcome); // dropping `tx` rolls back
    }
    let now = format_time(&options.now);
    let aside = set_aside(&tx, outcome.staged)?;
    match options.on_conflict {
        OnConflict::Fail => {
            tx.execute_batch("savepoint import_insert")
                .map_err(map_error)?;
            match insert_staged(&tx, "insert into", &now) {
                Ok(n) => outcome.inserted = n,
                Err(e) if is_taken(&e) => {
                    tx.execute_batch("rollback to import_insert")
                        .map_err(map_error)?;
                    outcome.problems = conflicts(&tx, options.max_problems)?;
                    if outcome.problems.is_empty() {
                        outcome.problems.push(RowProblem {
                            at: None,
                            field: "order_id".into(),
                            message: format!("conflicts with a concurrent change: {e}"),
                            related: None,
                        });
                    }
                    return Ok(outcome);
                }
                Err(e) => return Err(map_error(e)),
            }
        }
        OnConflict::Skip => {
            outcome.inserted =
                insert_staged(&tx, "insert or ignore into", &now).map_err(map_error)?;
        }
        OnConflict::Update => {
            outcome.problems = id_clashes(&tx, options.max_problems)?;
            if !outcome.problems.is_empty() {
                return Ok(outcome);
            }
            // The last row of each order_id wins.
            tx.execute_batch(
                "delete from temp.commandes_import_stage where rowid in (
                    select rowid from (
                        select rowid, row_number() over (
                            partition by order_id order by file desc, line desc) as n
                        from temp.commandes_import_stage)
                    where n > 1)",
            )
            .map_err(map_error)?;
            outcome.updated = tx
                .execute(
                    "update commandes as c set
                        customer_id = s.customer_id,
                        status = s.status,
                        total_cents = s.total_cents,
                        created_at = coalesce(s.created_at, c.created_at),
                        updated_at = max(coalesce(s.updated_at, max(?1, c.updated_at)),
                                         coalesce(s.created_at, c.created_at))
                     from temp.commandes_import_stage as s
                     where c.order_id = s.order_id
                       and (c.customer_id, c.status, c.total_cents, c.created_at, c.updated_at)
                           is not (s.customer_id, s.status, s.total_cents,
                                   coalesce(s.created_at, c.created_at),
                                   coalesce(s.updated_at, c.updated_at))",
                    [&now],
                )
                .map_err(map_error)? as u64;
            tx.execute_batch(
                "delete from temp.commandes_import_stage
                 where order_id in (select order_id from commandes)",
            )
            .map_err(map_error)?;
            outcome.inserted = insert_staged(&tx, "insert into", &now).map_err(map_error)?;
        }
    }
    tracing::debug!(
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import written"
    );
    put_back(&tx, &aside)?;
    tx.execute_batch("drop table temp.commandes_import_stage")
        .map_err(map_error)?;
    tx.commit().map_err(map_error)?;
    tracing::debug!(
        elapsed_ms = crate::log_text::millis(started.elapsed()),
        "import committed"
    );
    outcome.committed = true;
    Ok(outcome)
}

/// Staged rows from which an import may set aside the work it would
/// otherwise do row by row (see [`set_aside`]).
const LARGE_IMPORT_ROWS: u64 = 10_000;

/// The triggers that keep the `/stats` counters (migration 0003) and the
/// per-day figures (0009) row by row.
const COUNTER_TRIGGERS: &str = "select type, name, sql from sqlite_master
    where type = 'trigger' and tbl_name = 'commandes'
      and (name like 'commandes!_stats!_%' escape '!' or name like 'commandes!_daily!_%' escape '!')
    order by name";

/// The secondary indexes of `commandes` made by `create index` that are
/// not unique: the import's conflict checks never need them (those use the
/// primary key and `order_id`'s unique index, which stay).
const PLAIN_INDEXES: &str = "select m.type, m.name, m.sql from pragma_index_list('commandes') as i
    join sqlite_master as m on m.type = 'index' and m.name = i.name
    where i.origin = 'c' and i.\"unique\" = 0 and m.sql is not null
    order by i.name";

/// Both tables of figures, set from the orders themselves.
const RECOUNT: &str = "
    update commandes_stats set order_count = 0, total_cents = 0;
    update commandes_stats set order_count = a.n, total_cents = a.total
    from (select status, count(*) as n, sum(total_cents) as total
          from commandes group by status) as a
    where commandes_stats.status = a.status;
    delete from commandes_daily;
    insert into commandes_daily (day, status, order_count, total_cents)
    select substr(created_at, 1, 10), status, count(*), sum(total_cents)
    from commandes group by 1, 2";

/// What a large import dropped inside its transaction, to put back before
/// commit ([`put_back`]).
#[derive(Default)]
struct SetAside {
    /// The counting triggers.
    triggers: Vec<SchemaObject>,
    /// The plain indexes.
    indexes: Vec<SchemaObject>,
}

/// A trigger or an index as `sqlite_master` keeps it.
struct SchemaObject {
    /// `trigger` or `index`.
    kind: String,
    name: String,
    /// The `create` statement that made it.
    sql: String,
}

/// For a large import, drops inside its transaction what would cost it
/// per row, and returns how to put it back:
///
/// - the counting triggers, when the import has at least
///   [`LARGE_IMPORT_ROWS`] rows and a quarter as many as the orders
///   already there: two trigger statements per row cost more than one
///   recount of the table at the end;
/// - the plain secondary indexes, when it has at least as many rows as are
///   already there: building an index from sorted keys is several times
///   faster than inserting millions of keys at random places in it.
///
/// Nothing else writes meanwhile (the import holds the only writer, in an
/// `IMMEDIATE` transaction), readers keep their snapshot with everything
/// in place, and an import that fails rolls the drops back with the rest.
/// A smaller import changes nothing, so it never pays for a pass over a
/// large table.
fn set_aside(tx: &Connection, staged: u64) -> Result<SetAside, StoreError> {
    let mut aside = SetAside::default();
    if staged < LARGE_IMPORT_ROWS {
        return Ok(aside);
    }
    let orders: i64 = tx
        .query_row(
            "select coalesce(sum(order_count), 0) from commandes_stats",
            [],
            |r| r.get(0),
        )
        .map_err(map_error)?;
    let orders = orders.max(0) as u64;
    let objects = |sql: &str| {
        tx.prepare(sql)
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok(SchemaObject {
                        kind: r.get(0)?,
                        name: r.get(1)?,
                        sql: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(map_error)
    };
    if staged.saturating_mul(4) >= orders {
        aside.triggers = objects(COUNTER_TRIGGERS)?;
    }
    if staged >= orders {
        aside.indexes = objects(PLAIN_INDEXES)?;
    }
    for o in aside.triggers.iter().chain(&aside.indexes) {
        let name = o.name.replace('"', "\"\"");
        tx.execute_batch(&format!("drop {} \"{name}\"", o.kind))
            .map_err(map_error)?;
    }
    Ok(aside)
}

/// Puts back what [`set_aside`] dropped, as it was: the indexes (built
/// from the table, sorted) and the triggers, then sets both tables of
/// figures from the orders if the triggers were off.
fn put_back(tx: &Connection, aside: &SetAside) -> Result<(), StoreError> {
    // The index builds sort every key: let SQLite's sorter use a helper
    // thread per core, for these statements only. Each sorting thread
    // holds up to a cache's worth of keys, so the cache is halved
    // meanwhile (the import sets it back): memory stays where one thread
    // with the whole cache left it.
    let helpers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    tx.execute_batch(&format!(
        "pragma threads = {helpers}; pragma cache_size = -{}",
        IMPORT_CACHE_KIB / (1 + helpers as i64)
    ))
    .map_err(map_error)?;
    let built = aside
        .indexes
        .iter()
        .chain(&aside.triggers)
        .try_for_each(|o| tx.execute_batch(&o.sql));
    let _ = tx.execute_batch("pragma threads = 0");
    built.map_err(map_error)?;
    if !aside.triggers.is_empty() {
        tx.execute_batch(RECOUNT).map_err(map_error)?;
    }
    Ok(())
}

/// A unique or primary-key violation: an order_id or id already taken.
fn is_taken(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// Moves the stage into `commandes` with `verb` (`insert into`, `insert or
/// ignore into`): rows with an id first, then the others in file order.
fn insert_staged(conn: &Connection, verb: &str, now: &str) -> rusqlite::Result<u64> {
    let mut n = 0;
    for which in ["id is not null", "id is null"] {
        n += conn.execute(
            &format!("{verb} {INSERT_COLUMNS} {SELECT_STAGED} where {which} order by rowid"),
            [now],
        )? as u64;
    }
    Ok(n)
}

fn problem(file: i64, line: i64, field: &str, message: String) -> RowProblem {
    RowProblem {
        at: Some((file as u32, line as u64)),
        field: field.into(),
        message,
        related: None,
    }
}

fn collect(
    conn: &Connection,
    sql: &str,
    limit: usize,
    make: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<RowProblem>,
) -> Result<Vec<RowProblem>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(map_error)?;
    let rows = stmt
        .query_map([limit as i64], |r| make(r))
        .map_err(map_error)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_error)
}

/// Where a later row repeats an earlier one's `key` (window over the stage).
fn repeats_sql(key: &str) -> String {
    format!(
        "select file, line, {key}, first_file, first_line from (
            select file, line, {key},
                   first_value(file) over w as first_file, first_value(line) over w as first_line,
                   row_number() over w as n
            from temp.commandes_import_stage where {key} is not null
            window w as (partition by {key} order by file, line))
         where n > 1 order by file, line limit ?1"
    )
}

/// Every staged row whose `order_id` or `id` is taken: in the database or by
/// an earlier row of the import. Sorted by position, at most `limit`.
fn conflicts(conn: &Connection, limit: usize) -> Result<Vec<RowProblem>, StoreError> {
    let mut all = collect(
        conn,
        "select s.file, s.line, s.order_id, c.id from temp.commandes_import_stage s
         join commandes c on c.order_id = s.order_id order by s.file, s.line limit ?1",
        limit,
        |r| {
            Ok(problem(
                r.get(0)?,
                r.get(1)?,
                "order_id",
                format!(
                    "{} already exists (order id {})",
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?
                ),
            ))
        },
    )?;
    all.extend(collect(conn, &repeats_sql("order_id"), limit, |r| {
        Ok(problem(
            r.get(0)?,
            r.get(1)?,
            "order_id",
            repeated(&r.get::<_, String>(2)?),
        )
        .related(r.get(3)?, r.get(4)?))
    })?);
    all.extend(id_taken(conn, limit, false)?);
    all.extend(collect(conn, &repeats_sql("id"), limit, |r| {
        Ok(problem(
            r.get(0)?,
            r.get(1)?,
            "id",
            repeated(&r.get::<_, i64>(2)?.to_string()),
        )
        .related(r.get(3)?, r.get(4)?))
    })?);
    Ok(sorted(all, limit))
}

/// Rows whose `id` belongs to another order (in the database, or earlier in
/// the import): what `update` cannot resolve.
fn id_clashes(conn: &Connection, limit: usize) -> Result<Vec<RowProblem>, StoreError> {
    let mut all = id_taken(conn, limit, true)?;
    all.extend(collect(
        conn,
        "select file, line, id, first_file, first_line, first_order from (
            select file, line, id, order_id,
                   first_value(file) over w as first_file, first_value(line) over w as first_line,
                   first_value(order_id) over w as first_order
            from temp.commandes_import_stage where id is not null
            window w as (partition by id order by file, line))
         where order_id <> first_order order by file, line limit ?1",
        limit,
        |r| {
            Ok(problem(
                r.get(0)?,
                r.get(1)?,
                "id",
                format!(
                    "{} is given to order {} earlier in the import",
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(5)?,
                ),
            )
            .related(r.get(3)?, r.get(4)?))
        },
    )?);
    Ok(sorted(all, limit))
}

/// Staged ids already in `commandes` (only those of other orders when
/// `other_orders_only`).
fn id_taken(
    conn: &Connection,
    limit: usize,
    other_orders_only: bool,
) -> Result<Vec<RowProblem>, StoreError> {
    let extra = if other_orders_only {
        "where c.order_id <> s.order_id"
    } else {
        ""
    };
    collect(
        conn,
        &format!(
            "select s.file, s.line, s.id, c.order_id from temp.commandes_import_stage s
             join commandes c on c.id = s.id {extra} order by s.file, s.line limit ?1"
        ),
        limit,
        |r| {
            Ok(problem(
                r.get(0)?,
                r.get(1)?,
                "id",
                format!(
                    "{} already belongs to order {}",
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?
                ),
            ))
        },
    )
}

fn repeated(value: &str) -> String {
    format!("{value} appears earlier in the import")
}

fn sorted(mut all: Vec<RowProblem>, limit: usize) -> Vec<RowProblem> {
    all.sort_by_key(|p| p.at);
    all.truncate(limit);
    all
}

/// The `where` clause and arguments of an export.
fn export_sql(filter: &ExportFilter) -> (String, Vec<Value>) {
    let mut clauses = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let mut push = |clause: &str, value: Value| {
        args.push(value);
        clauses.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(s) = filter.status {
        push("status = ?", Value::Text(s.as_str().into()));
    }
    if let Some(c) = &filter.customer_id {
        push("customer_id = ?", Value::Text(c.clone()));
    }
    if let Some(a) = filter.min_amount {
        push("total_cents >= ?", Value::Integer(a.cents()));
    }
    if let Some(a) = filter.max_amount {
        push("total_cents <= ?", Value::Integer(a.cents()));
    }
    if let Some(t) = &filter.created_from {
        push("created_at >= ?", Value::Text(format_time(t)));
    }
    if let Some(t) = &filter.created_to {
        push("created_at <= ?", Value::Text(format_time(t)));
    }
    let mut sql = format!("select {COLUMNS} from commandes");
    if !clauses.is_empty() {
        sql.push_str(" where ");
        sql.push_str(&clauses.join(" and "));
    }
    sql.push_str(" order by id");
    (sql, args)
}

/// How many orders go in one batch of an export.
const EXPORT_BATCH: usize = 1000;

/// Streams an export from one statement: one read transaction, so one
/// snapshot (WAL), whatever writers do meanwhile.
pub(super) fn export(
    conn: &Connection,
    filter: &ExportFilter,
    out: &mpsc::Sender<Vec<Order>>,
) -> Result<u64, StoreError> {
    let (sql, args) = export_sql(filter);
    let mut stmt = conn.prepare(&sql).map_err(map_error)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(map_error)?;
    let mut batch = Vec::with_capacity(EXPORT_BATCH);
    let mut sent = 0u64;
    while let Some(row) = rows.next().map_err(map_error)? {
        batch.push(row_to_order(row).map_err(map_error)?);
        if batch.len() == EXPORT_BATCH {
            sent += batch.len() as u64;
            let full = std::mem::replace(&mut batch, Vec::with_capacity(EXPORT_BATCH));
            if out.blocking_send(full).is_err() {
                return Ok(sent);
            }
        }
    }
    if !batch.is_empty() {
        sent += batch.len() as u64;
        let _ = out.blocking_send(batch);
    }
    Ok(sent)
}
