//! Start-up and shutdown of the server.
//!
//! [`build`] opens and migrates the store, loads the demo data into a new
//! database, builds the routes and binds the listener, so the real address
//! is known before anything is served (tests bind port 0), and a client that
//! connects as soon as it is announced is answered at once. [`App::run`] serves until the
//! shutdown future completes, lets in-flight requests finish within a
//! deadline, and closes the store.
//!
//! A server of a SQLite file holds the file's shared lock
//! ([`crate::backup::lock::DatabaseLock`]) from before the store opens
//! until the store's threads have ended, so `commandes restore` refuses
//! to run meanwhile, and a server cannot start in the middle of one.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveTime, Utc};
use poem::EndpointExt;

use crate::access::Permissions;
use crate::api::auth::{jwks, Authenticator, JwtVerifier};
use crate::api::{self, HttpSettings, Tokens};
use crate::backup::lock::DatabaseLock;
use crate::backup::Backups;
use crate::config::{AuthSettings, DemoData, EventsSettings, Settings};
use crate::domain::demo::demo_orders;
use crate::metrics_server::MetricsListener;
use crate::relay::RelayConfig;
use crate::secret::Secret;
use crate::storage::{self, Backend, DatabaseUrl, Store, StoreOptions};

/// A bound, ready-to-run server.
pub struct App {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    /// The listener of `server.metrics_address`, when set.
    metrics_listener: Option<MetricsListener>,
    store: Arc<dyn Store>,
    /// The routes, built before the address is announced: a client that
    /// connects as soon as it is known is answered without waiting for the
    /// OpenAPI document to be built.
    routes: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    shutdown_timeout: Duration,
    cleanup_interval: Duration,
    /// Connection limits: head and idle timeouts, connection and stream caps.
    limits: crate::server::Limits,
    /// The JWKS refreshed in the background, and how often.
    jwks: Option<(Arc<jwks::Jwks>, Duration)>,
    events: crate::config::EventsSettings,
    /// The broker relay, when `events.relay_url` names one.
    relay: Option<RelayConfig>,
    /// Ends the long polls of `GET /events` and the event streams when the
    /// server stops.
    stop_long_polls: tokio::sync::watch::Sender<bool>,
    /// The event streams' shared reader.
    hub: Arc<api::stream::Hub>,
    /// The backups of the SQLite file (`None`: PostgreSQL or memory).
    backups: Option<Arc<Backups>>,
    /// How often the server takes a backup (`None`: never).
    backup_every: Option<Duration>,
    /// Held until the store's threads have ended (SQLite file only).
    database_lock: Option<DatabaseLock>,
    /// The token generated at start-up when none was configured.
    pub generated_token: Option<String>,
}

/// The store options the settings describe.
pub fn store_options(settings: &Settings) -> StoreOptions {
    StoreOptions {
        pool_size: settings.database.pool_size,
        connect_timeout: Duration::from_secs(settings.database.connect_timeout_secs),
        busy_timeout: Duration::from_millis(settings.database.busy_timeout_ms),
        sqlite_synchronous: settings.database.sqlite_synchronous,
        ca_file: (!settings.database.ca_file.is_empty())
            .then(|| settings.database.ca_file.clone().into()),
        statement_timeout: (settings.database.statement_timeout_secs > 0)
            .then(|| Duration::from_secs(settings.database.statement_timeout_secs)),
        startup_timeout: Duration::from_secs(settings.database.startup_timeout_secs),
        sqlite_read_queue: settings.database.sqlite_read_queue,
        sqlite_write_queue: settings.database.sqlite_write_queue,
        statement_cache: settings.database.statement_cache,
    }
}

/// Opens the store and applies its migrations; loads the demo set into a
/// database this call created, when the settings ask for it. With
/// `database.migration_url` (serving through a transaction pooler), the
/// migrations run there, on a connection of their own, and the serving
/// pool runs no DDL.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    open_store_with_signal(settings, Arc::new(tokio::sync::Notify::new())).await
}

/// [`open_store`], with `written` raised after each change that wrote
/// events (what wakes the event streams' reader).
pub async fn open_store_with_signal(
    settings: &Settings,
    written: Arc<tokio::sync::Notify>,
) -> anyhow::Result<Arc<dyn Store>> {
    let options = store_options(settings);
    let report = match &settings.database.migration_url {
        None => None,
        Some(url) => Some(migrate_at(url, &options).await?),
    };
    let store = storage::open(&settings.database.url, &options).await?;
    crate::prometheus::handle();
    // Both backends: PostgreSQL cancels the statement, SQLite interrupts it.
    let store: Arc<dyn Store> = Arc::new(
        storage::metered::MeteredStore::new(store)
            .with_statement_timeout(options.statement_timeout)
            .with_write_signal(written),
    );
    let report = match report {
        Some(report) => report,
        None => store.migrate().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot migrate the database: {}",
                crate::error_chain::distinct_chain(&e)
            )
        })?,
    };
    if report.from != report.to {
        tracing::info!(from = report.from, to = report.to, "database migrated");
    }
    // A schema that a later release has contracted: this build still
    // starts (so the orchestrator sees why), and readiness answers 503 with
    // the same reason, keeping it out of rotation.
    let state = storage::SchemaState {
        version: report.to,
        compatible_from: report.compatible_from,
    };
    if let Err(mismatch) = state.verdict(store.backend().history()) {
        tracing::warn!(reason = %mismatch, "this build may not serve the database");
    }
    let wanted = match settings.database.demo_data {
        DemoData::Always => true,
        DemoData::Auto => store.backend() == Backend::Sqlite,
        DemoData::Never => false,
    };
    if wanted && report.from == 0 {
        let today = Utc::now().date_naive().and_time(NaiveTime::MIN).and_utc();
        let n = store
            .insert_historical(&demo_orders(today))
            .await
            .map_err(|e| anyhow::anyhow!("cannot load the demo data: {e}"))?;
        tracing::info!(orders = n, "demo data loaded");
    }
    Ok(store)
}

/// Applies the migrations through `url` (one connection, closed after).
pub async fn migrate_at(
    url: &DatabaseUrl,
    options: &StoreOptions,
) -> anyhow::Result<storage::MigrationReport> {
    let mut options = options.clone();
    options.pool_size = 1;
    let store = storage::open(url, &options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the migration database {url}: {e:#}"))?;
    let report = store.migrate().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot migrate the database: {}",
            crate::error_chain::distinct_chain(&e)
        )
    });
    store.close().await;
    report
}

/// The lock a server holds on its SQLite file, taken before the store
/// opens it; `None` for PostgreSQL and memory. Refused while a restore
/// runs.
pub fn lock_database(url: &DatabaseUrl) -> anyhow::Result<Option<DatabaseLock>> {
    let DatabaseUrl::SqliteFile(path) = url else {
        return Ok(None);
    };
    match DatabaseLock::shared(path) {
        Ok(lock) => Ok(Some(lock)),
        Err(crate::backup::Error::InUse(_)) => anyhow::bail!(
            "{}: a restore of this database is running; start the server once it has finished",
            path.display()
        ),
        Err(e) => Err(anyhow::Error::new(e).context("cannot take the database's lock file")),
    }
}

/// The backups the settings describe for the database at `url`; `None`
/// unless it is a SQLite file.
pub fn backups(settings: &Settings) -> anyhow::Result<Option<Backups>> {
    let DatabaseUrl::SqliteFile(path) = &settings.database.url else {
        return Ok(None);
    };
    let b = &settings.backup;
    Ok(Some(Backups::new(
        path,
        &b.dir_for(path),
        b.keep,
        b.s3().as_ref(),
    )?))
}

/// Opens the store and binds the listener.
pub async fn build(settings: &Settings) -> anyhow::Result<App> {
    let database_lock = lock_database(&settings.database.url)?;
    let written = Arc::new(tokio::sync::Notify::new());
    let store = open_store_with_signal(settings, written.clone()).await?;
    let hub = Arc::new(api::stream::Hub::new(
        store.clone(),
        written,
        Duration::from_millis(settings.events.stream_poll_ms),
    ));
    let backups = backups(settings)?.map(Arc::new);
    let mut generated_token = None;
    let mut auth = authenticator(&settings.auth).await?;
    if settings.auth.nothing_configured() {
        let token = api::auth::generate_token();
        auth.tokens = Tokens::new([token.as_str()]);
        generated_token = Some(token);
    }
    let jwks = auth
        .jwt
        .as_ref()
        .and_then(|j| j.jwks())
        .map(|j| (j, Duration::from_secs(settings.auth.jwks_refresh_secs)));
    let (stop_long_polls, stopping) = api::events::Stopping::new();
    let address = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = tokio::net::TcpListener::bind(address.as_str())
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    let metrics_listener = match settings.server.metrics_address() {
        Some(address) => Some(MetricsListener::bind(address).await?),
        None => None,
    };
    Ok(App {
        listener,
        addr,
        metrics_listener,
        store: store.clone(),
        routes: api::routes(
            store.clone(),
            HttpSettings {
                auth,
                max_body_bytes: settings.server.max_body_bytes,
                body_timeout: Duration::from_secs(settings.server.body_timeout_secs),
                metrics_token: (!settings.metrics.token.is_empty())
                    .then(|| Tokens::new([settings.metrics.token.expose()])),
                cors: api::CorsOptions {
                    allowed_origins: settings.cors.allowed_origins.clone(),
                    allowed_methods: settings.cors.allowed_methods.clone(),
                    allowed_headers: settings.cors.allowed_headers.clone(),
                    max_age_secs: settings.cors.max_age_secs,
                },
                idempotency_ttl: Duration::from_secs(settings.idempotency.ttl_secs),
                max_skip: settings.server.max_skip,
                events: api::EventSettings {
                    source: settings.events.source.clone(),
                    stopping,
                    max_waiters: settings.events.max_waiters,
                    hub: hub.clone(),
                    max_streams: settings.events.max_streams,
                    stream_heartbeat: Duration::from_secs(settings.events.stream_heartbeat_secs),
                },
                backups: match &backups {
                    Some(b) => api::admin::BackupAccess::Sqlite(b.clone()),
                    None => api::admin::BackupAccess::unsupported(&settings.database.url),
                },
            },
        )
        .boxed(),
        stop_long_polls,
        hub,
        cleanup_interval: Duration::from_secs(settings.idempotency.cleanup_interval_secs),
        limits: crate::server::Limits {
            header_timeout: Duration::from_secs(settings.server.header_timeout_secs),
            idle_timeout: Duration::from_secs(settings.server.idle_timeout_secs),
            max_connections: settings.server.max_connections,
            http2_max_streams: settings.server.http2_max_streams,
        },
        events: settings.events.clone(),
        relay: relay_config(&settings.events),
        shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
        jwks,
        backup_every: backups.as_ref().and(settings.backup.interval.every()),
        backups,
        database_lock,
        generated_token,
    })
}

/// The static tokens and the JWT verifier the settings describe. A JWKS
/// file must be readable at start-up; a JWKS URL that does not answer is
/// logged and retried in the background, and the service starts anyway.
pub async fn authenticator(settings: &AuthSettings) -> anyhow::Result<Authenticator> {
    let mut auth = Authenticator {
        tokens: Tokens::new(settings.tokens.iter().map(Secret::expose)),
        read_tokens: Tokens::new(settings.read_tokens.iter().map(Secret::expose)),
        jwt: None,
    };
    if !settings.jwt_enabled() {
        return Ok(auth);
    }
    if settings.customer_claim.starts_with("user_metadata") {
        tracing::warn!(
            claim = %settings.customer_claim,
            "the customer claim is read from user_metadata, which Supabase users can edit \
             themselves: any signed-in user could name any customer and see their orders; \
             put the customer id in app_metadata (set by the server only) and use \
             app_metadata.customer_id"
        );
    }
    let timeout = Duration::from_secs(settings.jwks_timeout_secs);
    let source = if let Some(url) = &settings.jwks_url {
        Some(jwks::Source::Url(url.clone()))
    } else if !settings.jwks_file.is_empty() {
        Some(jwks::Source::File(settings.jwks_file.clone().into()))
    } else {
        None
    };
    let keys = match source {
        Some(source) => {
            let keys = Arc::new(jwks::Jwks::new(source.clone(), timeout)?);
            match keys.refresh().await {
                Ok(n) => tracing::info!(source = %source, keys = n, "JWKS loaded"),
                Err(reason) if matches!(source, jwks::Source::File(_)) => {
                    anyhow::bail!("cannot load the JWKS file: {reason}")
                }
                Err(reason) => tracing::warn!(
                    source = %source, %reason,
                    "cannot fetch the JWKS; starting anyway, JWTs are refused until it answers"
                ),
            }
            Some(keys)
        }
        None => None,
    };
    let text = |s: &str| (!s.is_empty()).then(|| s.to_string());
    auth.jwt = Some(Arc::new(JwtVerifier::new(api::auth::jwt::JwtConfig {
        secret: settings.jwt_secret.clone(),
        jwks: keys,
        issuer: text(&settings.jwt_issuer),
        audience: text(&settings.jwt_audience),
        leeway_secs: settings.clock_skew_secs,
        authenticated: Permissions::of(&settings.authenticated_scopes),
        anon: Permissions::of(&settings.anon_scopes),
        anonymous_users_as_authenticated: settings.anonymous_users_as_authenticated,
        customer_claim: text(&settings.customer_claim),
    })?));
    Ok(auth)
}

/// The relay the `[events]` settings ask for; `None` when none is
/// configured (the URL was parsed when the settings were loaded).
fn relay_config(s: &EventsSettings) -> Option<RelayConfig> {
    Some(RelayConfig {
        url: s.relay_url.clone()?,
        name: s.relay_name.clone(),
        source: s.source.clone(),
        nats_stream: s.nats_stream.clone(),
        nats_subject_prefix: s.nats_subject_prefix.clone(),
        amqp_exchange: s.amqp_exchange.clone(),
        batch: s.relay_batch,
        lease: Duration::from_secs(s.relay_lease_secs),
        timeout: Duration::from_millis(s.relay_timeout_ms),
        poll: Duration::from_millis(s.relay_poll_ms),
    })
}

impl App {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of the metrics listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(MetricsListener::local_addr)
    }

    /// The store being served.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The backups of the SQLite file being served (`None`: PostgreSQL or
    /// memory).
    pub fn backups(&self) -> Option<Arc<Backups>> {
        self.backups.clone()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let cleanup = tokio::spawn(crate::jobs::purge_expired_keys(
            self.store.clone(),
            self.cleanup_interval,
        ));
        let upkeep = tokio::spawn(crate::prometheus::upkeep(Duration::from_secs(1)));
        // The metrics listener outlives the main one's drain (a scrape then
        // shows it), and stops once the main listener has.
        let (stop_metrics, metrics_stopping) = tokio::sync::oneshot::channel::<()>();
        let metrics_server = self.metrics_listener.map(|listener| {
            let stopping = async move {
                let _ = metrics_stopping.await;
            };
            tokio::spawn(listener.serve(self.store.clone(), stopping))
        });
        let refresher = self.jwks.map(|(keys, every)| keys.spawn_refresher(every));
        let sequencer = tokio::spawn(crate::jobs::sequence_events(
            self.store.clone(),
            Duration::from_millis(self.events.sequence_interval_ms),
        ));
        let hub = tokio::spawn(self.hub.run());
        let relay_config = self.relay;
        let (stop_backups, backups_stopping) = tokio::sync::watch::channel(false);
        let backup_job = match (&self.backups, self.backup_every) {
            (Some(backups), Some(every)) => {
                tracing::info!(
                    every_ms = crate::log_text::millis(every),
                    dir = %backups.dir().display(),
                    bucket = backups.bucket().is_some(),
                    "scheduled backups"
                );
                Some(tokio::spawn(crate::jobs::take_backups(
                    backups.clone(),
                    every,
                    backups_stopping,
                )))
            }
            _ => None,
        };
        let retention = tokio::spawn(crate::jobs::purge_events(
            self.store.clone(),
            self.events.retention_days,
            Duration::from_secs(self.events.purge_interval_secs),
            relay_config.as_ref().map(|r| r.name.clone()),
        ));
        // The relay is told to stop once the server has stopped, finishes
        // the batch in flight (bounded by its timeout) and gives up its
        // lease before the store closes.
        let (stop_relay, relay_stopping) = tokio::sync::watch::channel(false);
        let relay = relay_config.map(|config| {
            tokio::spawn(crate::relay::run(
                self.store.clone(),
                config,
                relay_stopping,
            ))
        });
        // Slow, idle and surplus connections are bounded by the limits (see
        // `server`); each connection has its own task, so a slow one never
        // delays the others. Long polls answer as soon as the shutdown
        // starts, instead of holding it for up to their `wait`.
        let stop_long_polls = self.stop_long_polls;
        let shutdown = async move {
            shutdown.await;
            let _ = stop_long_polls.send(true);
        };
        let served = crate::server::serve(
            self.listener,
            self.routes,
            self.limits,
            shutdown,
            self.shutdown_timeout,
        )
        .await;
        let _ = stop_metrics.send(());
        if let Some(metrics_server) = metrics_server {
            if let Ok(Err(e)) = metrics_server.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        cleanup.abort();
        upkeep.abort();
        if let Some(r) = refresher {
            r.abort();
        }
        sequencer.abort();
        retention.abort();
        hub.abort();
        // A backup under way finishes (its upload and rotation too), within
        // the deadline.
        let _ = stop_backups.send(true);
        if let Some(mut job) = backup_job {
            if tokio::time::timeout(self.shutdown_timeout, &mut job)
                .await
                .is_err()
            {
                tracing::warn!("the backup under way did not finish in time; it is abandoned");
                job.abort();
            }
        }
        let _ = stop_relay.send(true);
        if let Some(mut relay) = relay {
            if tokio::time::timeout(self.shutdown_timeout, &mut relay)
                .await
                .is_err()
            {
                tracing::warn!("the event relay did not stop in time");
                relay.abort();
            }
        }
        // For SQLite, this returns once the store's threads have closed
        // their connections; the lock file is released after (with self).
        self.store.close().await;
        drop(self.database_lock);
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}
