//! Named or unnamed statements (`database.statement_cache`), and what to do
//! when the server has forgotten a named one.
//!
//! A named statement is parsed and planned once per connection and then
//! only bound and executed: about twice the lookups per second of an
//! unnamed one, which is parsed at every use. But it lives in one server
//! session, and a transaction pooler (PgBouncer, Supavisor in transaction
//! mode) hands each transaction to whichever server connection is free:
//! there a named statement may be missing, or be another process's
//! statement of the same name. So named statements are used only where no
//! pooler is in the way:
//!
//! - `off`: never.
//! - `auto`: not when the URL names a transaction pooler (Supabase's pooler
//!   port 6543, `pgbouncer=true`), nor when the check at connect time
//!   ([`pooler_in_the_way`]) finds that a pooler answered; otherwise yes.
//! - `on`: yes, unless that same check finds a pooler: then the service
//!   falls back to unnamed statements and says so in a warning (it cannot
//!   tell a session-mode pooler, where they would work, from a
//!   transaction-mode one, where they would mix).
//!
//! A statement the server forgot (`DISCARD ALL`, a schema change that
//! changes a result type, a statement missing after all) fails its
//! operation, which then runs once more with every cached statement
//! dropped ([`Connections::retrying`](super::connect::Connections::retrying)).
//! Failing again, or a name the server already knows (only a pooler mixing
//! sessions does that), turns named statements off for the process.

use std::future::{ready, Ready};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use deadpool_postgres::StatementCache;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row};

use super::queries::Param;
use crate::storage::StoreError;

/// Most statements a connection prepares for request-shaped SQL (see
/// [`Db::shaped`]); about 20 fixed ones come on top.
const MOST_NAMED: usize = 64;

/// Where a store operation sends its statements: a pooled connection or a
/// transaction on one, named or not.
#[derive(Clone, Copy)]
pub(super) struct Db<'a> {
    client: &'a Client,
    cache: &'a StatementCache,
    named: bool,
}

impl<'a> Db<'a> {
    pub(super) fn new(client: &'a deadpool_postgres::ClientWrapper, named: bool) -> Db<'a> {
        Db {
            client,
            cache: &client.statement_cache,
            named,
        }
    }

    /// The statements of `tx` go through its connection, in the
    /// transaction (one session: the same server connection throughout).
    pub(super) fn tx(tx: &'a deadpool_postgres::Transaction<'_>, named: bool) -> Db<'a> {
        Db {
            client: tx.client(),
            cache: &tx.statement_cache,
            named,
        }
    }

    /// For a statement whose text depends on the request (a list's
    /// filters and sort, a time series' conditions): named only while the
    /// connection holds fewer than [`MOST_NAMED`] statements, so that a
    /// client walking through filter combinations cannot make every server
    /// session keep thousands of plans. The fixed statements (lookups,
    /// writes, `/stats`) are few and always named.
    pub(super) fn shaped(self) -> Db<'a> {
        Db {
            named: self.named && self.cache.size() < MOST_NAMED,
            ..self
        }
    }

    pub(super) async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, Error> {
        if !self.named {
            return self.client.query_typed(sql, params).await;
        }
        let (statement, values) = self.prepare(sql, params).await?;
        self.client.query(&statement, &values).await
    }

    pub(super) async fn query_opt(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, Error> {
        if !self.named {
            return self.client.query_typed_opt(sql, params).await;
        }
        let (statement, values) = self.prepare(sql, params).await?;
        self.client.query_opt(&statement, &values).await
    }

    pub(super) async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64, Error> {
        if !self.named {
            return self.client.execute_typed(sql, params).await;
        }
        let (statement, values) = self.prepare(sql, params).await?;
        self.client.execute(&statement, &values).await
    }

    /// The connection's statement for `sql` (prepared at its first use),
    /// and the values to bind to it.
    async fn prepare<'p>(
        &self,
        sql: &str,
        params: &'p [Param<'_>],
    ) -> Result<(tokio_postgres::Statement, Vec<&'p (dyn ToSql + Sync)>), Error> {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let statement = self.cache.prepare_typed(self.client, sql, &types).await?;
        Ok((statement, params.iter().map(|(v, _)| *v).collect()))
    }
}

/// Why a named statement failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stale {
    /// The server does not know it (`DISCARD ALL`, `DEALLOCATE`), or its
    /// plan no longer fits (a schema change): prepare again.
    Forgotten,
    /// Only a pooler mixing sessions causes this (a name the server already
    /// has, a statement with other parameters than ours).
    Mixed,
}

/// Whether `e` is a named statement's failure, and which.
pub(super) fn stale(e: &StoreError) -> Option<Stale> {
    match e {
        StoreError::Backend(source) => {
            let db = source.downcast_ref::<Error>()?.as_db_error()?;
            let code = db.code();
            if *code == SqlState::INVALID_SQL_STATEMENT_NAME
                || (*code == SqlState::FEATURE_NOT_SUPPORTED
                    && db
                        .message()
                        .contains("cached plan must not change result type"))
            {
                Some(Stale::Forgotten)
            } else if *code == SqlState::DUPLICATE_PSTATEMENT {
                Some(Stale::Mixed)
            } else {
                None
            }
        }
        // 08P01 is mapped to an outage; a bind that does not fit the
        // statement of that name is a pooler's doing.
        StoreError::Unavailable(text) if text.starts_with("08P01: bind message") => {
            Some(Stale::Mixed)
        }
        _ => None,
    }
}

/// Why the URL alone says named statements are unsafe, if it does.
pub(super) fn pooler_in_url(pgbouncer_param: bool, ports: &[u16]) -> Option<&'static str> {
    if pgbouncer_param {
        Some("pgbouncer=true in the URL")
    } else if ports.contains(&6543) {
        Some("port 6543, Supabase's transaction pooler")
    } else {
        None
    }
}

/// The check at connect time: whether something else than PostgreSQL
/// answered the connection. PostgreSQL hands each client the process id
/// of its backend as its cancel key; a pooler (PgBouncer, Supavisor) hands
/// out keys of its own, since it must route cancel requests itself. So
/// the key's process id is compared with `pg_backend_pid()`. The key is
/// not readable from the driver: its cancel request is written to an
/// in-memory stream instead of the network, and read back.
pub(super) async fn pooler_in_the_way(client: &Client) -> Result<bool, StoreError> {
    let key_pid = cancel_key_pid(client)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot read the cancel key: {e}")))?;
    let rows = client
        .query_typed("select pg_backend_pid()", &[])
        .await
        .map_err(super::errors::map_error)?;
    let backend: i32 = rows[0].try_get(0).map_err(StoreError::backend)?;
    Ok(backend != key_pid)
}

/// The process id of the connection's cancel key.
async fn cancel_key_pid(client: &Client) -> io::Result<i32> {
    const SSL_REQUEST: i32 = 80_877_103;
    let (ours, mut theirs) = tokio::io::duplex(64);
    let token = client.cancel_token();
    let send = async move {
        token
            .cancel_query_raw(ours, PassThrough)
            .await
            .map_err(io::Error::other)
    };
    let read = async move {
        let mut head = [0u8; 8];
        theirs.read_exact(&mut head).await?;
        let mut rest = [0u8; 8];
        if i32::from_be_bytes([head[4], head[5], head[6], head[7]]) == SSL_REQUEST {
            // "TLS, go ahead": the pass-through below is no TLS at all.
            theirs.write_all(b"S").await?;
            theirs.read_exact(&mut head).await?;
        }
        theirs.read_exact(&mut rest).await?;
        Ok::<_, io::Error>(i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]))
    };
    let (sent, pid) = tokio::join!(send, read);
    sent?;
    pid
}

/// A "TLS" connector that leaves the stream as it is, for the in-memory
/// cancel request of [`cancel_key_pid`] (which asks for TLS when the
/// connection uses it).
struct PassThrough;

impl TlsConnect<DuplexStream> for PassThrough {
    type Stream = Plain;
    type Error = io::Error;
    type Future = Ready<io::Result<Plain>>;

    fn connect(self, stream: DuplexStream) -> Self::Future {
        ready(Ok(Plain(stream)))
    }
}

struct Plain(DuplexStream);

impl AsyncRead for Plain {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Plain {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl TlsStream for Plain {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use tokio_postgres::NoTls;

    use super::super::PostgresStore;
    use crate::domain::{Actor, Amount, NewOrder, OrderPatch, Status};
    use crate::storage::{StatementCache, Store, StoreOptions};

    /// A new database on `TEST_DATABASE_URL`'s server (a URL ending in
    /// `/dbname`, no parameters), or `None` to skip.
    async fn database(name: &str) -> Option<(tokio_postgres::Client, String)> {
        let Ok(server) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var("COMMANDES_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "COMMANDES_REQUIRE_POSTGRES=1 but TEST_DATABASE_URL is not set"
            );
            eprintln!("SKIPPED: no TEST_DATABASE_URL");
            return None;
        };
        let (admin, conn) = tokio_postgres::connect(&server, NoTls).await.unwrap();
        tokio::spawn(conn);
        let name = format!("{name}_{}", std::process::id());
        for sql in [
            format!("drop database if exists {name} with (force)"),
            format!("create database {name}"),
        ] {
            admin.batch_execute(&sql).await.unwrap();
        }
        let base = server.rsplit_once('/').unwrap().0;
        Some((admin, format!("{base}/{name}")))
    }

    fn order(order_id: &str) -> NewOrder {
        NewOrder {
            order_id: order_id.into(),
            customer_id: "C".into(),
            status: Status::Pending,
            total_amount: Amount::from_cents(100).unwrap(),
        }
    }

    /// On a direct connection `auto` names statements; after `DISCARD ALL`
    /// on the service's own connection (what a session pooler's reset or
    /// an operator does), every operation still works: the forgotten
    /// statements are prepared again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_the_server_forgot_is_prepared_again() {
        let Some((admin, url)) = database("commandes_unit_discard").await else {
            return;
        };
        let options = StoreOptions {
            pool_size: 1,
            statement_cache: StatementCache::Auto,
            ..StoreOptions::default()
        };
        let store = PostgresStore::open(&url, &options).await.unwrap();
        store.migrate().await.unwrap();
        assert!(
            store.connections.named(),
            "auto names statements on a direct connection"
        );
        let actor = Actor::system();
        let created = store.create(&order("D-1"), None, &actor).await.unwrap();
        store.get(created.order.id, &actor).await.unwrap();
        {
            let client = store.connections.client().await.unwrap();
            assert!(client.statement_cache.size() > 0, "statements were cached");
            client.batch_execute("discard all").await.unwrap();
        }
        store.get(created.order.id, &actor).await.unwrap();
        let patch = OrderPatch {
            status: Some(Status::Processing),
            ..OrderPatch::default()
        };
        let updated = store.update(created.order.id, &patch, None, &actor).await;
        assert_eq!(updated.unwrap().order.status, Status::Processing);
        // Once more, with the statements of a change forgotten this time.
        store
            .connections
            .client()
            .await
            .unwrap()
            .batch_execute("discard all")
            .await
            .unwrap();
        store.delete(created.order.id, None, &actor).await.unwrap();
        store.create(&order("D-2"), None, &actor).await.unwrap();
        assert!(
            store.connections.named(),
            "still named: a forgotten statement is no pooler"
        );
        store.close().await;
        drop(store);
        let name = url.rsplit_once('/').unwrap().1;
        admin
            .batch_execute(&format!("drop database {name} with (force)"))
            .await
            .unwrap();
    }
}
