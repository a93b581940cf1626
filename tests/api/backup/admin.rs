//! `/admin/backups` over HTTP against the real app on a SQLite file: who
//! may call it (static read-write tokens only), taking, listing and
//! downloading a backup, 409 while one runs, strict names; and the 404 of
//! a PostgreSQL service.

use std::time::Duration;

use commandes::backup;
use commandes::config::{DemoData, Settings};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::jwt::{claims, hs256, ISSUER, SECRET};
use crate::support::{problem, Backend, TestApp, TOKEN};

const READER: &str = "admin-reader-token-0123456789";

/// The app on a SQLite file in `dir`, with a read-write token, a read-only
/// token and JWTs; the handle to stop it.
async fn start(
    dir: &std::path::Path,
) -> (
    String,
    std::sync::Arc<backup::Backups>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut settings = Settings::default();
    settings.server.host = "127.0.0.1".into();
    settings.server.port = 0;
    settings.database.url = format!("sqlite://{}", dir.join("commandes.db").display())
        .parse()
        .unwrap();
    settings.database.demo_data = DemoData::Always;
    settings.auth.tokens = vec![TOKEN.into()];
    settings.auth.read_tokens = vec![READER.into()];
    settings.auth.jwt_secret = Some(commandes::access::JwtSecret::new(SECRET).unwrap());
    settings.auth.jwt_issuer = ISSUER.into();
    let app = commandes::app::build(&settings).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let backups = app.backups().expect("a SQLite file has backups");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    (base, backups, tx, server)
}

async fn call(base: &str, method: Method, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_static_read_write_tokens_administer_backups() {
    let dir = tempfile::tempdir().unwrap();
    let (base, backups, stop, server) = start(dir.path()).await;
    let taken_name = "commandes-20200101T000000.000Z.db";
    let service_jwt = hs256(&claims("service_role", "ops"));
    let user_jwt = hs256(&claims("authenticated", "user-1"));
    for (method, path) in [
        (Method::GET, "/admin/backups".to_string()),
        (Method::POST, "/admin/backups".to_string()),
        (Method::GET, format!("/admin/backups/{taken_name}")),
    ] {
        let r = call(&base, method.clone(), &path, None).await;
        problem(r, 401).await;
        for (who, token) in [
            ("read-only token", READER),
            ("service_role JWT", service_jwt.as_str()),
            ("user JWT", user_jwt.as_str()),
            ("unknown token", "not-a-token-0123456789"),
        ] {
            let r = call(&base, method.clone(), &path, Some(token)).await;
            let wanted = if who == "unknown token" { 401 } else { 403 };
            assert_eq!(r.status().as_u16(), wanted, "{who}: {method} {path}");
            let body = problem(r, wanted).await;
            assert!(!body.to_string().contains("commandes.db"), "{body}");
        }
    }
    // Nothing was taken by any of them.
    assert!(backups.list().await.unwrap().is_empty());

    // The operator's token: list (empty), take, list, download.
    let r = call(&base, Method::GET, "/admin/backups", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), serde_json::json!([]));
    let r = call(&base, Method::POST, "/admin/backups", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let made: Value = r.json().await.unwrap();
    let name = made["name"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/admin/backups/{name}"));
    assert!(backup::parse_backup_name(&name).is_some(), "{made}");
    let r = call(&base, Method::GET, "/admin/backups", Some(TOKEN)).await;
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed, serde_json::json!([made]));
    let entry = &backups.list().await.unwrap()[0];
    assert_eq!(made["size"].as_u64(), Some(entry.size));

    let r = call(&base, Method::GET, &location, Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&name));
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), std::fs::read(&entry.path).unwrap());
    let fetched = dir.path().join("fetched.db");
    std::fs::write(&fetched, &bytes).unwrap();
    let info = backup::verify(&fetched).unwrap();
    assert!(info.orders > 0, "the demo orders are in it");

    // Only names from the list: anything else is a 404, a path included.
    for other in [
        "commandes-20200101T000000.000Z.db",
        "commandes.db",
        "commandes.db.lock",
        ".commandes-backup.lock",
        "..%2Fcommandes.db",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "commandes-20200101T000000Z.db",
    ] {
        let r = call(
            &base,
            Method::GET,
            &format!("/admin/backups/{other}"),
            Some(TOKEN),
        )
        .await;
        let body = problem(r, 404).await;
        assert!(!body.to_string().contains(dir.path().to_str().unwrap()));
    }
    let r = call(
        &base,
        Method::GET,
        "/admin/backups/../../commandes.db",
        Some(TOKEN),
    )
    .await;
    assert!(r.status() == 404, "{}", r.status());
    // No query parameters.
    let r = call(&base, Method::GET, "/admin/backups?dir=/etc", Some(TOKEN)).await;
    problem(r, 422).await;

    // 409 while a backup runs here (held by the test as a running one
    // would hold it), and while another process writes one into the same
    // folder (its lock file); nothing is added.
    let holding = tokio::spawn(backups.clone().hold(Duration::from_secs(30)));
    while !backups.is_running() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = call(&base, Method::POST, "/admin/backups", Some(TOKEN)).await;
    let body = problem(r, 409).await;
    assert!(
        body["detail"].as_str().unwrap().contains("already running"),
        "{body}"
    );
    assert!(
        !body.to_string().contains(dir.path().to_str().unwrap()),
        "{body}"
    );
    holding.abort();
    let _ = holding.await;
    assert!(!backups.is_running());
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(backups.dir().join(".commandes-backup.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    let r = call(&base, Method::POST, "/admin/backups", Some(TOKEN)).await;
    problem(r, 409).await;
    drop(lock);
    assert_eq!(backups.list().await.unwrap().len(), 1);
    // And once it is free, the next one is taken.
    let r = call(&base, Method::POST, "/admin/backups", Some(TOKEN)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(backups.list().await.unwrap().len(), 2);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn on_postgresql_the_admin_backups_say_where_backups_come_from() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    for (method, path) in [
        (Method::GET, "/admin/backups"),
        (Method::POST, "/admin/backups"),
        (
            Method::GET,
            "/admin/backups/commandes-20200101T000000.000Z.db",
        ),
    ] {
        let r = app.request(method, path).send().await.unwrap();
        let body = problem(r, 404).await;
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("pg_dump") && detail.contains("commandes export"),
            "{detail}"
        );
    }
    app.stop().await;
}
