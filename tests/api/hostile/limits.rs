//! Hostile clients against the service's limits: floods of readiness
//! probes, of reads and of long polls, deep `skip`, and statements past the
//! deadline. Everything runs against 127.0.0.1, bounded in count and time.
//!
//! The floods run the real binary as a child process, so that its resident
//! memory can be read (`/proc/PID/status`) and its metrics are its own.
//! The bounds stated here are generous on purpose (the suite shares a
//! loaded machine): a legitimate request answers within 1 s during and
//! after a flood (normally a few milliseconds), and the resident memory
//! grows by less than 64 MiB.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commandes::domain::generate::Spec;
use commandes::domain::{ListFilter, SortKey};
use commandes::storage::{self, OnConflict, Store, StoreError, StoreOptions};
use reqwest::StatusCode;
use serde_json::Value;

use crate::observability::readiness_calls_in;
use crate::process::{commandes, serve, terminate, Served};
use crate::support::{problem, Backend, TestApp, TestDatabase, TOKEN};

/// How long a legitimate request may take during a flood.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);
/// How much the resident memory may grow over a flood.
const RSS_GROWTH: u64 = 64 * 1024 * 1024;

/// The binary serving a fresh database, with `env` on top of our settings.
struct Service {
    served: Served,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

impl Service {
    /// Starts the service; `orders` synthetic orders are loaded first.
    /// `None` when PostgreSQL is not available (and not required).
    async fn start(backend: Backend, orders: u64, env: &[(&str, &str)]) -> Option<Service> {
        let dir = tempfile::tempdir().unwrap();
        let (url, database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("hostile.db").display()),
                None,
            ),
            _ => {
                let db = TestDatabase::create().await?;
                (db.url.clone(), Some(db))
            }
        };
        load(&url, orders).await;
        let mut cmd = commandes(dir.path());
        cmd.env("COMMANDES_DATABASE_URL", &url)
            .env("COMMANDES_API_TOKENS", TOKEN)
            .env("COMMANDES_LOG_FORMAT", "json")
            .args(["serve", "--no-demo-data"]);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let served = tokio::task::spawn_blocking(move || serve(&mut cmd, false))
            .await
            .unwrap();
        Some(Service {
            served,
            client: reqwest::Client::new(),
            _dir: dir,
            _database: database,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.served.base())
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// The process's resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.served.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// An authenticated read of order 1, which must answer 200 within
    /// [`ANSWER_WITHIN`]; returns how long it took.
    async fn legitimate_read(&self) -> Duration {
        let t = Instant::now();
        let r = self.get("/commandes/1").await;
        let took = t.elapsed();
        assert_eq!(r.status(), 200, "a legitimate read");
        assert!(took < ANSWER_WITHIN, "a legitimate read took {took:?}");
        took
    }

    fn stop(self) {
        let (clean, logs) = terminate(self.served);
        assert!(clean, "{logs}");
    }
}

/// Creates and migrates the database at `url` and loads `orders`
/// synthetic orders (ids from 1), with the service's own code.
async fn load(url: &str, orders: u64) {
    load_for(url, orders, (orders / 10).max(1)).await;
}

/// [`load`], the orders spread over `customers` customers.
async fn load_for(url: &str, orders: u64, customers: u64) {
    let store = storage::open(&url.parse().unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    if orders > 0 {
        let end = chrono::Utc::now();
        let mut spec = Spec::new(orders, 7, end);
        spec.customers = customers;
        let outcome = commandes::transfer::generate::into_store(
            store.as_ref(),
            spec,
            OnConflict::Fail,
            false,
        )
        .await
        .unwrap();
        assert!(outcome.committed);
    }
    store.close().await;
}

/// Checks a 503 of a limit: problem+json, `Retry-After`, nothing internal.
async fn assert_limit_503(r: reqwest::Response, what: &str) -> Value {
    crate::support::unavailable_problem(
        r,
        what,
        &["sqlite", "postgres", "channel", "queue full", "panic"],
    )
    .await
}

/// Reads order 1 every 100 ms until `done`, each within [`ANSWER_WITHIN`]
/// (run beside a flood); returns how many reads there were.
fn read_alongside(service: Arc<Service>, done: Arc<AtomicBool>) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut reads = 0;
        while !done.load(Ordering::Relaxed) {
            service.legitimate_read().await;
            reads += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reads
    })
}

// ---------------------------------------------------------------------------
// (a) A readiness flood

/// 3,000 `/health/ready` from 8 connections: the database sees about one
/// readiness call a second, an authenticated read answers within 1 s all
/// along, and memory stays flat.
async fn a_readiness_flood_costs_one_database_call_a_second(backend: Backend) {
    let Some(service) = Service::start(backend, 1000, &[]).await else {
        return;
    };
    let service = Arc::new(service);
    service.legitimate_read().await;
    let scrape = service.get("/metrics").await.text().await.unwrap();
    let calls_before = readiness_calls_in(&scrape);
    let rss_before = service.rss();

    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let reader = read_alongside(service.clone(), done.clone());
    let probes: Vec<_> = (0..8)
        .map(|_| {
            let url = service.url("/health/ready");
            tokio::spawn(async move {
                // One keep-alive connection each.
                let client = reqwest::Client::new();
                for _ in 0..375 {
                    let r = client.get(&url).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for p in probes {
        p.await.unwrap();
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    service.legitimate_read().await;

    let scrape = service.get("/metrics").await.text().await.unwrap();
    let calls = readiness_calls_in(&scrape) - calls_before;
    assert!(
        calls as f64 <= seconds + 3.0,
        "3000 probes in {seconds:.1} s made {calls} database calls"
    );
    let grown = service.rss().saturating_sub(rss_before);
    assert!(grown < RSS_GROWTH, "RSS grew by {grown} bytes");
    println!(
        "{backend:?} readiness flood: 3000 probes in {seconds:.1} s, {calls} database calls, \
         {reads} reads alongside, RSS +{} KiB",
        grown / 1024
    );
    Arc::into_inner(service).unwrap().stop();
}

// ---------------------------------------------------------------------------
// (b) A full read queue

/// One reader connection and a read queue of 2: a burst of 240 lists from
/// 48 connections overflows it. Each list costs its reader a few
/// milliseconds (a `skip` of 10,000, the most allowed) and answers one
/// order, so the reader, not the HTTP side, is the bottleneck. Each refused
/// request gets a 503 with `Retry-After` at once (never a 500), and the
/// service then answers as before.
async fn a_full_read_queue_answers_503_at_once_and_recovers() {
    let service = Service::start(
        Backend::Sqlite,
        12_000,
        &[
            ("COMMANDES_POOL_SIZE", "1"),
            ("COMMANDES_SQLITE_READ_QUEUE", "2"),
        ],
    )
    .await
    .expect("SQLite is always available");
    let service = Arc::new(service);
    let rss_before = service.rss();
    let burst: Vec<_> = (0..48)
        .map(|_| {
            let url = service.url("/commandes?sort=updated_at&skip=10000&limit=1");
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut outcomes = Vec::new();
                for _ in 0..5 {
                    let t = Instant::now();
                    let r = match client.get(&url).bearer_auth(TOKEN).send().await {
                        Ok(r) => r,
                        Err(e) => panic!("{e:?}"),
                    };
                    let took = t.elapsed();
                    let status = r.status();
                    if status == StatusCode::SERVICE_UNAVAILABLE {
                        assert_limit_503(r, "a full read queue").await;
                    } else {
                        r.bytes().await.unwrap();
                    }
                    outcomes.push((status, took));
                }
                outcomes
            })
        })
        .collect();
    let mut refused = 0;
    let mut outcomes = Vec::new();
    for b in burst {
        match b.await {
            Ok(o) => outcomes.extend(o),
            Err(e) => {
                let mut service = Arc::into_inner(service).unwrap();
                let alive = matches!(service.served.child.try_wait(), Ok(None));
                let (_, logs) = terminate(service.served);
                panic!(
                    "{e:?}; alive: {alive}; logs: {}",
                    &logs[logs.len().saturating_sub(5000)..]
                );
            }
        }
    }
    for (status, took) in outcomes {
        {
            match status.as_u16() {
                200 => {}
                503 => {
                    refused += 1;
                    assert!(took < ANSWER_WITHIN, "a refusal took {took:?}");
                }
                other => panic!("{other} during the burst"),
            }
        }
    }
    assert!(refused > 0, "no request of the burst was refused");
    // Recovered: reads answer as before.
    service.legitimate_read().await;
    let r = service.get("/commandes?limit=1000").await;
    assert_eq!(r.status(), 200);
    let grown = service.rss().saturating_sub(rss_before);
    assert!(grown < RSS_GROWTH, "RSS grew by {grown} bytes");
    println!(
        "read queue: {refused} of 240 refused, RSS +{} KiB",
        grown / 1024
    );
    Arc::into_inner(service).unwrap().stop();
}

/// PostgreSQL: a request waiting for a pooled connection waits at most
/// `connect_timeout_secs`, then gets a 503 with `Retry-After`; here the
/// only connection is held by an update waiting for a row the test locked.
async fn waiting_for_a_pooled_connection_is_bounded() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| {
        s.database.pool_size = 1;
        s.database.connect_timeout_secs = 1;
        s.database.statement_timeout_secs = 3;
    })
    .await
    else {
        return;
    };
    let locked = app.create("POOL-1", "C", "1.00", "pending").await;
    let other = app.create("POOL-2", "C", "1.00", "pending").await;
    let (mut client, conn) = tokio_postgres::connect(&app.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "select 1 from commandes where id = {} for update",
        locked["id"]
    ))
    .await
    .unwrap();
    let app = Arc::new(app);
    let update = tokio::spawn({
        let app = app.clone();
        let path = format!("/commandes/{}", locked["id"]);
        async move {
            app.put(&path, &serde_json::json!({"total_amount": "2.00"}))
                .await
                .status()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    let r = app.get(&format!("/commandes/{}", other["id"])).await;
    let took = t.elapsed();
    assert_limit_503(r, "waiting for a pooled connection").await;
    assert!(took < Duration::from_millis(2500), "waited {took:?}");
    assert_eq!(update.await.unwrap(), 503, "the update past its deadline");
    tx.rollback().await.unwrap();
    drop(client);
    let _ = task.await;
    app.fetch(other["id"].as_i64().unwrap()).await;
}

// ---------------------------------------------------------------------------
// (c) Deep skip

/// A deep `skip` is refused before any database work.
async fn a_deep_skip_is_422_at_once(app: TestApp) {
    for _ in 0..50 {
        let t = Instant::now();
        let r = app.get("/commandes?sort=total_amount&skip=999999999").await;
        assert!(t.elapsed() < ANSWER_WITHIN);
        let body = problem(r, 422).await;
        assert_eq!(body["errors"][0]["field"], "skip");
    }
}

// ---------------------------------------------------------------------------
// (d) Long-poll waiters

/// 40 long polls against a cap of 8: 32 are refused at once with 503 and
/// `Retry-After`; the 8 wait their 3 s; a read answers meanwhile; memory
/// stays flat.
async fn a_long_poll_flood_past_the_cap_is_refused_at_once(backend: Backend) {
    let Some(service) = Service::start(backend, 10, &[("COMMANDES_EVENTS_MAX_WAITERS", "8")]).await
    else {
        return;
    };
    let service = Arc::new(service);
    let rss_before = service.rss();
    let done = Arc::new(AtomicBool::new(false));
    let reader = read_alongside(service.clone(), done.clone());
    let polls: Vec<_> = (0..40)
        .map(|_| {
            let url = service.url("/events?after=9000000&wait=3");
            tokio::spawn(async move {
                let t = Instant::now();
                let r = reqwest::Client::new()
                    .get(&url)
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                    .unwrap();
                let took = t.elapsed();
                let status = r.status().as_u16();
                if status == 503 {
                    assert_limit_503(r, "a long poll past the cap").await;
                }
                (status, took)
            })
        })
        .collect();
    let (mut waited, mut refused) = (0, 0);
    for p in polls {
        match p.await.unwrap() {
            (200, _) => waited += 1,
            (503, took) => {
                refused += 1;
                assert!(took < ANSWER_WITHIN, "a refusal took {took:?}");
            }
            (other, _) => panic!("{other} for a long poll"),
        }
    }
    done.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(waited <= 8, "{waited} long polls waited at once");
    assert!(refused >= 32, "only {refused} refused");
    let grown = service.rss().saturating_sub(rss_before);
    assert!(grown < RSS_GROWTH, "RSS grew by {grown} bytes");
    Arc::into_inner(service).unwrap().stop();
}

// ---------------------------------------------------------------------------
// (e) SQLite statements past the deadline

/// A SQLite read past the statement deadline is interrupted where it runs,
/// not only abandoned: the caller gets `Unavailable` (a 503), the only
/// reader connection is free again at once, and it keeps serving.
async fn a_sqlite_statement_past_the_deadline_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("deadline.db").display());
    // One customer with 200,000 orders.
    load_for(&url, 200_000, 1).await;
    let options = StoreOptions {
        pool_size: 1,
        ..StoreOptions::default()
    };
    let store: Arc<dyn Store> = storage::open(&url.parse().unwrap(), &options)
        .await
        .unwrap();
    let actor = commandes::domain::Actor::system();
    // A query the API allows: that customer's orders by `updated_at`, 10,000
    // in. No index has both columns, so all its orders are sorted.
    let customer = store.get(1, &actor).await.unwrap().customer_id;
    let slow = ListFilter {
        customer_id: Some(customer),
        sort: commandes::domain::filter::Sort {
            key: SortKey::UpdatedAt,
            descending: false,
        },
        skip: 10_000,
        limit: 1000,
        ..ListFilter::default()
    };
    // How long it takes unbounded (the faster of two runs, cache warm).
    let mut unbounded = Duration::MAX;
    for _ in 0..2 {
        let t = Instant::now();
        assert_eq!(store.list(&slow, &actor).await.unwrap().len(), 1000);
        unbounded = unbounded.min(t.elapsed());
    }
    assert!(
        unbounded > Duration::from_millis(50),
        "the slow query is not slow: {unbounded:?}"
    );

    let bounded = storage::metered::MeteredStore::new(store.clone())
        .with_statement_timeout(Some(unbounded / 10));
    let err = bounded.list(&slow, &actor).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // The only reader was freed at the deadline: a point read right after
    // does not wait for the rest of the slow query (9/10 of it).
    let t = Instant::now();
    store.get(1, &actor).await.unwrap();
    let waited = t.elapsed();
    assert!(
        waited < unbounded / 3,
        "the read after the interrupted one waited {waited:?} (the query alone takes {unbounded:?})"
    );
    // The connection keeps serving, the slow query included.
    for id in 2..10 {
        store.get(id, &actor).await.unwrap();
    }
    assert_eq!(store.list(&slow, &actor).await.unwrap().len(), 1000);
    store.close().await;
}

// ---------------------------------------------------------------------------

mod sqlite_floods {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_readiness_flood_costs_one_database_call_a_second() {
        super::a_readiness_flood_costs_one_database_call_a_second(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_read_queue_answers_503_at_once_and_recovers() {
        super::a_full_read_queue_answers_503_at_once_and_recovers().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_poll_flood_past_the_cap_is_refused_at_once() {
        super::a_long_poll_flood_past_the_cap_is_refused_at_once(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_past_the_deadline_is_interrupted() {
        super::a_sqlite_statement_past_the_deadline_is_interrupted().await;
    }
}

mod postgres_floods {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_readiness_flood_costs_one_database_call_a_second() {
        super::a_readiness_flood_costs_one_database_call_a_second(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_poll_flood_past_the_cap_is_refused_at_once() {
        super::a_long_poll_flood_past_the_cap_is_refused_at_once(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiting_for_a_pooled_connection_is_bounded() {
        super::waiting_for_a_pooled_connection_is_bounded().await;
    }
}

crate::both_backends!(a_deep_skip_is_422_at_once);
