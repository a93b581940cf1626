//! Connections to PostgreSQL: the pool, waiting for the database at
//! start-up, and the pooled connection every store operation runs on.
//!
//! Kept apart from the queries because a connection has a life of its own:
//! at start-up a database that is down, starting or full is waited for
//! (see [`Connections::open`]), and under a statement deadline a
//! connection whose query is cancelled is closed instead of going back to
//! the pool ([`Conn`]). Cancel requests open a connection of their own,
//! with the same TLS settings as the pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::errors::{classify, classify_pool_error, map_pool_error, Probe};
use super::statements::{self, Db, Stale};
use super::tls;
use crate::storage::{deadline, PoolStatus, StatementCache, StoreError, StoreOptions};

/// The pool of one database, and what a cancel request needs to reach it.
pub(super) struct Connections {
    pool: Pool,
    /// For cancel requests, which open a connection of their own.
    tls: Option<tls::Connector>,
    /// Whether statements are named (see [`statements`]): decided at
    /// open, turned off for good when a pooler is found mixing them.
    named: AtomicBool,
}

impl Connections {
    /// Builds the pool and waits for the database, for at most
    /// [`StoreOptions::startup_timeout`] (see [`Self::wait_for_database`]).
    pub(super) async fn open(url: &str, options: &StoreOptions) -> anyhow::Result<Connections> {
        // The libpq TLS parameters come out of the URL first: tokio-postgres
        // refuses `verify-full` and `sslrootcert`.
        let target = tls::prepare(url, options.ca_file.as_deref())?;
        tracing::debug!(tls = %target.summary, "database connection");
        let url_pooler = statements::pooler_in_url(target.pgbouncer, target.config.get_ports());
        let mut config = target.config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("commandes");
        }
        config.keepalives(true);
        let manager_config = ManagerConfig {
            // `Fast` sends nothing on checkout, and works through a
            // transaction pooler (`Clean` would send `DISCARD ALL`). A
            // connection the server or the pooler closed is seen closed
            // (`is_closed`) and replaced; one broken mid-query fails that
            // query (503) and is then replaced the same way.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match target.tls.clone() {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()?;
        let connections = Connections {
            pool,
            tls: target.tls,
            named: AtomicBool::new(false),
        };
        connections
            .wait_for_database(options.startup_timeout, options.connect_timeout)
            .await?;
        let named = connections
            .decide_naming(options.statement_cache, url_pooler)
            .await;
        connections.named.store(named, Ordering::Relaxed);
        Ok(connections)
    }

    /// Whether to name statements, per `database.statement_cache` (the
    /// rules are in [`statements`]), logged with the reason.
    async fn decide_naming(&self, setting: StatementCache, url_pooler: Option<&str>) -> bool {
        let (named, why) = match (setting, url_pooler) {
            (StatementCache::Off, _) => (false, "database.statement_cache = off".to_string()),
            (StatementCache::Auto, Some(why)) => (false, why.to_string()),
            (_, _) => match self.check_pooler().await {
                Ok(false) => (true, "the server answered directly".to_string()),
                Ok(true) => {
                    let why = "a connection pooler answered (its cancel key is not the \
                               server's process id)";
                    if setting == StatementCache::On {
                        tracing::warn!(
                            "database.statement_cache = on, but {why}: named statements could \
                             mix through a transaction pooler, so they stay off"
                        );
                    }
                    (false, why.to_string())
                }
                Err(e) => (false, format!("the pooler check failed: {e}")),
            },
        };
        tracing::info!(named, reason = %why, "statement cache");
        named
    }

    async fn check_pooler(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await.map_err(map_pool_error)?;
        statements::pooler_in_the_way(&client).await
    }

    /// Runs `op`, and once more when a named statement failed because the
    /// server forgot it (every cached statement is dropped first, so the
    /// second run prepares them again). Failing that way twice, or in a way
    /// only a pooler mixing sessions causes, turns naming off for the
    /// process before a last run: never a 500 for a statement cache.
    pub(super) async fn retrying<T, F, Fut>(&self, op: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>>,
    {
        let mut forgotten = 0;
        loop {
            let result = op().await;
            let Err(e) = &result else { return result };
            let stale = match statements::stale(e) {
                Some(stale) if self.named.load(Ordering::Relaxed) => stale,
                _ => return result,
            };
            forgotten += 1;
            if stale == Stale::Mixed || forgotten > 1 {
                self.named.store(false, Ordering::Relaxed);
                tracing::warn!(
                    error = %crate::error_chain::error_chain(e),
                    "named statements keep failing (a transaction pooler?): unnamed from now on"
                );
            } else {
                tracing::info!(
                    error = %crate::error_chain::error_chain(e),
                    "the server forgot a named statement: preparing again"
                );
            }
            self.pool.manager().statement_caches.clear();
        }
    }

    /// Whether statements are named now.
    pub(super) fn named(&self) -> bool {
        self.named.load(Ordering::Relaxed)
    }

    /// Connects and runs `select 1` until it works, for at most `limit`,
    /// with exponential backoff (0.25 s doubling to 5 s). Only the failures
    /// that pass by themselves are retried.
    async fn wait_for_database(&self, limit: Duration, per_try: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        for attempt in 1u32.. {
            let reason = match self.probe(per_try).await {
                Ok(()) => {
                    if attempt > 1 {
                        tracing::info!(
                            attempts = attempt,
                            waited_ms = crate::log_text::millis(started.elapsed()),
                            "the database is reachable"
                        );
                    }
                    return Ok(());
                }
                Err(Probe::Fatal(reason)) => {
                    anyhow::bail!("cannot connect to the database: {reason}")
                }
                Err(Probe::Transient(reason)) => reason,
            };
            let left = limit.saturating_sub(started.elapsed());
            if left.is_zero() {
                if limit.is_zero() {
                    anyhow::bail!("cannot connect to the database: {reason}");
                }
                anyhow::bail!(
                    "the database did not become reachable within {} s ({attempt} attempts; \
                     database.startup_timeout_secs): {reason}",
                    limit.as_secs()
                );
            }
            let pause = delay.min(left);
            tracing::warn!(
                attempt,
                retry_in_ms = crate::log_text::millis(pause),
                gives_up_in_ms = crate::log_text::millis(left),
                reason = %reason,
                "waiting for the database"
            );
            tokio::time::sleep(pause).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        unreachable!("the loop returns")
    }

    /// One connection attempt and one statement (through a pooler, the
    /// connection alone proves nothing about the database behind it).
    async fn probe(&self, limit: Duration) -> Result<(), Probe> {
        let client = self.pool.get().await.map_err(classify_pool_error)?;
        let guard = Conn::new(client);
        match tokio::time::timeout(limit, guard.query_typed("select 1", &[])).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                guard.discard();
                Err(classify(&e))
            }
            Err(_) => {
                guard.discard();
                cancel(self.tls.clone(), guard.cancel_token());
                Err(Probe::Transient(format!(
                    "no answer within {} s",
                    limit.as_secs_f32()
                )))
            }
        }
    }

    /// A pooled connection for one store operation. Under a deadline
    /// ([`deadline`]), the connection signs up with it: on expiry its
    /// query is cancelled on the server (PgBouncer and Supavisor pass cancel
    /// requests on) and the connection is closed rather than reused, since
    /// its state is unknown.
    pub(super) async fn client(&self) -> Result<Conn, StoreError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map(Conn::new)
            .map_err(map_pool_error)?;
        conn.named = self.named();
        if let Some(scope) = deadline::current() {
            let (tls, token, held) = (self.tls.clone(), conn.cancel_token(), conn.held.clone());
            scope.on_expiry(Box::new(move || {
                // Only while the operation still holds it: an operation
                // may take several connections in turn, and one given back
                // may already serve another request.
                if held.load(Ordering::Acquire) {
                    cancel(tls, token);
                }
            }));
            conn.broken_when(scope);
        }
        Ok(conn)
    }

    /// The pool's figures, for the metrics.
    pub(super) fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
            max_size: s.max_size,
        }
    }

    /// Closes the pool: no connection is handed out afterwards.
    pub(super) fn close(&self) {
        self.pool.close();
    }
}

/// Sends a cancel request for `token`'s connection, in the background.
fn cancel(tls: Option<tls::Connector>, token: tokio_postgres::CancelToken) {
    tokio::spawn(async move {
        let sent = match tls {
            Some(tls) => token.cancel_query(tls).await,
            None => token.cancel_query(NoTls).await,
        };
        if let Err(e) = sent {
            tracing::warn!(error = %crate::error_chain::error_chain(&e), "cannot send a cancel request");
        }
    });
}

/// A pooled connection that goes back to the pool when dropped, unless it
/// was marked broken or its operation's deadline expired (then it is
/// closed).
pub(super) struct Conn {
    object: Option<Object>,
    broken: AtomicBool,
    deadline: Option<Arc<deadline::TimedOperation>>,
    /// Until dropped: whether the operation still holds it.
    held: Arc<AtomicBool>,
    /// Whether its statements are named (the pool's choice at checkout).
    named: bool,
}

impl Conn {
    fn new(object: Object) -> Conn {
        Conn {
            object: Some(object),
            broken: AtomicBool::new(false),
            deadline: None,
            held: Arc::new(AtomicBool::new(true)),
            named: false,
        }
    }

    /// Its statements, outside a transaction.
    pub(super) fn db(&self) -> Db<'_> {
        Db::new(self, self.named)
    }

    /// Whether its statements are named: taken before a transaction
    /// borrows it, for [`Db::tx`].
    pub(super) fn named(&self) -> bool {
        self.named
    }

    fn broken_when(&mut self, scope: Arc<deadline::TimedOperation>) {
        self.deadline = Some(scope);
    }

    fn discard(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl std::ops::Deref for Conn {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.object.as_ref().expect("present until dropped")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Object {
        self.object.as_mut().expect("present until dropped")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.held.store(false, Ordering::Release);
        let expired = self.deadline.as_ref().is_some_and(|d| d.expired());
        if expired || self.broken.load(Ordering::Relaxed) {
            if let Some(object) = self.object.take() {
                // Out of the pool; dropping the client closes the connection.
                drop(Object::take(object));
            }
        }
    }
}
