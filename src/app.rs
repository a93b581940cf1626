//! Start-up and shutdown of the server.
//!
//! [`build`] opens and migrates the store, loads the demo data into a new
//! database, and binds the listener, so the real address is known before
//! anything is served (tests bind port 0). [`App::run`] serves until the
//! shutdown future completes, lets in-flight requests finish within a
//! deadline, and closes the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{NaiveTime, Utc};
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use poem::Server;

use crate::api::auth::{jwks, Authenticator, JwtVerifier, Scopes};
use crate::api::{self, HttpSettings, Tokens};
use crate::config::{AuthSettings, DemoData, Settings};
use crate::domain::demo::demo_orders;
use crate::storage::{self, Backend, Store, StoreOptions};

/// A bound, ready-to-run server.
pub struct App {
    acceptor: TcpAcceptor,
    addr: SocketAddr,
    store: Arc<dyn Store>,
    http: HttpSettings,
    shutdown_timeout: Duration,
    cleanup_interval: Duration,
    idle_timeout: Duration,
    /// The JWKS refreshed in the background, and how often.
    jwks: Option<(Arc<jwks::Jwks>, Duration)>,
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
    }
}

/// Opens the store and applies its migrations; loads the demo set into a
/// database this call created, when the settings ask for it.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = storage::open(&settings.database.url, &store_options(settings)).await?;
    crate::telemetry::prometheus();
    let store: Arc<dyn Store> = Arc::new(storage::metered::MeteredStore::new(store));
    let report = store.migrate().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot migrate the database: {}",
            crate::error::error_chain(&e)
        )
    })?;
    if report.from != report.to {
        tracing::info!(from = report.from, to = report.to, "database migrated");
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

/// Deletes expired idempotency keys now and then, off the request path: in
/// batches, so no request waits behind one long delete.
async fn purge_expired_keys(store: Arc<dyn Store>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        loop {
            match store.purge_expired_keys(crate::domain::now()).await {
                Ok(n) if n >= 1000 => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(deleted = n, "expired idempotency keys deleted");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete expired idempotency keys");
                    break;
                }
            }
        }
    }
}

/// Opens the store and binds the listener.
pub async fn build(settings: &Settings) -> anyhow::Result<App> {
    let store = open_store(settings).await?;
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
    let address = format!("{}:{}", settings.server.host, settings.server.port);
    let acceptor = TcpListener::bind(address.clone())
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .context("the listener has no address")?;
    Ok(App {
        acceptor,
        addr,
        store,
        http: HttpSettings {
            auth,
            max_body_bytes: settings.server.max_body_bytes,
            metrics_token: (!settings.metrics.token.is_empty())
                .then(|| Tokens::new([&settings.metrics.token])),
            cors: settings.cors.clone(),
            idempotency_ttl: Duration::from_secs(settings.idempotency.ttl_secs),
        },
        cleanup_interval: Duration::from_secs(settings.idempotency.cleanup_interval_secs),
        idle_timeout: Duration::from_secs(settings.server.idle_timeout_secs),
        shutdown_timeout: Duration::from_secs(settings.server.shutdown_timeout_secs),
        jwks,
        generated_token,
    })
}

/// The static tokens and the JWT verifier the settings describe. A JWKS
/// file must be readable at start-up; a JWKS URL that does not answer is
/// logged and retried in the background, and the service starts anyway.
pub async fn authenticator(settings: &AuthSettings) -> anyhow::Result<Authenticator> {
    let mut auth = Authenticator {
        tokens: Tokens::new(&settings.tokens),
        read_tokens: Tokens::new(&settings.read_tokens),
        jwt: None,
    };
    if !settings.jwt_enabled() {
        return Ok(auth);
    }
    let timeout = Duration::from_secs(settings.jwks_timeout_secs);
    let source = if !settings.jwks_url.is_empty() {
        Some(jwks::Source::Url(settings.jwks_url.clone()))
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
        secret: text(&settings.jwt_secret).map(String::into_bytes),
        jwks: keys,
        issuer: text(&settings.jwt_issuer),
        audience: text(&settings.jwt_audience),
        leeway_secs: settings.clock_skew_secs,
        authenticated: Scopes::of(&settings.authenticated_scopes),
        anon: Scopes::of(&settings.anon_scopes),
        anonymous_users_as_authenticated: settings.anonymous_users_as_authenticated,
        customer_claim: text(&settings.customer_claim),
    })?));
    Ok(auth)
}

impl App {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store being served.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let routes = api::routes(self.store.clone(), self.http);
        let cleanup = tokio::spawn(purge_expired_keys(
            self.store.clone(),
            self.cleanup_interval,
        ));
        let upkeep = tokio::spawn(crate::telemetry::upkeep(Duration::from_secs(1)));
        let refresher = self.jwks.map(|(keys, every)| keys.spawn_refresher(every));
        // A connection with no traffic for this long is closed, so idle and
        // stalled clients do not hold sockets forever; each connection has
        // its own task, so a slow one never delays the others.
        let served = Server::new_with_acceptor(self.acceptor)
            .idle_timeout(self.idle_timeout)
            .run_with_graceful_shutdown(routes, shutdown, Some(self.shutdown_timeout))
            .await;
        cleanup.abort();
        upkeep.abort();
        if let Some(r) = refresher {
            r.abort();
        }
        self.store.close().await;
        served?;
        tracing::info!("stopped");
        Ok(())
    }
}
