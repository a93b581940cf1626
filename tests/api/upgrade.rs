//! Upgrades without downtime, with the real binary on both backends: this
//! build against a schema a later release has moved on (accepted while
//! the later migrations declare it compatible, refused with a reason once
//! one contracts it), and against a database an earlier release left
//! (brought forward, every row read back exactly). `migrate` is run by
//! several processes at once, as the init containers of a rollout do.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use commandes::storage::migrations::{self, Migration};
use serde_json::{json, Value};

use crate::process::{commandes, serve_database};
use crate::support::{TestDatabase, TOKEN};

/// A database of either backend, reached around the service.
pub enum Db {
    Sqlite {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        url: String,
    },
    Postgres(TestDatabase),
}

impl Db {
    /// A new SQLite file, and a new PostgreSQL database when a server is
    /// available.
    pub async fn both() -> Vec<Db> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commandes.db");
        let url = format!("sqlite://{}", path.display());
        let mut dbs = vec![Db::Sqlite {
            _dir: dir,
            path,
            url,
        }];
        if let Some(db) = TestDatabase::create().await {
            dbs.push(Db::Postgres(db));
        }
        dbs
    }

    pub fn url(&self) -> &str {
        match self {
            Db::Sqlite { url, .. } => url,
            Db::Postgres(db) => &db.url,
        }
    }

    pub fn history(&self) -> &'static [Migration] {
        match self {
            Db::Sqlite { .. } => migrations::SQLITE,
            Db::Postgres(_) => migrations::POSTGRES,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Runs `sql` (any number of statements) in one go.
    pub async fn exec(&self, sql: &str) {
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(10)).unwrap();
                conn.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
            }
            Db::Postgres(db) => {
                let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let task = tokio::spawn(conn);
                client
                    .batch_execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{e}: {sql}"));
                drop(client);
                let _ = task.await;
            }
        }
    }

    /// The version table as (version, compatible_from) pairs.
    async fn recorded(&self) -> Vec<(i64, Option<i64>)> {
        let sql =
            "select version, compatible_from from commandes_schema_migrations order by version";
        match self {
            Db::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
            }
            Db::Postgres(db) => {
                let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                let task = tokio::spawn(conn);
                let rows = client.query(sql, &[]).await.unwrap();
                drop(client);
                let _ = task.await;
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    /// Records a migration a later release would have applied, declaring
    /// `compatible_from`, after running its `sql`.
    pub async fn apply_future(&self, version: i64, name: &str, compatible_from: i64, sql: &str) {
        let record = match self {
            Db::Sqlite { .. } => format!(
                "insert into commandes_schema_migrations (version, name, applied_at, compatible_from)
                 values ({version}, '{name}', '2030-01-01T00:00:00.000000Z', {compatible_from});"
            ),
            Db::Postgres(_) => format!(
                "insert into commandes_schema_migrations (version, name, compatible_from)
                 values ({version}, '{name}', {compatible_from});"
            ),
        };
        self.exec(&format!("begin; {sql}; {record} commit;")).await;
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(dir: &Path, url: &str, sub: &str) -> Output {
    commandes(dir)
        .args(["--database-url", url, sub])
        .output()
        .unwrap()
}

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(20));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("an answer");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET /health/ready` until it answers `want` (the probe reuses its
/// answer for a second); never anything but 200 or 503. The last body.
async fn ready_until(base: &str, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(reqwest::Method::GET, format!("{base}/health/ready"), None).await;
        assert!(status == 200 || status == 503, "{status} {body}");
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_build_serves_a_newer_schema_while_it_declares_this_build_compatible() {
    for db in Db::both().await {
        let dir = tempfile::tempdir().unwrap();
        let (url, name) = (db.url().to_string(), db.name());
        let build = migrations::latest(db.history());
        let out = run(dir.path(), &url, "migrate");
        assert!(out.status.success(), "{name}: {}", text(&out));

        // A later release's expand step: a nullable column this build
        // does not know, still accepting builds of this version.
        db.apply_future(
            build + 1,
            "future_expand",
            build,
            "alter table commandes add column gift_note text",
        )
        .await;
        let out = run(dir.path(), &url, "migrate");
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains(&format!("schema already at version {}", build + 1)),
            "{name}: {}",
            text(&out)
        );
        let out = run(dir.path(), &url, "check");
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert!(
            text(&out).contains("this build:     may serve it"),
            "{name}: {}",
            text(&out)
        );

        let server = serve_database(dir.path(), &url);
        let base = server.base();
        ready_until(&base, 200).await;
        let (status, created) = call(
            reqwest::Method::POST,
            format!("{base}/commandes"),
            Some(json!({"order_id": "NEW-1", "customer_id": "C1", "total_amount": "12.30"})),
        )
        .await;
        assert_eq!(status, 201, "{name}: {created}");
        let id = created["id"].as_i64().unwrap();
        let (status, read) =
            call(reqwest::Method::GET, format!("{base}/commandes/{id}"), None).await;
        assert_eq!((status, &read), (200, &created), "{name}");
        let (status, moved) = call(
            reqwest::Method::PUT,
            format!("{base}/commandes/{id}/status"),
            Some(json!("processing")),
        )
        .await;
        assert_eq!(
            (status, moved["status"].as_str()),
            (200, Some("processing")),
            "{name}"
        );
        let (status, list) = call(reqwest::Method::GET, format!("{base}/commandes"), None).await;
        assert_eq!(
            (status, list.as_array().map(Vec::len)),
            (200, Some(1)),
            "{name}"
        );
        let (status, stats) = call(reqwest::Method::GET, format!("{base}/stats"), None).await;
        assert_eq!(
            (status, &stats["total_amount"]),
            (200, &json!("12.30")),
            "{name}"
        );

        // A contract step: builds of this version no longer work with it.
        db.apply_future(
            build + 2,
            "future_contract",
            build + 1,
            "create table future_contract_marker (x integer)",
        )
        .await;
        let reason = format!(
            "schema version {} accepts builds of schema version {} or later; this build is at {build}",
            build + 2,
            build + 1
        );
        let body = ready_until(&base, 503).await;
        assert_eq!(
            body,
            json!({"status": "unavailable", "reason": reason}),
            "{name}"
        );
        let out = run(dir.path(), &url, "migrate");
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(&reason), "{name}: {}", text(&out));
        let out = run(dir.path(), &url, "check");
        assert!(!out.status.success(), "{name}: {}", text(&out));
        assert!(text(&out).contains(&reason), "{name}: {}", text(&out));
        // A pod of this build started now (a rollback too far) comes up and
        // says why it is not ready, rather than crashing.
        let late = serve_database(dir.path(), &url);
        let body = ready_until(&late.base(), 503).await;
        assert_eq!(body["reason"], json!(reason), "{name}");

        for served in [server, late] {
            served.sigterm();
            let (status, logs) = tokio::task::spawn_blocking(move || served.wait())
                .await
                .unwrap();
            assert_eq!(status.code(), Some(0), "{name}: {logs}");
            assert!(!logs.contains("\"level\":\"ERROR\""), "{name}: {logs}");
        }
    }
}

/// Five orders as a release at schema version 5 stored them, in each
/// dialect's own columns, and how the API must show them.
fn old_orders(db: &Db) -> (String, Vec<Value>) {
    let rows = [
        (
            1,
            "OLD-1",
            "CLIENT123",
            "pending",
            15050_i64,
            "2025-01-02T03:04:05.123456Z",
            "2025-01-02T03:04:05.123456Z",
        ),
        (
            2,
            "CMD/2025/é",
            "C-ü",
            "processing",
            0,
            "2025-02-03T10:00:00.000001Z",
            "2025-02-04T11:12:13.999999Z",
        ),
        (
            3,
            "OLD-3",
            "CLIENT123",
            "completed",
            9_999_999_999,
            "2025-03-01T00:00:00.000000Z",
            "2025-03-02T00:00:00.000000Z",
        ),
        (
            4,
            "OLD-4",
            "C2",
            "cancelled",
            1,
            "2025-03-05T23:59:59.500000Z",
            "2025-03-06T00:00:00.250000Z",
        ),
        (
            7,
            "OLD-7",
            "C2",
            "pending",
            123_456,
            "2025-04-01T12:00:00.000000Z",
            "2025-04-01T12:00:00.000000Z",
        ),
    ];
    let mut sql = String::new();
    let mut want = Vec::new();
    for (id, order_id, customer, status, cents, created, updated) in rows {
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        sql.push_str(&match db {
            Db::Sqlite { .. } => format!(
                "insert into commandes (id, order_id, customer_id, status, total_cents, created_at, updated_at)
                 values ({id}, '{order_id}', '{customer}', '{status}', {cents}, '{created}', '{updated}');"
            ),
            Db::Postgres(_) => format!(
                "insert into commandes (id, order_id, customer_id, status, total_amount, created_at, updated_at)
                 values ({id}, '{order_id}', '{customer}', '{status}', {amount}, '{created}', '{updated}');"
            ),
        });
        want.push(json!({
            "id": id, "order_id": order_id, "customer_id": customer, "status": status,
            "total_amount": amount, "created_at": created, "updated_at": updated,
        }));
    }
    if let Db::Postgres(_) = db {
        // Ids given explicitly leave the identity behind them, as an
        // import by the earlier release did not; put it where it would be.
        sql.push_str("select setval(pg_get_serial_sequence('commandes', 'id'), 7);");
    }
    (sql, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_build_brings_an_older_database_forward_and_reads_its_rows_back_exactly() {
    for db in Db::both().await {
        let dir = tempfile::tempdir().unwrap();
        let (url, name) = (db.url().to_string(), db.name());
        let history = db.history();
        // The database as a release at schema version 5 left it: its
        // version table without `compatible_from`, as that release wrote it.
        let table = match db {
            Db::Sqlite { .. } => {
                "create table commandes_schema_migrations (
                    version integer primary key, name text not null, applied_at text not null);"
            }
            Db::Postgres(_) => {
                "create table commandes_schema_migrations (
                    version bigint primary key, name text not null,
                    applied_at timestamptz not null default now());"
            }
        };
        let mut sql = format!("begin; {table}");
        for m in &history[..5] {
            sql.push_str(m.sql);
            sql.push_str(&format!(
                "\n; insert into commandes_schema_migrations (version, name, applied_at)
                 values ({}, '{}', '2025-01-01T00:00:00.000000Z');",
                m.version, m.name
            ));
        }
        sql.push_str("commit;");
        db.exec(&sql).await;
        let (rows, want) = old_orders(&db);
        db.exec(&rows).await;

        // Three init containers at once.
        let children: Vec<_> = (0..3)
            .map(|_| {
                commandes(dir.path())
                    .args(["--database-url", &url, "migrate"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap())
            .collect();
        for out in &outputs {
            assert!(out.status.success(), "{name}: {}", text(out));
        }
        let moved = outputs
            .iter()
            .filter(|o| {
                text(o).contains(&format!(
                    "migrated schema from version 5 to {}",
                    migrations::latest(history)
                ))
            })
            .count();
        assert_eq!(moved, 1, "{name}: exactly one run did the work");
        let declared: Vec<(i64, Option<i64>)> = history
            .iter()
            .map(|m| (m.version, Some(m.compatible_from)))
            .collect();
        assert_eq!(db.recorded().await, declared, "{name}");

        let server = serve_database(dir.path(), &url);
        let base = server.base();
        ready_until(&base, 200).await;
        for order in &want {
            let id = order["id"].as_i64().unwrap();
            let (status, read) =
                call(reqwest::Method::GET, format!("{base}/commandes/{id}"), None).await;
            assert_eq!((status, &read), (200, order), "{name}");
        }
        let (status, list) = call(
            reqwest::Method::GET,
            format!("{base}/commandes?sort=-total_amount"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: {list}");
        let ids: Vec<i64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [3, 7, 1, 4, 2], "{name}");
        let (_, stats) = call(reqwest::Method::GET, format!("{base}/stats"), None).await;
        assert_eq!(stats["total_orders"], json!(5), "{name}: {stats}");
        assert_eq!(
            stats["total_amount"],
            json!("100001385.06"),
            "{name}: {stats}"
        );
        // New orders follow the old ones.
        let (status, created) = call(
            reqwest::Method::POST,
            format!("{base}/commandes"),
            Some(json!({"order_id": "NEW-1", "customer_id": "C1", "total_amount": "1.00"})),
        )
        .await;
        assert_eq!(status, 201, "{name}: {created}");
        assert!(created["id"].as_i64().unwrap() > 7, "{name}: {created}");

        server.sigterm();
        let (status, logs) = tokio::task::spawn_blocking(move || server.wait())
            .await
            .unwrap();
        assert_eq!(status.code(), Some(0), "{name}: {logs}");
    }
}
