//! Production on Supabase, against the local stand-in (`standin.rs`):
//! PgBouncer 1.18 in transaction mode over TLS (`verify-full`), migrations
//! through its session-mode twin.
//!
//! - two service processes and 16 concurrent clients doing the whole CRUD
//!   mix through the transaction pooler, with no prepared-statement error;
//! - the guard that the stand-in really is strict: a named prepared
//!   statement used in a later transaction fails through it;
//! - a drill: PostgreSQL stopped and started under write load;
//! - start-up waiting for a database that is down, and giving up.
//!
//! Every figure measured is printed (`--nocapture`); none is asserted
//! beyond generous bounds that tell a hang from an answer.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::process::{commandes, serve, terminate, Served};
use crate::standin::{pooler_or_skip, Pooler, PASSWORD};
use crate::support::{TestDatabase, TOKEN};

/// The prepared-statement failures a transaction pooler causes.
const STATEMENT_ERRORS: [&str; 4] = ["26000", "42P05", "08P01", "prepared statement"];

/// `commandes serve` through the transaction pooler, migrating through the
/// session twin.
fn service(dir: &Path, transaction_url: &str, session_url: &str) -> std::process::Command {
    let mut cmd = commandes(dir);
    cmd.env("COMMANDES_DATABASE_URL", transaction_url)
        .env("COMMANDES_MIGRATION_DATABASE_URL", session_url)
        .env("COMMANDES_API_TOKENS", TOKEN)
        .env_remove("COMMANDES_DATABASE_CA_FILE")
        .args(["serve", "--no-demo-data"]);
    cmd
}

/// A TLS connection of the test's own to `url`, with the service's TLS
/// code (so `sslmode=verify-full&sslrootcert=…` is read as the service
/// reads it).
async fn connect(url: &str) -> tokio_postgres::Client {
    let target = commandes::storage::postgres::tls::prepare(url, None).expect("a valid URL");
    let (client, conn) = target
        .config
        .connect(target.tls.expect("TLS"))
        .await
        .expect("connect through the pooler");
    tokio::spawn(conn);
    client
}

// ---------------------------------------------------------------------------
// Two processes, 16 clients

const CLIENTS: usize = 16;
const REQUESTS_PER_CLIENT: usize = 150;

/// What the clients saw.
#[derive(Default)]
struct Tally {
    requests: AtomicUsize,
    expected_refusals: AtomicUsize,
    errors: Mutex<Vec<String>>,
}

impl Tally {
    /// Counts an answer; anything but 2xx, 404, 409 and 412 is an error.
    fn record(&self, what: &str, status: Result<StatusCode, String>) -> Option<StatusCode> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            Ok(s) if s.is_success() => Some(s),
            Ok(s) if [404, 409, 412].contains(&s.as_u16()) => {
                self.expected_refusals.fetch_add(1, Ordering::Relaxed);
                Some(s)
            }
            Ok(s) => {
                self.errors.lock().unwrap().push(format!("{what}: {s}"));
                Some(s)
            }
            Err(e) => {
                self.errors.lock().unwrap().push(format!("{what}: {e}"));
                None
            }
        }
    }
}

/// One client: a random mix over both processes.
async fn crud_client(
    client: reqwest::Client,
    bases: Vec<String>,
    tally: Arc<Tally>,
    known: Arc<Mutex<Vec<i64>>>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..REQUESTS_PER_CLIENT {
        let base = &bases[rng.random_range(0..bases.len())];
        let pick = {
            let known = known.lock().unwrap();
            (!known.is_empty()).then(|| known[rng.random_range(0..known.len())])
        };
        let roll = rng.random_range(0..100);
        let send = |method: Method, path: &str| {
            client
                .request(method, format!("{base}{path}"))
                .bearer_auth(TOKEN)
        };
        match (roll, pick) {
            (0..30, _) | (_, None) => {
                // Creates: order ids from a small pool (409s), half of them
                // with an idempotency key that is sometimes used again.
                let order_id = format!("PO-{}", rng.random_range(0..400));
                let amount = format!("{}.00", rng.random_range(0..3));
                let body = json!({"order_id": order_id, "customer_id": format!("C{}", seed % 4),
                                  "total_amount": amount});
                let mut req = send(Method::POST, "/commandes").json(&body);
                if rng.random_bool(0.5) {
                    // The same key only ever with the same body: a replay.
                    let key = format!("key-{order_id}-{}-{amount}", seed % 4);
                    req = req.header("idempotency-key", key);
                }
                let r = req.send().await;
                let status = r.as_ref().map(|r| r.status()).map_err(|e| e.to_string());
                if tally.record("create", status) == Some(StatusCode::CREATED) {
                    if let Ok(body) = r.unwrap().json::<Value>().await {
                        if let Some(id) = body["id"].as_i64() {
                            known.lock().unwrap().push(id);
                        }
                    }
                }
            }
            (30..45, Some(id)) => {
                let r = send(Method::GET, &format!("/commandes/{id}")).send().await;
                tally.record("get", r.map(|r| r.status()).map_err(|e| e.to_string()));
            }
            (45..58, _) => {
                // A list, then its next page by the cursor of its Link.
                let r = send(Method::GET, "/commandes?sort=-created_at&limit=5")
                    .send()
                    .await;
                let next = r.as_ref().ok().and_then(|r| {
                    let link = r.headers().get("link")?.to_str().ok()?;
                    Some(link.trim_start_matches('<').split('>').next()?.to_string())
                });
                tally.record("list", r.map(|r| r.status()).map_err(|e| e.to_string()));
                if let Some(next) = next {
                    let r = send(Method::GET, &next).send().await;
                    tally.record(
                        "list next",
                        r.map(|r| r.status()).map_err(|e| e.to_string()),
                    );
                }
            }
            (58..72, Some(id)) => {
                // Read, then change with If-Match: 200, or 412 if another
                // client got there first.
                let r = send(Method::GET, &format!("/commandes/{id}")).send().await;
                let tag = r
                    .as_ref()
                    .ok()
                    .and_then(|r| Some(r.headers().get("etag")?.to_str().ok()?.to_string()));
                tally.record(
                    "get for update",
                    r.map(|r| r.status()).map_err(|e| e.to_string()),
                );
                if let Some(tag) = tag {
                    let body = json!({"customer_id": format!("C{}", rng.random_range(0..4))});
                    let r = send(Method::PUT, &format!("/commandes/{id}"))
                        .header("if-match", tag)
                        .json(&body)
                        .send()
                        .await;
                    tally.record("update", r.map(|r| r.status()).map_err(|e| e.to_string()));
                }
            }
            (72..84, Some(id)) => {
                let to = ["processing", "completed", "cancelled"][rng.random_range(0..3)];
                let r = send(Method::PUT, &format!("/commandes/{id}/status"))
                    .json(&json!(to))
                    .send()
                    .await;
                tally.record("status", r.map(|r| r.status()).map_err(|e| e.to_string()));
            }
            (84..92, Some(id)) => {
                let r = send(Method::DELETE, &format!("/commandes/{id}"))
                    .send()
                    .await;
                tally.record("delete", r.map(|r| r.status()).map_err(|e| e.to_string()));
            }
            _ => {
                let r = send(Method::GET, "/stats").send().await;
                tally.record("stats", r.map(|r| r.status()).map_err(|e| e.to_string()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_and_16_clients_through_the_transaction_pooler() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    let pooler = pooler_or_skip().unwrap();
    let session = db.migration_url.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = commandes(dir.path())
        .env("COMMANDES_DATABASE_URL", &db.url)
        .env("COMMANDES_MIGRATION_DATABASE_URL", &session)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let processes: Vec<Served> = (0..2)
        .map(|_| {
            serve(
                service(dir.path(), &db.url, &session).env("COMMANDES_POOL_SIZE", "4"),
                false,
            )
        })
        .collect();
    let bases: Vec<String> = processes.iter().map(Served::base).collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());
    let known = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(crud_client(
                client.clone(),
                bases.clone(),
                tally.clone(),
                known.clone(),
                i as u64,
            ))
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    let elapsed = started.elapsed();

    // The counters agree with the table after all that.
    let stats: Value = client
        .get(format!("{}/stats", bases[0]))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let admin = tokio_postgres::connect(&db.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(admin.1);
    let rows: i64 = admin
        .0
        .query_one("select count(*) from commandes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stats["total_orders"], rows, "{stats}");

    let mut logs = String::new();
    for p in processes {
        let (clean, text) = terminate(p);
        assert!(clean, "a process did not stop cleanly: {text}");
        logs.push_str(&text);
    }
    let errors = tally.errors.lock().unwrap().clone();
    let requests = tally.requests.load(Ordering::Relaxed);
    println!(
        "pooler: {requests} requests from {CLIENTS} clients to 2 processes in {:.1} s; {} expected \
         404/409/412; {} errors",
        elapsed.as_secs_f64(),
        tally.expected_refusals.load(Ordering::Relaxed),
        errors.len()
    );
    assert!(errors.is_empty(), "{} errors: {errors:#?}", errors.len());
    let bouncer = pooler.log();
    for code in STATEMENT_ERRORS {
        // Warnings and errors only: request ids are random hex.
        let in_logs: Vec<&str> = logs
            .lines()
            .filter(|l| !l.contains("\"level\":\"INFO\"") && !l.contains("\"level\":\"DEBUG\""))
            .filter(|l| l.contains(code))
            .collect();
        assert!(
            in_logs.is_empty(),
            "{code} in the service logs: {in_logs:#?}"
        );
        let in_bouncer: Vec<&str> = bouncer
            .lines()
            .filter(|l| l.contains(&db_name(&db.url)) && l.contains(code))
            .collect();
        assert!(
            in_bouncer.is_empty(),
            "{code} in PgBouncer's log: {in_bouncer:#?}"
        );
    }
    assert!(!logs.contains(PASSWORD), "the password leaked");
}

/// The database name of a URL.
fn db_name(url: &str) -> String {
    url.rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------
// The stand-in is strict

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_prepared_statement_does_not_survive_its_transaction_through_the_pooler() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    let first = connect(&db.url).await;
    let second = connect(&db.url).await;
    // Prepared outside a transaction: the server connection that holds it
    // goes back to PgBouncer's pool right after.
    let statement = first.prepare("select $1::int8 + 1").await.expect("prepare");
    // Another client's transaction takes that server connection ...
    second.batch_execute("begin").await.unwrap();
    second.query_typed("select 1", &[]).await.unwrap();
    // ... so the first client's next use runs on another one.
    let err = first
        .query(&statement, &[&1i64])
        .await
        .expect_err("a prepared statement must not survive its transaction here");
    let code = err.code().map(|c| c.code().to_string()).unwrap_or_default();
    assert!(
        ["26000", "42P05", "08P01"].contains(&code.as_str()),
        "expected a prepared-statement error, got {err:?}"
    );
    // What the service uses instead works in the same situation.
    let row = first
        .query_typed(
            "select $1::int8 + 1",
            &[(&1i64, tokio_postgres::types::Type::INT8)],
        )
        .await
        .expect("query_typed works through the pooler");
    assert_eq!(row[0].get::<_, i64>(0), 2);
    second.batch_execute("rollback").await.unwrap();
}

#[test]
fn pgbench_in_prepared_mode_fails_through_the_pooler() {
    let Some(pooler) = pooler_or_skip() else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(pooler.cluster.database());
    let conninfo = |port: u16| {
        format!(
            "host=localhost port={port} dbname={db} user=postgres password={PASSWORD} \
             sslmode=verify-full sslrootcert={}",
            pooler.cluster.ca.display()
        )
    };
    let pgbench = |args: &[&str]| {
        std::process::Command::new("pgbench")
            .args(args)
            .output()
            .expect("pgbench runs")
    };
    let init = pgbench(&["-i", "-q", "-s", "1", &conninfo(pooler.session_port)]);
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let tx = conninfo(pooler.transaction_port);
    let simple = pgbench(&["-n", "-S", "-c", "8", "-j", "2", "-t", "50", &tx]);
    assert!(
        simple.status.success(),
        "pgbench -M simple must work through the pooler: {}",
        String::from_utf8_lossy(&simple.stderr)
    );
    let prepared = pgbench(&[
        "-n", "-S", "-M", "prepared", "-c", "8", "-j", "2", "-t", "50", &tx,
    ]);
    let stderr = String::from_utf8_lossy(&prepared.stderr);
    assert!(
        !prepared.status.success() && stderr.contains("prepared statement"),
        "pgbench -M prepared must fail through a transaction pooler that predates prepared \
         statements: {stderr}"
    );
}

// ---------------------------------------------------------------------------
// The drill: PostgreSQL stops under write load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stops_and_returns_under_write_load() {
    // A private stand-in: stopping the shared one would fail other tests.
    let pooler = match Pooler::start("drill") {
        Ok(p) => p,
        Err(why) => {
            if pooler_or_skip().is_none() {
                return;
            }
            panic!("the drill's stand-in cannot start: {why}");
        }
    };
    let db = pooler.cluster.database().await;
    let dir = tempfile::tempdir().unwrap();
    let statement_timeout = 2;
    let served = serve(
        service(
            dir.path(),
            &pooler.transaction_url(&db),
            &pooler.session_url(&db),
        )
        .env("COMMANDES_POOL_SIZE", "4")
        .env(
            "COMMANDES_STATEMENT_TIMEOUT_SECS",
            statement_timeout.to_string(),
        ),
        false,
    );
    let base = served.base();
    let client = reqwest::Client::builder()
        // Far above the configured timeouts: only a hang reaches it.
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    // (sent, answered, status) of every request; the acknowledged ids.
    let answers = Arc::new(Mutex::new(Vec::<(Duration, Duration, u16)>::new()));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
            let (answers, acked) = (answers.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let order_id = format!("DRILL-{w}-{n}");
                    let sent = t0.elapsed();
                    let r = client
                        .post(format!("{base}/commandes"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"order_id": order_id, "customer_id": "D", "total_amount": "1.00"}))
                        .send()
                        .await;
                    let answered = t0.elapsed();
                    let status = match r {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            if status == 503 {
                                let ct = r.headers().get("content-type").cloned();
                                assert_eq!(
                                    ct.as_ref().and_then(|v| v.to_str().ok()),
                                    Some("application/problem+json")
                                );
                            }
                            status
                        }
                        Err(e) => panic!("{order_id}: no answer ({e})"),
                    };
                    if status == 201 {
                        acked.lock().unwrap().insert(order_id);
                    }
                    answers.lock().unwrap().push((sent, answered, status));
                    if status == 503 {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    let cluster = &pooler.cluster;
    let stopping = t0.elapsed();
    tokio::task::block_in_place(|| cluster.stop());
    let stopped = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(4)).await;
    tokio::task::block_in_place(|| cluster.start_again());
    let back = t0.elapsed();
    // Serve for a while after the return.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let recovered = answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(sent, _, s)| *sent > back && *s == 201)
            .count();
        if recovered >= 50 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    let first_503 = answers
        .iter()
        .filter(|(_, _, s)| *s == 503)
        .map(|(_, answered, _)| *answered)
        .min();
    let first_201_after = answers
        .iter()
        .filter(|(sent, _, s)| *sent > back && *s == 201)
        .map(|(_, answered, _)| *answered)
        .min();
    let slowest_503 = answers
        .iter()
        .filter(|(_, _, s)| *s == 503)
        .map(|(sent, answered, _)| *answered - *sent)
        .max();
    let others: Vec<_> = answers
        .iter()
        .filter(|(_, _, s)| ![201, 503].contains(s))
        .collect();
    println!(
        "drill: {} requests, {} acknowledged, {} 503; first 503 {:?} after the stop began \
         (pg_ctl stop took {:?}); slowest 503 {:?}; PostgreSQL down {:.1} s; first 201 {:?} after \
         its return",
        answers.len(),
        acked.lock().unwrap().len(),
        answers.iter().filter(|(_, _, s)| *s == 503).count(),
        first_503.map(|t| t.saturating_sub(stopping)),
        stopped - stopping,
        slowest_503,
        (back - stopped).as_secs_f64(),
        first_201_after.map(|t| t - back),
    );
    assert!(
        others.is_empty(),
        "answers other than 201 and 503: {others:?}"
    );
    assert!(first_503.is_some(), "the outage was not seen");
    let slowest = slowest_503.unwrap();
    // The statement timeout, plus a connect timeout (5 s) at most: a 503,
    // not a hang.
    assert!(
        slowest < Duration::from_secs(statement_timeout + 5 + 3),
        "a 503 took {slowest:?}"
    );
    assert!(
        first_201_after.is_some(),
        "the service did not serve again after the database returned"
    );

    // Every acknowledged order is there.
    let (admin, conn) = tokio_postgres::connect(&cluster.admin_url(&db), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let stored: HashSet<String> = admin
        .query("select order_id from commandes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
}

// ---------------------------------------------------------------------------
// Start-up waits for the database

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_the_database_then_gives_up() {
    let pooler = match Pooler::start("startup") {
        Ok(p) => p,
        Err(why) => {
            if pooler_or_skip().is_none() {
                return;
            }
            panic!("the stand-in cannot start: {why}");
        }
    };
    let db = pooler.cluster.database().await;
    let dir = tempfile::tempdir().unwrap();
    let (tx_url, session_url) = (pooler.transaction_url(&db), pooler.session_url(&db));
    let cluster = &pooler.cluster;
    tokio::task::block_in_place(|| cluster.stop());

    // Started while the database is down, it waits, and serves once it is
    // back.
    let mut waiting = service(dir.path(), &tx_url, &session_url);
    waiting
        .env("COMMANDES_STARTUP_TIMEOUT_SECS", "60")
        .env("COMMANDES_CONNECT_TIMEOUT_SECS", "1");
    let t0 = Instant::now();
    let starting = tokio::task::spawn_blocking(move || serve(&mut waiting, false));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!starting.is_finished(), "it must wait for the database");
    tokio::task::block_in_place(|| cluster.start_again());
    let back = t0.elapsed();
    let served = starting.await.unwrap();
    let up = t0.elapsed();
    let r = reqwest::Client::new()
        .get(format!("{}/health/ready", served.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    assert!(logs.contains("waiting for the database"), "{logs}");
    assert!(logs.contains("the database is reachable"), "{logs}");
    println!(
        "startup: the database returned after {:.1} s; serving {:.1} s later",
        back.as_secs_f64(),
        (up - back).as_secs_f64()
    );

    // Down for longer than the wait: a clear message, exit 1.
    tokio::task::block_in_place(|| cluster.stop());
    let out = service(dir.path(), &tx_url, &session_url)
        .env("COMMANDES_STARTUP_TIMEOUT_SECS", "2")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("commandes: ")
            && last.contains("the database did not become reachable within 2 s"),
        "{stderr}"
    );
    assert!(!stderr.contains(PASSWORD), "the password leaked");

    // A wrong password is not waited for: it fails at once.
    tokio::task::block_in_place(|| cluster.start_again());
    let wrong = tx_url.replace(PASSWORD, "wrong-password");
    let started = Instant::now();
    let out = service(dir.path(), &wrong, &wrong)
        .env("COMMANDES_STARTUP_TIMEOUT_SECS", "60")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "a wrong password must not be retried for the whole wait: {stderr}"
    );
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("waiting for the database"), "{stderr}");
}

// ---------------------------------------------------------------------------
// Adopting the original service's table

/// The table the original FastAPI service made, as its SQLAlchemy model
/// did, with rows of every kind it could hold.
const ORIGINAL: &str = "
    create table commandes (
        id           serial primary key,
        order_id     varchar(50) unique,
        customer_id  varchar(50),
        created_at   timestamp,
        status       varchar(50),
        total_amount decimal(10,2),
        updated_at   timestamp
    );
    insert into commandes (order_id, customer_id, created_at, status, total_amount, updated_at) values
        ('CMD001', 'CLIENT1', '2024-01-15 10:30:00', 'pending',    150.00, '2024-01-15 10:30:00'),
        ('CMD002', 'CLIENT2', '2024-01-16 14:20:00', 'completed',  275.50, '2024-01-17 09:00:00'),
        ('CMD003', 'CLIENT1', '2024-01-17 09:15:00', 'processing',  89.99, null),
        ('CMD004', 'CLIENT3', null,                  'cancelled',  420.00, '2024-01-18 12:00:00'),
        ('CMD005', 'CLIENT2', '2024-01-19 16:45:00', null,          12.34, null);
";

/// `commandes migrate` through the stand-in's session twin.
fn migrate(dir: &Path, db: &TestDatabase) -> std::process::Output {
    commandes(dir)
        .env("COMMANDES_DATABASE_URL", &db.url)
        .env(
            "COMMANDES_MIGRATION_DATABASE_URL",
            db.migration_url.as_ref().unwrap(),
        )
        .arg("migrate")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_table_is_adopted_with_every_row() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    let (admin, conn) = tokio_postgres::connect(&db.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin.batch_execute(ORIGINAL).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let out = migrate(dir.path(), &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("adopted the original commandes table: 5 rows kept"),
        "{stdout}"
    );
    for said in [
        "id integer → bigint",
        "created_at timestamp → timestamptz (read as UTC)",
        "updated_at filled from created_at (or now) in 2 rows",
        "created_at filled from updated_at in 1 row",
        "status filled with pending in 1 row",
    ] {
        assert!(stdout.contains(said), "{said:?} not in: {stdout}");
    }
    let latest = commandes::storage::migrations::POSTGRES.len();
    let migrated = format!("migrated schema from version 0 to {latest}");
    assert!(stdout.contains(&migrated), "{migrated:?} not in: {stdout}");

    // Every row, through the API of a service serving through the pooler.
    let served = serve(
        &mut service(dir.path(), &db.url, db.migration_url.as_ref().unwrap()),
        false,
    );
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        let base = served.base();
        async move {
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.json::<Value>().await.unwrap()
        }
    };
    let list = get("/commandes?sort=id".into()).await;
    let orders = list.as_array().unwrap();
    assert_eq!(orders.len(), 5, "{list}");
    let by_id = |order_id: &str| {
        orders
            .iter()
            .find(|o| o["order_id"] == order_id)
            .unwrap_or_else(|| panic!("{order_id} lost: {list}"))
            .clone()
    };
    let first = by_id("CMD001");
    assert_eq!(first["id"], 1);
    assert_eq!(first["customer_id"], "CLIENT1");
    assert_eq!(first["total_amount"], "150.00");
    assert_eq!(
        first["created_at"], "2024-01-15T10:30:00.000000Z",
        "read as UTC"
    );
    let third = by_id("CMD003");
    assert_eq!(third["status"], "processing");
    assert_eq!(
        third["updated_at"], third["created_at"],
        "filled from created_at"
    );
    let fourth = by_id("CMD004");
    assert_eq!(
        fourth["created_at"], "2024-01-18T12:00:00.000000Z",
        "filled from updated_at"
    );
    let fifth = by_id("CMD005");
    assert_eq!(fifth["status"], "pending", "filled");
    assert_eq!(fifth["total_amount"], "12.34");

    // The counters count the adopted rows; new ids follow the old ones.
    let stats = get("/stats".into()).await;
    assert_eq!(stats["total_orders"], 5, "{stats}");
    assert_eq!(stats["by_status"]["pending"], 2, "{stats}");
    assert_eq!(stats["total_amount"], "947.83", "{stats}");
    let r = client
        .post(format!("{}/commandes", served.base()))
        .bearer_auth(TOKEN)
        .json(&json!({"order_id": "NEW1", "customer_id": "CLIENT9", "total_amount": "1.00"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.json::<Value>().await.unwrap()["id"], 6);
    assert_eq!(get("/stats".into()).await["total_orders"], 6);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");

    // Once adopted, it is ours: a second run has nothing to do.
    let out = migrate(dir.path(), &db);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(stdout.trim(), format!("schema already at version {latest}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_that_cannot_be_adopted_are_listed_and_nothing_changes() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    let (admin, conn) = tokio_postgres::connect(&db.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    admin.batch_execute(ORIGINAL).await.unwrap();
    admin
        .batch_execute(
            "insert into commandes (order_id, customer_id, status, total_amount) values
                ('BAD1', 'C', 'shipped', 1), ('BAD2', null, 'pending', 2), ('BAD3', 'C', 'pending', -3)",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), &db);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    for said in [
        "cannot adopt the existing commandes table (nothing was changed)",
        "1 row with a status other than pending, processing, completed or cancelled",
        "6 'shipped'",
        "1 row with no customer_id, ids 7",
        "1 row with no total_amount or a negative one, ids 8",
    ] {
        assert!(last.contains(said), "{said:?} not in: {stderr}");
    }
    // Still the original table, untouched.
    let row = admin
        .query_one(
            "select format_type(atttypid, atttypmod) from pg_attribute
             where attrelid = 'commandes'::regclass and attname = 'created_at'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "timestamp without time zone");
    let migrated: bool = admin
        .query_one(
            "select to_regclass('commandes_schema_migrations') is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!migrated);
    let n: i64 = admin
        .query_one("select count(*) from commandes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 8);
}
