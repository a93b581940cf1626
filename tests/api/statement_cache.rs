//! `database.statement_cache`, with the real binary: named statements on a
//! direct connection (and a schema change under the running service that
//! invalidates them), none through the stand-in's transaction-mode
//! PgBouncer, whether asked for (`on` falls back) or not (`auto`).
//! `DISCARD ALL` on the service's own connection is the unit test
//! `a_statement_the_server_forgot_is_prepared_again` (statements.rs).

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::process::{commandes, serve, terminate};
use crate::standin::pooler_or_skip;
use crate::support::{admin, TestDatabase, TOKEN};

fn service(dir: &Path, url: &str, mode: &str) -> std::process::Command {
    let mut cmd = commandes(dir);
    cmd.env("COMMANDES_DATABASE_URL", url)
        .env("COMMANDES_API_TOKENS", TOKEN)
        .env("COMMANDES_DATABASE_STATEMENT_CACHE", mode)
        .env("COMMANDES_POOL_SIZE", "4")
        .env_remove("COMMANDES_DATABASE_CA_FILE")
        .args(["serve", "--no-demo-data"]);
    cmd
}

/// A round of every kind of request on a new order; the statuses seen,
/// none of them a 5xx.
async fn round(base: String, n: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let send = |method: Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(TOKEN)
    };
    let mut seen = Vec::new();
    let r = send(Method::POST, "/commandes")
        .json(&json!({"order_id": format!("SC-{n}"), "customer_id": "C1", "total_amount": "12.50"}))
        .send()
        .await
        .unwrap();
    seen.push(r.status().as_u16());
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/commandes/{id}"), None),
        (
            Method::GET,
            "/commandes?status=pending&limit=5".into(),
            None,
        ),
        (Method::GET, "/stats".into(), None),
        (
            Method::PUT,
            format!("/commandes/{id}/status"),
            Some(json!("processing")),
        ),
        (
            Method::PUT,
            format!("/commandes/{id}"),
            Some(json!({"customer_id": "C2"})),
        ),
        (Method::DELETE, format!("/commandes/{id}"), None),
    ] {
        let mut req = send(method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let status = req.send().await.unwrap().status();
        assert!(status.is_success(), "{method} {path}: {status}");
        seen.push(status.as_u16());
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_names_statements_directly_and_survives_a_schema_change_under_it() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&mut service(dir.path(), &db.url, "auto"), false);
    round(served.base(), 1).await;
    // A result type of every cached order statement changes under the
    // service (varchar(50) to varchar(60)): PostgreSQL then refuses the
    // cached plans ("cached plan must not change result type").
    admin(
        &db.url,
        "alter table commandes alter column customer_id type varchar(60)",
    )
    .await;
    round(served.base(), 2).await;
    round(served.base(), 3).await;
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    assert!(
        logs.contains("statement cache") && logs.contains("\"named\":true"),
        "named statements on a direct connection: {logs}"
    );
    assert!(
        logs.contains("the server forgot a named statement"),
        "the invalidated statements were prepared again: {logs}"
    );
    assert!(!logs.contains("unnamed from now on"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_transaction_pooler_on_falls_back_and_auto_stays_off() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    pooler_or_skip().unwrap();
    let session = db.migration_url.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for mode in ["on", "auto"] {
        let mut cmd = service(dir.path(), &db.url, mode);
        cmd.env("COMMANDES_MIGRATION_DATABASE_URL", &session);
        let served = serve(&mut cmd, false);
        // Concurrent rounds, so that transactions of one service
        // connection land on different server connections.
        let rounds: Vec<_> = (0..8)
            .map(|i| {
                let n = if mode == "on" { i } else { 100 + i };
                tokio::spawn(round(served.base(), n))
            })
            .collect();
        for r in rounds {
            r.await.unwrap();
        }
        let (clean, logs) = terminate(served);
        assert!(clean, "{logs}");
        assert!(
            logs.contains("statement cache") && logs.contains("\"named\":false"),
            "{mode}: no named statements through the pooler: {logs}"
        );
        if mode == "on" {
            assert!(
                logs.contains("database.statement_cache = on, but"),
                "on says why it falls back: {logs}"
            );
        }
    }
}
