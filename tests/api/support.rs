//! `TestApp`: the real service on a random port, against a fresh database.
//!
//! SQLite: a file in a temporary directory. PostgreSQL: a new database on
//! the server named by `TEST_DATABASE_URL`; without it, on a throwaway
//! cluster started from the PostgreSQL server binaries if they are
//! installed; otherwise the PostgreSQL tests say they are skipped (or fail,
//! with `COMMANDES_REQUIRE_POSTGRES=1`). Pooler: a new database on the
//! Supabase stand-in (`standin.rs`), served through PgBouncer in
//! transaction mode over TLS and migrated through its session-mode twin.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use commandes::config::{DemoData, Settings};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::sync::oneshot;

/// The token every test app accepts.
pub const TOKEN: &str = "test-token-0123456789";

/// A second caller's token.
pub const SECOND_TOKEN: &str = "second-token-0123456789";

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL through the stand-in's PgBouncer in transaction mode,
    /// over TLS with `verify-full`; migrations through its session-mode
    /// twin (`database.migration_url`), as on Supabase.
    Pooler,
}

/// A running service.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    /// The database URL the app uses.
    pub database_url: String,
    /// `http://IP:PORT` of the metrics listener, when one is configured.
    pub metrics_base: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// The binary serving, for [`TestApp::spawn_binary`] (killed if
    /// dropped while running).
    process: Option<crate::process::Served>,
    _dir: Option<tempfile::TempDir>,
    _database: Option<TestDatabase>,
}

impl TestApp {
    /// Starts the app on `backend`; `None` when PostgreSQL is not available
    /// (and not required).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts the app after `adjust` has changed its settings.
    pub async fn spawn_with(
        backend: Backend,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<TestApp> {
        let mut dir = None;
        let mut database = None;
        let url = match backend {
            Backend::Sqlite => {
                let d = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", d.path().join("commandes.db").display());
                dir = Some(d);
                url
            }
            Backend::Postgres => {
                let db = TestDatabase::create().await?;
                let url = db.url.clone();
                database = Some(db);
                url
            }
            Backend::Pooler => {
                let db = TestDatabase::create_behind_pooler().await?;
                let url = db.url.clone();
                database = Some(db);
                url
            }
        };
        let mut settings = Settings::default();
        settings.server.host = "127.0.0.1".into();
        settings.server.port = 0;
        settings.server.shutdown_timeout_secs = 5;
        settings.database.url = url.parse().expect("a database URL");
        if let Some(m) = database.as_ref().and_then(|d| d.migration_url.clone()) {
            settings.database.migration_url = Some(m.parse().expect("a database URL"));
        }
        settings.database.demo_data = DemoData::Never;
        settings.database.pool_size = 8;
        // The suite shares a loaded machine: a request must not be cut by
        // the statement deadline because the CPU is busy elsewhere. The
        // deadline itself is tested by `pooler::postgres_stops_…`.
        settings.database.statement_timeout_secs = 30;
        settings.auth.tokens = vec![TOKEN.into(), SECOND_TOKEN.into()];
        adjust(&mut settings);
        let app = commandes::app::build(&settings)
            .await
            .expect("the app starts");
        let base = format!("http://{}", app.local_addr());
        let metrics_base = app.metrics_addr().map(|a| format!("http://{a}"));
        let (tx, rx) = oneshot::channel();
        let server = tokio::spawn(app.run(async {
            let _ = rx.await;
        }));
        Some(TestApp {
            base,
            client: reqwest::Client::new(),
            backend,
            database_url: url,
            metrics_base,
            shutdown: Some(tx),
            server: Some(server),
            process: None,
            _dir: dir,
            _database: database,
        })
    }

    /// Starts the built binary (`COMMANDES_TEST_BINARY`, see
    /// [`crate::process::binary`]) as a child process on `backend` (SQLite
    /// or PostgreSQL), configured as [`TestApp::spawn`] is, through its
    /// environment, plus `env`; `None` when PostgreSQL is not available
    /// (and not required). What the tests send goes over real HTTP to
    /// that process, exactly as to a deployed service.
    pub async fn spawn_binary(backend: Backend, env: &[(&str, &str)]) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut database = None;
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("commandes.db").display()),
            Backend::Postgres | Backend::Pooler => {
                let db = TestDatabase::create().await?;
                let url = db.url.clone();
                database = Some(db);
                url
            }
        };
        let mut cmd = crate::process::commandes(dir.path());
        cmd.env("COMMANDES_DATABASE_URL", &url)
            .env("COMMANDES_API_TOKENS", format!("{TOKEN},{SECOND_TOKEN}"))
            .env("COMMANDES_DEMO_DATA", "never")
            .env("COMMANDES_LOG_FORMAT", "json")
            .env("COMMANDES_SHUTDOWN_TIMEOUT_SECS", "5")
            .env("COMMANDES_STATEMENT_TIMEOUT_SECS", "30");
        for (name, value) in env {
            cmd.env(name, value);
        }
        let served = tokio::task::spawn_blocking(move || crate::process::serve(&mut cmd, false))
            .await
            .expect("the binary starts");
        Some(TestApp {
            base: served.base(),
            metrics_base: None,
            client: reqwest::Client::new(),
            backend,
            database_url: url,
            shutdown: None,
            server: None,
            process: Some(served),
            _dir: Some(dir),
            _database: database,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the test token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
    }

    /// A request with no token.
    pub fn anonymous(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.request(Method::DELETE, path)
            .send()
            .await
            .expect("request sent")
    }

    /// Sends `body` as `application/json`.
    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::PUT, path, body).await
    }

    /// Creates an order and returns it (panics unless 201).
    pub async fn create(
        &self,
        order_id: &str,
        customer_id: &str,
        amount: &str,
        status: &str,
    ) -> Value {
        let r = self
            .post(
                "/commandes",
                &serde_json::json!({
                    "order_id": order_id, "customer_id": customer_id,
                    "total_amount": amount, "status": status,
                }),
            )
            .await;
        assert_eq!(r.status(), 201, "create {order_id}");
        r.json().await.expect("json body")
    }

    /// Sends `body` as it is, with `content_type` if given (no other
    /// header besides the token).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self.request(method, path);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        request.body(body).send().await.expect("request sent")
    }

    /// `GET path`, which must answer 200 with a JSON array.
    pub async fn list(&self, path: &str) -> Vec<Value> {
        let body = json(self.get(path).await, 200).await;
        body.as_array()
            .unwrap_or_else(|| panic!("{path}: not an array: {body}"))
            .clone()
    }

    /// The `id`s of `GET path`, in the order returned.
    pub async fn list_ids(&self, path: &str) -> Vec<i64> {
        ids(&self.list(path).await)
    }

    /// `GET /stats` (must be 200).
    pub async fn stats(&self) -> Value {
        json(self.get("/stats").await, 200).await
    }

    /// `GET /commandes/{id}` (must be 200).
    pub async fn fetch(&self, id: i64) -> Value {
        json(self.get(&format!("/commandes/{id}")).await, 200).await
    }

    /// Stops the server, waiting for in-flight requests.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    /// Stops a [`TestApp::spawn_binary`] process (SIGTERM), asserts that it
    /// exited cleanly, and returns its log lines.
    pub async fn stop_binary(mut self) -> String {
        let process = self.process.take().expect("a binary app");
        let (clean, logs) = tokio::task::spawn_blocking(move || crate::process::terminate(process))
            .await
            .unwrap();
        assert!(clean, "the binary did not stop cleanly: {logs}");
        logs
    }

    async fn stop_inner(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        if let Some(process) = self.process.take() {
            let (clean, logs) =
                tokio::task::spawn_blocking(move || crate::process::terminate(process))
                    .await
                    .unwrap();
            assert!(clean, "the binary did not stop cleanly: {logs}");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        // The database (a field) is dropped after this.
    }
}

/// A new, empty database on the test PostgreSQL server, dropped (`with
/// (force)`) when this value is.
pub struct TestDatabase {
    /// The database's URL (through the pooler for a pooler database).
    pub url: String,
    /// Where migrations go (the pooler's session-mode twin), if not `url`.
    pub migration_url: Option<String>,
    /// The administrator's URL of the server (plaintext, direct).
    server: String,
    name: String,
}

impl TestDatabase {
    /// `None` when PostgreSQL is not available (and not required).
    pub async fn create() -> Option<TestDatabase> {
        let server = postgres_server()?;
        let name = format!("commandes_test_{:016x}", rand_u64());
        admin_sql(server, &format!("create database {name}")).await;
        Some(TestDatabase {
            url: with_database(server, &name),
            migration_url: None,
            server: server.to_string(),
            name,
        })
    }

    /// A new database on the stand-in's cluster, reached through its
    /// transaction-mode PgBouncer; `None` when the stand-in is not
    /// available (and not required).
    pub async fn create_behind_pooler() -> Option<TestDatabase> {
        let pooler = crate::standin::pooler_or_skip()?;
        let server = pooler.cluster.admin_url("postgres");
        let name = format!("commandes_test_{:016x}", rand_u64());
        admin_sql(&server, &format!("create database {name}")).await;
        Some(TestDatabase {
            url: pooler.transaction_url(&name),
            migration_url: Some(pooler.session_url(&name)),
            server,
            name,
        })
    }

    /// A direct, plaintext administrator's URL of this database.
    pub fn direct_url(&self) -> String {
        with_database(&self.server, &self.name)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Dropping needs a connection of its own; do it off the test's
        // runtime so Drop stays synchronous.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(admin_sql(
                &server,
                &format!("drop database if exists {name} with (force)"),
            ));
        })
        .join();
    }
}

/// A 503 problem with a `Retry-After` of whole seconds, whose body names
/// none of `internals` (lowercase); returns the body.
pub async fn unavailable_problem(r: Response, what: &str, internals: &[&str]) -> Value {
    assert_eq!(r.status(), 503, "{what}");
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        retry.as_deref().is_some_and(|v| v.parse::<u32>().is_ok()),
        "{what}: Retry-After {retry:?}"
    );
    let body = problem(r, 503).await;
    let text = body.to_string().to_lowercase();
    for internal in internals {
        assert!(!text.contains(internal), "{what}: {internal:?} in {body}");
    }
    body
}

/// Reads a problem+json error and checks its envelope.
pub async fn problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        ct.as_deref(),
        Some("application/problem+json"),
        "problem content type"
    );
    let body: Value = r.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "status member");
    assert_eq!(body["type"], "about:blank");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Reads a JSON success body after checking the status and media type.
pub async fn json(r: Response, status: u16) -> Value {
    let url = r.url().to_string();
    let got = r.status();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "{url}: status (body: {text})");
    assert!(
        ct.as_deref()
            .is_some_and(|ct| ct.starts_with("application/json")),
        "{url}: content type {ct:?}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: body is not JSON ({e}): {text}"))
}

/// The `id` of each order in a list.
pub fn ids(orders: &[Value]) -> Vec<i64> {
    orders
        .iter()
        .map(|o| o["id"].as_i64().expect("id"))
        .collect()
}

/// `text` percent-encoded for use as one path segment or query value.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The fields named in a 422's `errors`, sorted.
pub fn error_fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .expect("errors array")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect();
    fields.sort();
    fields
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    t ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Runs one statement on the server's maintenance connection.
async fn admin_sql(server: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL server: {e}"));
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// `server` with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (server, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The PostgreSQL server to test against, found once per test process.
pub fn postgres_server() -> Option<&'static str> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    let found = SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            return Some(url);
        }
        match throwaway_cluster() {
            Ok(url) => Some(url),
            Err(why) => {
                if std::env::var("COMMANDES_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!("COMMANDES_REQUIRE_POSTGRES=1 but no PostgreSQL is available: {why}");
                }
                eprintln!(
                    "SKIPPED: the PostgreSQL tests did not run ({why}). Set TEST_DATABASE_URL or install \
                     the PostgreSQL server binaries."
                );
                None
            }
        }
    });
    if found.is_none() {
        eprintln!("SKIPPED (no PostgreSQL): this test ran on SQLite only");
    }
    found.as_deref()
}

/// Finds `initdb` and `pg_ctl`: on PATH, or where Debian puts them.
pub fn server_binaries() -> Option<PathBuf> {
    let on_path = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .and_then(|o| {
            let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            dir.join("initdb").exists().then_some(dir)
        });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Starts a private cluster on a free port; it stops when this process ends.
fn throwaway_cluster() -> Result<String, String> {
    let bin =
        server_binaries().ok_or("no TEST_DATABASE_URL and no PostgreSQL server binaries found")?;
    let dir = std::env::temp_dir().join(format!("commandes-pg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    // PostgreSQL refuses to run as root: run it as the `postgres` user then.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let run = |program: &str, args: &[&str]| -> Result<(), String> {
        let path = bin.join(program);
        let mut cmd = if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    if is_root {
        let ok = Command::new("chown")
            .args(["postgres:", &dir.display().to_string()])
            .status();
        if !ok.is_ok_and(|s| s.success()) {
            return Err(
                "running as root and cannot hand a data directory to the postgres user".into(),
            );
        }
    }
    let data = dir.join("data");
    let data_s = data.display().to_string();
    run(
        "initdb",
        &["-D", &data_s, "-A", "trust", "-U", "postgres", "--no-sync"],
    )?;
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
        dir.display()
    );
    run(
        "pg_ctl",
        &[
            "-D",
            &data_s,
            "-o",
            &opts,
            "-l",
            &dir.join("log").display().to_string(),
            "-w",
            "start",
        ],
    )?;
    // A watchdog stops the cluster and removes it once this process is gone.
    let pg_ctl = bin.join("pg_ctl").display().to_string();
    let stop = if is_root {
        format!("runuser -u postgres -- {pg_ctl} -D {data_s} -m immediate stop")
    } else {
        format!("{pg_ctl} -D {data_s} -m immediate stop")
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Declares each listed `async fn(TestApp)` as three tests: `sqlite::name`,
/// `postgres::name` and `pooler::name` (PostgreSQL through PgBouncer in
/// transaction mode, over TLS).
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::support::TestApp::spawn($crate::support::Backend::Sqlite)
                        .await
                        .expect("SQLite is always available");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod pooler {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::support::TestApp::spawn($crate::support::Backend::Pooler).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

impl TestApp {
    /// The PostgreSQL server URL and database name of a PostgreSQL app.
    pub fn pg_database(&self) -> (&str, &str) {
        let db = self._database.as_ref().expect("a PostgreSQL app");
        (&db.server, &db.name)
    }

    /// A direct, plaintext administrator's URL of the app's PostgreSQL
    /// database (bypassing any pooler).
    pub fn direct_url(&self) -> String {
        self._database
            .as_ref()
            .expect("a PostgreSQL app")
            .direct_url()
    }
}

/// Runs one statement as the test server's administrator.
pub async fn admin(server: &str, sql: &str) {
    admin_sql(server, sql).await;
}

/// Runs `sql` (a single count) on the app's own database, bypassing the API.
pub async fn count_rows(app: &TestApp, sql: &str) -> i64 {
    match app.backend {
        Backend::Sqlite => {
            let path = app.database_url.trim_start_matches("sqlite://").to_string();
            let sql = sql.to_string();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the test database");
                conn.query_row(&sql, [], |r| r.get(0)).expect("count")
            })
            .await
            .unwrap()
        }
        Backend::Postgres | Backend::Pooler => {
            let (client, conn) = tokio_postgres::connect(&app.direct_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
            drop(client);
            let _ = task.await;
            n
        }
    }
}

/// The answer to [`TestApp::raw_http`].
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as received.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    /// A header's value (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl TestApp {
    /// One HTTP/1.1 exchange over a fresh TCP connection: `head` is the
    /// request line and headers (no `Host`, no final blank line), `body`
    /// goes out as it is. Write errors are ignored, since the server may
    /// answer and close before reading everything (a 413); whatever it
    /// answered is returned. Use it where reqwest would report the early
    /// close as an error instead of the answer.
    pub async fn raw_http(&self, head: &str, body: &[u8]) -> RawResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut request =
            format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").into_bytes();
        request.extend_from_slice(body);
        let _ = stream.write_all(&request).await;
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        let text = String::from_utf8_lossy(&received).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        RawResponse {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }
}

/// Runs `sql` (statements without results) on the app's own database,
/// bypassing the API; returns the rows the last one changed (SQLite) or 0.
pub async fn exec_sql(app: &TestApp, sql: &str) -> u64 {
    match app.backend {
        Backend::Sqlite => {
            let path = app.database_url.trim_start_matches("sqlite://").to_string();
            let sql = sql.to_string();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).expect("open the test database");
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                conn.execute(&sql, []).expect("statement") as u64
            })
            .await
            .unwrap()
        }
        Backend::Postgres | Backend::Pooler => {
            let (client, conn) = tokio_postgres::connect(&app.direct_url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            let n = client.execute(sql, &[]).await.unwrap();
            drop(client);
            let _ = task.await;
            n
        }
    }
}

/// A second store on the app's database, to look at what the app wrote
/// through the storage seam (no migration: the app did that).
pub async fn open_store(app: &TestApp) -> std::sync::Arc<dyn commandes::storage::Store> {
    commandes::storage::open(
        &app.database_url.parse().expect("a database URL"),
        &commandes::storage::StoreOptions::default(),
    )
    .await
    .expect("open the app's database")
}

/// `GET /health/ready` until it answers 200 (at most 5 s): the probe
/// reuses its answer for about a second, so a recovery shows up that much
/// later. Returns the last body.
pub async fn wait_until_ready(app: &TestApp) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let r = app
            .anonymous(Method::GET, "/health/ready")
            .send()
            .await
            .expect("request sent");
        let status = r.status();
        let body: Value = r.json().await.expect("json body");
        if status == 200 {
            return body;
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "not ready again: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
