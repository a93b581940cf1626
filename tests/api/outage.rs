//! The 503 row: the database cannot be reached (PostgreSQL: its
//! connections are cut and refused; SQLite: another process holds the
//! write lock past the busy timeout). The service answers 503 with
//! `Retry-After`, writes nothing, keeps serving what needs no database, and
//! recovers by itself once the database is back. And a stop is clean.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, Response};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::support::{json, postgres_server, problem, Backend, TestApp};

/// A TCP relay in front of PostgreSQL that can be cut and restored.
pub(crate) struct Proxy {
    pub(crate) addr: std::net::SocketAddr,
    upstream: String,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let mut proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream,
            accept: None,
            connections: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let connections = self.connections.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(relay.abort_handle());
            }
        }));
    }

    /// Closes every relayed connection and stops listening: new
    /// connections are refused.
    pub(crate) async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        for relay in self.connections.lock().unwrap().drain(..) {
            relay.abort();
        }
    }

    /// Listens again on the same address.
    pub(crate) async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("re-bind the proxy");
        self.serve(listener);
    }
}

/// `url` with its host and port replaced by the proxy's.
pub(crate) fn through(url: &str, proxy: std::net::SocketAddr) -> String {
    let mut parsed = reqwest::Url::parse(url).expect("a PostgreSQL URL");
    parsed.set_host(Some("127.0.0.1")).unwrap();
    parsed.set_port(Some(proxy.port())).unwrap();
    parsed.to_string()
}

/// The `host:port` the service connects to: the test PostgreSQL server, or
/// the stand-in's transaction-mode PgBouncer.
pub(crate) fn upstream(backend: Backend) -> String {
    if backend == Backend::Pooler {
        let pooler = crate::standin::pooler().expect("the app runs, so the pooler is there");
        return format!("127.0.0.1:{}", pooler.transaction_port);
    }
    let server = postgres_server().expect("the app runs, so PostgreSQL is available");
    let parsed = reqwest::Url::parse(server).expect("a PostgreSQL URL");
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .expect("a TCP PostgreSQL server");
    format!("{host}:{}", parsed.port().unwrap_or(5432))
}

/// A 503 problem with a `Retry-After` of whole seconds.
async fn assert_unavailable(r: Response, what: &str) {
    let body = crate::support::unavailable_problem(
        r,
        what,
        &[
            "postgres",
            "sqlite",
            "connection refused",
            "os error",
            "select ",
        ],
    )
    .await;
    assert_eq!(body["title"], "Service Unavailable", "{what}");
}

/// Retries `GET path` until it is 200, for at most 20 seconds.
async fn wait_until_ok(app: &TestApp, path: &str) -> Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get(path).await;
        if r.status() == 200 {
            return r;
        }
        assert_eq!(r.status(), 503, "{path} while recovering");
        assert!(Instant::now() < deadline, "{path} did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn postgres_outage(backend: Backend) {
    let mut proxy = Proxy::start(upstream(backend)).await;
    let addr = proxy.addr;
    let app = TestApp::spawn_with(backend, |s| {
        s.database.url = through(&s.database.url.expose(), addr).parse().unwrap();
        s.database.connect_timeout_secs = 2;
    })
    .await
    .expect("PostgreSQL is available");
    let kept = app.create("KEPT", "C1", "1.00", "pending").await;

    proxy.cut().await;
    assert_unavailable(app.get("/commandes").await, "list").await;
    assert_unavailable(app.get(&format!("/commandes/{}", kept["id"])).await, "get").await;
    assert_unavailable(app.get("/stats").await, "stats").await;
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "LOST", "customer_id": "C1", "total_amount": 2}),
        )
        .await;
    assert_unavailable(r, "create").await;
    let r = app
        .put(
            &format!("/commandes/{}/status", kept["id"]),
            &json!("processing"),
        )
        .await;
    assert_unavailable(r, "status change").await;
    assert_unavailable(
        app.delete(&format!("/commandes/{}", kept["id"])).await,
        "delete",
    )
    .await;
    // Refusals that need no database are unchanged.
    problem(
        app.anonymous(Method::GET, "/commandes")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    problem(app.get("/commandes/abc").await, 422).await;
    // The probes tell the truth; the process is alive.
    let r = app
        .anonymous(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    let ready = json(r, 503).await;
    assert_eq!(ready["status"], "unavailable");
    assert!(
        ready["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{ready}"
    );
    let live = json(
        app.anonymous(Method::GET, "/health/live")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(live, json!({"status": "ok"}));
    assert_eq!(
        json(app.anonymous(Method::GET, "/").send().await.unwrap(), 200).await["status"],
        "ok"
    );

    proxy.restore().await;
    let listed: Value = wait_until_ok(&app, "/commandes")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([kept]),
        "nothing was written during the outage"
    );
    let ready = crate::support::wait_until_ready(&app).await;
    assert_eq!(ready, json!({"status": "ok"}));
    app.create("AFTER", "C1", "3.00", "pending").await;
    assert_eq!(app.stats().await["total_orders"], 2);
}

async fn sqlite_outage(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.database.busy_timeout_ms = 200)
        .await
        .expect("SQLite is always available");
    let kept = app.create("KEPT", "C1", "1.00", "pending").await;
    let path = app
        .database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite file URL")
        .to_string();

    // Another process takes the write lock and keeps it.
    let lock = rusqlite::Connection::open(&path).expect("open the database");
    lock.execute_batch("begin immediate")
        .expect("take the write lock");

    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "LOST", "customer_id": "C1", "total_amount": 2}),
        )
        .await;
    assert_unavailable(r, "create").await;
    let r = app
        .put(
            &format!("/commandes/{}/status", kept["id"]),
            &json!("processing"),
        )
        .await;
    assert_unavailable(r, "status change").await;
    let r = app
        .put(
            &format!("/commandes/{}", kept["id"]),
            &json!({"customer_id": "C2"}),
        )
        .await;
    assert_unavailable(r, "update").await;
    assert_unavailable(
        app.delete(&format!("/commandes/{}", kept["id"])).await,
        "delete",
    )
    .await;
    // Readers do not wait for the writer.
    assert_eq!(app.list("/commandes").await, vec![kept.clone()]);
    assert_eq!(app.fetch(kept["id"].as_i64().unwrap()).await, kept);

    lock.execute_batch("rollback").expect("release the lock");
    drop(lock);
    assert_eq!(
        app.list("/commandes").await,
        vec![kept.clone()],
        "nothing was written while locked"
    );
    app.create("AFTER", "C1", "3.00", "pending").await;
    let r = app
        .put(
            &format!("/commandes/{}/status", kept["id"]),
            &json!("processing"),
        )
        .await;
    assert_eq!(json(r, 200).await["status"], "processing");
    assert_eq!(app.stats().await["total_orders"], 2);
}

/// The outage is made on a second app of the same backend, whose settings
/// the cut needs (short timeouts, a relayed database URL).
async fn the_service_answers_503_and_recovers(app: TestApp) {
    match app.backend {
        Backend::Postgres | Backend::Pooler => postgres_outage(app.backend).await,
        Backend::Sqlite => sqlite_outage(app.backend).await,
    }
}

async fn the_service_stops_cleanly(app: TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
    let base = app.base.clone();
    // The server task ends without error (`stop` checks it) and the port
    // is released.
    app.stop().await;
    let after = reqwest::Client::new()
        .get(format!("{base}/health/live"))
        .send()
        .await;
    assert!(
        after.is_err_and(|e| e.is_connect()),
        "still answering after stop"
    );
}

crate::both_backends!(
    the_service_answers_503_and_recovers,
    the_service_stops_cleanly,
);
