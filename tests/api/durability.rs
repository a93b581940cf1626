//! Crashes and restarts: an order acknowledged with a 2xx survives `kill -9`
//! at any moment, and SIGTERM lets the requests in flight finish.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::process::{commandes, serve, Served};
use crate::support::{Backend, TestDatabase};

const TOKEN: &str = "durability-token";

fn start(dir: &std::path::Path, url: &str) -> Served {
    serve(
        commandes(dir)
            .env("COMMANDES_API_TOKENS", TOKEN)
            .env("COMMANDES_DATABASE_URL", url)
            .arg("--no-demo-data"),
        false,
    )
}

/// Creates orders from several tasks until told to stop; returns the
/// `order_id`s that were acknowledged with 201.
async fn write_load(base: String, round: usize, stop: Arc<AtomicBool>) -> Vec<String> {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let (client, base, stop, acked) = (client.clone(), base.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let order_id = format!("R{round}-T{task}-{n}");
                    let sent = client
                        .post(format!("{base}/commandes"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"order_id": order_id, "customer_id": "C", "total_amount": "12.34"}))
                        .send()
                        .await;
                    // After the kill, requests fail to connect: not acknowledged.
                    match sent {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(order_id),
                        Ok(r) => assert!(r.status().is_success() || r.status() == 503, "{}", r.status()),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    acked
}

/// Five rounds of: write load, `kill -9` in the middle of it, restart, and
/// check that every acknowledged order is there.
async fn acknowledged_orders_survive_kill_9(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let _db;
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("crash.db").display()),
        Backend::Postgres | Backend::Pooler => {
            let Some(db) = TestDatabase::create().await else {
                return;
            };
            let url = db.url.clone();
            _db = db;
            url
        }
    };
    let mut total = 0;
    for round in 0..5 {
        let mut served = start(dir.path(), &url);
        let stop = Arc::new(AtomicBool::new(false));
        let load = tokio::spawn(write_load(served.base(), round, stop.clone()));
        // Vary the moment of the crash from round to round.
        tokio::time::sleep(Duration::from_millis(150 + 70 * round as u64)).await;
        served.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
        served.child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        let acked = load.await.unwrap();
        assert!(!acked.is_empty(), "round {round}: the load ran");
        total += acked.len();

        let served = start(dir.path(), &url);
        let client = reqwest::Client::new();
        for order_id in &acked {
            let r = client
                .get(format!("{}/commandes/order/{order_id}", served.base()))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                200,
                "round {round}: acknowledged {order_id} lost ({backend:?})"
            );
        }
        let stats: Value = client
            .get(format!("{}/stats", served.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            stats["total_orders"].as_u64().unwrap() as usize >= total,
            "{stats}"
        );
        assert!(
            crate::process::terminate(served).0,
            "a clean stop after the restart"
        );
    }
    if backend == Backend::Sqlite {
        let path = dir.path().join("crash.db");
        let check: String = rusqlite::Connection::open(path)
            .unwrap()
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "the file is intact after five crashes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_orders_survive_kill_9() {
    acknowledged_orders_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orders_survive_kill_9() {
    acknowledged_orders_survive_kill_9(Backend::Postgres).await;
}

/// SIGTERM while a write waits on SQLite's lock: the write still completes
/// and is acknowledged, then the process exits 0, and the order is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_sqlite_write_finish() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("term.db");
    let url = format!("sqlite://{}", path.display());
    let mut served = start(dir.path(), &url);
    let base = served.base();

    // Another process-like writer holds the write lock for a while.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("begin immediate").unwrap();
    let client = reqwest::Client::new();
    let pending = tokio::spawn({
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/commandes"))
                .bearer_auth(TOKEN)
                .json(&json!({"order_id": "TERM-1", "customer_id": "C", "total_amount": 1}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    // Give the request time to reach the store and wait on the lock.
    tokio::time::sleep(Duration::from_millis(300)).await;
    served.sigterm();
    assert!(
        served.shutdown_started().await,
        "the server began its graceful shutdown"
    );
    blocker.execute_batch("commit").unwrap();
    assert_eq!(
        pending.await.unwrap().ok(),
        Some(201),
        "the in-flight write was acknowledged"
    );
    let (status, _) = served.wait();
    assert!(status.success(), "exit 0 after SIGTERM");

    let served = start(dir.path(), &url);
    let r = client
        .get(format!("{}/commandes/order/TERM-1", served.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(crate::process::terminate(served).0);
}
