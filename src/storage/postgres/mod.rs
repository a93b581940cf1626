//! The PostgreSQL backend (production, Supabase): a deadpool pool of
//! tokio-postgres connections.
//!
//! Every statement gives its parameter types with the SQL. The requests'
//! statements are named (prepared once per connection) or not, as
//! `database.statement_cache` and the connection decide (`statements`):
//! unnamed ones cost nothing in round trips and work behind a
//! transaction-mode pooler (PgBouncer, Supavisor), which does not keep
//! named statements between transactions. The table keeps the
//! original service's columns: `numeric(10,2)` amounts mapped to
//! `rust_decimal`, `timestamptz` times mapped to `chrono`.
//!
//! This file holds [`PostgresStore`] and its [`Store`] methods, the SQL of
//! each use case; what they share lives beside it, one concern a file:
//!
//! - `connect`: the pool, waiting for the database at start-up, the pooled
//!   connection that is closed (and its query cancelled) when a deadline
//!   expires; [`tls`]: `sslmode`, `sslrootcert` and the rustls connector.
//! - `errors`: which failures are outages (503, or worth waiting for at
//!   start-up) and which are bugs.
//! - `statements`: named or unnamed statements, the check for a pooler,
//!   and what a forgotten statement means.
//! - `queries`: the order columns and row mapping, the insert, the locked
//!   read of a change, the list and export filters.
//! - `changes`: an update or a delete and its events in one statement
//!   that applies only to the row as read.
//! - `events`: a change's events in its own statement, and the sequencer
//!   that numbers them for the feed.
//! - `migrate`: the migration run, and `adopt`, taking over the original
//!   service's table.
//! - `bulk`: import with `COPY`, export in one streamed query.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use tokio_postgres::types::Type;

use super::migrations;
use super::rules;
use super::{
    Backend, Created, ExportFilter, ImportBatch, ImportOptions, ImportOutcome, MigrationReport,
    PoolStatus, SchemaState, Store, StoreError, StoreInfo, StoreOptions, Updated,
};
use crate::domain::event::Event;
use crate::domain::timeseries::{DayFigures, SeriesQuery};
use crate::domain::{
    now, Actor, HistoricalOrder, IdempotencyKey, ListFilter, NewOrder, Order, OrderPatch,
    Precondition, Stats, Status,
};

mod adopt;
mod bulk;
mod changes;
mod connect;
mod errors;
mod events;
mod migrate;
mod queries;
mod statements;
pub mod tls;

use connect::Connections;
use errors::map_error;
use events::{row_to_event, run_sequencer, sequenced_client, EVENT_COLUMNS};
use migrate::apply_migrations;
use queries::{insert, row_to_order, ListArgs, Param, COLUMNS};
use statements::Db;

/// The driver's client under a pooled connection, for code written
/// against `tokio_postgres::GenericClient` (a client or a transaction).
fn pg(conn: &connect::Conn) -> &tokio_postgres::Client {
    conn
}

/// A PostgreSQL database reached through a connection pool.
pub struct PostgresStore {
    connections: Connections,
}

impl PostgresStore {
    /// Builds the pool and waits for the database (see
    /// [`StoreOptions::startup_timeout`]): a database that is down,
    /// starting or full is retried with backoff, logged; any other failure
    /// (password, TLS, unknown database) is returned at once.
    pub async fn open(url: &str, options: &StoreOptions) -> anyhow::Result<PostgresStore> {
        let connections = Connections::open(url, options).await?;
        Ok(PostgresStore { connections })
    }

    /// The order whose unique `column` ("id" or "order_id") is `key`, if
    /// `actor` may see it.
    async fn select_one(
        &self,
        column: &'static str,
        key: Param<'_>,
        actor: &Actor,
    ) -> Result<Order, StoreError> {
        let client = self.connections.client().await?;
        let owner = actor.owner.as_deref();
        let row = client
            .db()
            .query_opt(
                &format!(
                    "select {COLUMNS} from commandes
                     where {column} = $1 and ($2::varchar is null or customer_id = $2)"
                ),
                &[key, (&owner, Type::VARCHAR)],
            )
            .await
            .map_err(map_error)?;
        row.as_ref().map_or(Err(StoreError::NotFound), row_to_order)
    }

    /// The rows of [`Store::stats`], once (see [`Connections::retrying`]).
    async fn stats_rows(&self, actor: &Actor) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = self.connections.client().await?;
        let db = client.db();
        match &actor.owner {
            None => {
                db.query(
                    // Kept by a trigger (migration 0003): 64 rows, no scan.
                    "select status::text, sum(order_count)::int8, sum(total_amount)::numeric
                         from commandes_stats group by status",
                    &[],
                )
                .await
            }
            // The counters cover everyone: one customer's figures are summed
            // from its rows (found by the customer index).
            Some(owner) => {
                db.query(
                    "select status::text, count(*)::int8, coalesce(sum(total_amount), 0)::numeric
                         from commandes where customer_id = $1 group by status",
                    &[(owner, Type::VARCHAR)],
                )
                .await
            }
        }
        .map_err(map_error)
    }

    /// [`Store::create`], once (see [`Connections::retrying`]).
    async fn create_once(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        let mut client = self.connections.client().await?;
        let t = now();
        let Some(key) = key else {
            let order = insert(client.db(), order, &t, &t, Some(actor)).await?;
            return Ok(Created {
                order,
                replayed: false,
            });
        };
        let named = client.named();
        let tx = client.transaction().await.map_err(map_error)?;
        let db = Db::tx(&tx, named);
        // Held until commit: a second request with the same key, on any
        // replica, fails to take it while the first is running (409), and
        // finds the stored outcome once it has committed.
        let lock_name = format!("commandes-idempotency/{}/{}", key.scope, key.key);
        let locked: bool = db
            .query(
                "select pg_try_advisory_xact_lock(hashtextextended($1, 0))",
                &[(&lock_name, Type::TEXT)],
            )
            .await
            .map_err(map_error)?[0]
            .get(0);
        if !locked {
            return Err(StoreError::IdempotencyInProgress);
        }
        let stored = db
            .query_opt(
                "select order_pk, order_id, customer_id, status, total_amount, created_at, updated_at, fingerprint
                 from commandes_idempotency_keys where scope = $1 and key = $2 and expires_at > $3",
                &[(&key.scope, Type::TEXT), (&key.key, Type::TEXT), (&t, Type::TIMESTAMPTZ)],
            )
            .await
            .map_err(map_error)?;
        if let Some(row) = stored {
            let fingerprint: String = row.try_get(7).map_err(StoreError::backend)?;
            return if fingerprint == key.fingerprint {
                Ok(Created {
                    order: row_to_order(&row)?,
                    replayed: true,
                })
            } else {
                Err(StoreError::IdempotencyMismatch)
            };
        }
        let created = insert(db, order, &t, &t, Some(actor)).await?;
        let expires = t + TimeDelta::from_std(key.ttl).unwrap_or(TimeDelta::days(1));
        let amount = created.total_amount.to_decimal();
        let status = created.status.as_str();
        db.execute(
            "insert into commandes_idempotency_keys
             (scope, key, fingerprint, order_pk, order_id, customer_id, status, total_amount, created_at, updated_at, expires_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             on conflict (scope, key) do update set
                fingerprint = excluded.fingerprint, order_pk = excluded.order_pk, order_id = excluded.order_id,
                customer_id = excluded.customer_id, status = excluded.status,
                total_amount = excluded.total_amount, created_at = excluded.created_at,
                updated_at = excluded.updated_at, expires_at = excluded.expires_at",
            &[
                (&key.scope, Type::TEXT),
                (&key.key, Type::TEXT),
                (&key.fingerprint, Type::TEXT),
                (&created.id, Type::INT8),
                (&created.order_id, Type::VARCHAR),
                (&created.customer_id, Type::VARCHAR),
                (&status, Type::VARCHAR),
                (&amount, Type::NUMERIC),
                (&created.created_at, Type::TIMESTAMPTZ),
                (&created.updated_at, Type::TIMESTAMPTZ),
                (&expires, Type::TIMESTAMPTZ),
            ],
        )
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        Ok(Created {
            order: created,
            replayed: false,
        })
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> Result<MigrationReport, StoreError> {
        let mut client = self.connections.client().await?;
        apply_migrations(&mut client, migrations::POSTGRES).await
    }

    async fn create(
        &self,
        order: &NewOrder,
        key: Option<&IdempotencyKey>,
        actor: &Actor,
    ) -> Result<Created, StoreError> {
        rules::check_assignable(actor, &order.customer_id)?;
        self.connections
            .retrying(|| self.create_once(order, key, actor))
            .await
    }

    async fn purge_expired_keys(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let client = self.connections.client().await?;
        client
            .execute_typed(
                "delete from commandes_idempotency_keys where ctid = any(array(
                    select ctid from commandes_idempotency_keys where expires_at <= $1 limit 1000))",
                &[(&now, Type::TIMESTAMPTZ)],
            )
            .await
            .map_err(map_error)
    }

    async fn insert_historical(&self, orders: &[HistoricalOrder]) -> Result<u64, StoreError> {
        let mut client = self.connections.client().await?;
        let tx = client.transaction().await.map_err(map_error)?;
        for o in orders {
            // Demo data: restored, not changed, so no events.
            insert(
                Db::tx(&tx, false),
                &o.order,
                &o.created_at,
                &o.updated_at,
                None,
            )
            .await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(orders.len() as u64)
    }

    async fn get(&self, id: i64, actor: &Actor) -> Result<Order, StoreError> {
        self.connections
            .retrying(|| self.select_one("id", (&id, Type::INT8), actor))
            .await
    }

    async fn get_by_order_id(&self, order_id: &str, actor: &Actor) -> Result<Order, StoreError> {
        self.connections
            .retrying(|| self.select_one("order_id", (&order_id, Type::VARCHAR), actor))
            .await
    }

    async fn list(&self, filter: &ListFilter, actor: &Actor) -> Result<Vec<Order>, StoreError> {
        let args = ListArgs::new(filter, actor.owner.as_deref());
        let (sql, params) = args.sql(filter);
        let rows = self
            .connections
            .retrying(|| async {
                let client = self.connections.client().await?;
                let db = client.db().shaped();
                db.query(&sql, &params).await.map_err(map_error)
            })
            .await?;
        rows.iter().map(row_to_order).collect()
    }

    async fn update(
        &self,
        id: i64,
        patch: &OrderPatch,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<Updated, StoreError> {
        let connections = &self.connections;
        connections
            .retrying(|| changes::update(connections, id, patch, if_match, actor))
            .await
    }

    async fn delete(
        &self,
        id: i64,
        if_match: Option<&Precondition>,
        actor: &Actor,
    ) -> Result<(), StoreError> {
        let connections = &self.connections;
        connections
            .retrying(|| changes::delete(connections, id, if_match, actor))
            .await
    }

    async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let client = sequenced_client(&self.connections).await?;
        let limit = i64::from(limit);
        let rows = client
            .query_typed(
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where sequence > $1 order by sequence limit $2"
                ),
                &[(&after, Type::INT8), (&limit, Type::INT8)],
            )
            .await
            .map_err(map_error)?;
        rows.iter().map(row_to_event).collect()
    }

    async fn history(
        &self,
        id: i64,
        after: i64,
        limit: u32,
        actor: &Actor,
    ) -> Result<Vec<Event>, StoreError> {
        let client = sequenced_client(&self.connections).await?;
        let limit = i64::from(limit);
        let owner = actor.owner.as_deref();
        // An order's changes are serialised by its row lock, so within one
        // order insertion order is sequence order: the page is read along
        // the (order_ref, insertion_id) index, from the event numbered
        // `after` when it is one of this order's (a `Link` of an earlier
        // page), so a deep page costs what the first one does. Only the
        // owner's events (the rule of `Event::seen_by`), so that the limit
        // bounds what the caller gets.
        let rows = client
            .query_typed(
                &format!(
                    "select {EVENT_COLUMNS} from commandes_events
                     where order_ref = $1 and sequence > $2
                       and ($4::varchar is null or customer_id = $4)
                       and insertion_id > coalesce((select insertion_id from commandes_events
                                                    where sequence = $2 and order_ref = $1), 0)
                     order by insertion_id limit $3"
                ),
                &[
                    (&id, Type::INT8),
                    (&after, Type::INT8),
                    (&limit, Type::INT8),
                    (&owner, Type::VARCHAR),
                ],
            )
            .await
            .map_err(map_error)?;
        let events = rows
            .iter()
            .map(row_to_event)
            .collect::<Result<Vec<_>, _>>()?;
        // Nothing to show: an empty page of a history the caller may read,
        // or no history for it at all.
        if events.is_empty() {
            let visible: bool = client
                .query_typed(
                    "select exists (select 1 from commandes
                                    where id = $1 and ($2::varchar is null or customer_id = $2))
                         or exists (select 1 from commandes_events
                                    where order_ref = $1 and ($2::varchar is null or customer_id = $2))",
                    &[(&id, Type::INT8), (&owner, Type::VARCHAR)],
                )
                .await
                .map_err(map_error)?[0]
                .try_get(0)
                .map_err(StoreError::backend)?;
            if !visible {
                return Err(StoreError::NotFound);
            }
        }
        Ok(super::history_seen(events, actor))
    }

    async fn purge_events(
        &self,
        older_than: DateTime<Utc>,
        up_to: Option<i64>,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let client = self.connections.client().await?;
        let batch = i64::from(batch);
        // Old rows only: writers insert new ones and never wait for this.
        // Unnumbered events are never pruned (no reader has seen them yet).
        // Oldest first, along the time index: the scan stops at the first
        // event inside the retention, so a run with nothing to prune costs
        // one index probe, not a pass over the whole table.
        client
            .execute_typed(
                "delete from commandes_events where insertion_id = any(array(
                    select insertion_id from commandes_events
                    where time < $1 and sequence is not null
                      and ($2::int8 is null or sequence <= $2)
                    order by time limit $3))",
                &[
                    (&older_than, Type::TIMESTAMPTZ),
                    (&up_to, Type::INT8),
                    (&batch, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)
    }

    async fn sequence_events(&self) -> Result<u64, StoreError> {
        let mut client = self.connections.client().await?;
        Ok(run_sequencer(&mut client).await?.unwrap_or(0))
    }

    async fn unsequenced_events(&self) -> Result<u64, StoreError> {
        let client = self.connections.client().await?;
        let n: i64 = client
            .query_typed(
                "select count(*)::int8 from commandes_events where sequence is null",
                &[],
            )
            .await
            .map_err(map_error)?[0]
            .get(0);
        Ok(n as u64)
    }

    async fn stats(&self, actor: &Actor) -> Result<Stats, StoreError> {
        let rows = self.connections.retrying(|| self.stats_rows(actor)).await?;
        let mut stats = Stats::default();
        for row in rows {
            let status: String = row.try_get(0).map_err(StoreError::backend)?;
            let count: i64 = row.try_get(1).map_err(StoreError::backend)?;
            let mut sum: Decimal = row.try_get(2).map_err(StoreError::backend)?;
            sum.rescale(2);
            let status: Status = status.parse().map_err(StoreError::backend)?;
            stats.add(status, count, sum.mantissa());
        }
        Ok(stats)
    }

    async fn daily_figures(
        &self,
        query: &SeriesQuery,
        actor: &Actor,
    ) -> Result<Vec<DayFigures>, StoreError> {
        self.connections
            .retrying(|| async {
                let client = self.connections.client().await?;
                let db = client.db().shaped();
                queries::daily_figures(db, query, actor.owner.as_deref()).await
            })
            .await
    }
    async fn info(&self) -> Result<StoreInfo, StoreError> {
        let client = self.connections.client().await?;
        let server: String = client
            .query_typed("select current_setting('server_version')", &[])
            .await
            .map_err(map_error)?[0]
            .get(0);
        let state = migrate::schema_state(pg(&client))
            .await
            .map_err(map_error)?;
        let count = if state.version > 0 {
            client
                .query_typed("select count(*)::int8 from commandes", &[])
                .await
                .map_err(map_error)?[0]
                .get(0)
        } else {
            0
        };
        Ok(StoreInfo {
            backend: Backend::Postgres,
            server_version: format!("PostgreSQL {server}"),
            schema: state,
            order_count: count,
        })
    }

    async fn schema_state(&self) -> Result<SchemaState, StoreError> {
        let client = self.connections.client().await?;
        migrate::schema_state(pg(&client)).await.map_err(map_error)
    }

    fn pool_status(&self) -> Option<PoolStatus> {
        Some(self.connections.status())
    }

    async fn close(&self) {
        self.connections.close();
    }

    async fn import(
        &self,
        mut rows: tokio::sync::mpsc::Receiver<ImportBatch>,
        options: &ImportOptions,
    ) -> Result<ImportOutcome, StoreError> {
        let mut client = self.connections.client().await?;
        bulk::import(&mut client, &mut rows, options).await
    }

    async fn export(
        &self,
        filter: &ExportFilter,
        out: tokio::sync::mpsc::Sender<Vec<Order>>,
    ) -> Result<u64, StoreError> {
        let mut client = self.connections.client().await?;
        bulk::export(&mut client, filter, &out).await
    }

    async fn relay_claim(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<i64>, StoreError> {
        let client = self.connections.client().await?;
        let ttl_ms = ttl.as_millis() as i64;
        // The database's clock decides expiry, so replicas with skewed
        // clocks still agree. `clock_timestamp()`, not `now()`: the time of
        // this statement even inside a pooler's longer transaction.
        let row = client
            .query_typed_opt(
                "insert into commandes_event_relay as r (name, holder, lease_until)
                 values ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
                 on conflict (name) do update
                    set holder = excluded.holder, lease_until = excluded.lease_until
                    where r.holder = excluded.holder or r.lease_until < clock_timestamp()
                 returning position",
                &[
                    (&name, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&ttl_ms, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn relay_advance(
        &self,
        name: &str,
        holder: &str,
        position: i64,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let client = self.connections.client().await?;
        let ttl_ms = ttl.as_millis() as i64;
        let n = client
            .execute_typed(
                "update commandes_event_relay
                    set position = greatest(position, $3),
                        lease_until = clock_timestamp() + $4 * interval '1 millisecond'
                  where name = $1 and holder = $2",
                &[
                    (&name, Type::TEXT),
                    (&holder, Type::TEXT),
                    (&position, Type::INT8),
                    (&ttl_ms, Type::INT8),
                ],
            )
            .await
            .map_err(map_error)?;
        Ok(n == 1)
    }

    async fn relay_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let client = self.connections.client().await?;
        client
            .execute_typed(
                "update commandes_event_relay set holder = null, lease_until = '-infinity'
                  where name = $1 and holder = $2",
                &[(&name, Type::TEXT), (&holder, Type::TEXT)],
            )
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn relay_position(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let client = self.connections.client().await?;
        let row = client
            .query_typed_opt(
                "select position from commandes_event_relay where name = $1",
                &[(&name, Type::TEXT)],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn last_event_sequence(&self) -> Result<i64, StoreError> {
        let client = self.connections.client().await?;
        let row = client
            .query_typed_opt(
                "select last_sequence from commandes_event_sequencer where id = 1",
                &[],
            )
            .await
            .map_err(map_error)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }
}
