//! Small doors closed: JWTs without `sub`, short static tokens, imported
//! ids that would exhaust the id sequence, a customer claim users can
//! edit, the shipped compose file.

use commandes::access::JwtSecret;
use reqwest::Method;
use serde_json::json;

use crate::jwt::{claims, hs256, jwt_app, now, with, SECRET};
use crate::process::{commandes, serve, terminate};
use crate::support::{json, TestApp, TOKEN};

/// A POST with an idempotency key.
async fn post_with_key(
    app: &TestApp,
    token: &str,
    key: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    app.anonymous(Method::POST, "/commandes")
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// Tokens without `sub` (Supabase's `service_role` key has none) each have
/// their own idempotency keys: the same key from two such tokens creates
/// two orders, and only a retry with the same token replays.
async fn jwts_without_sub_do_not_share_idempotency_keys(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap())
    })
    .await;
    let no_sub = |iat: i64| {
        hs256(&with(
            claims("service_role", "unused"),
            json!({"sub": null, "iat": iat}),
        ))
    };
    let (first, second) = (no_sub(now()), no_sub(now() - 60));
    assert_ne!(first, second);
    let a = json!({"order_id": "NOSUB-A", "customer_id": "C1", "total_amount": "1.00"});
    let b = json!({"order_id": "NOSUB-B", "customer_id": "C2", "total_amount": "2.00"});
    let created_a = json(post_with_key(&app, &first, "same-key", &a).await, 201).await;
    // Another holder of another sub-less token, the same key: its own.
    let r = post_with_key(&app, &second, "same-key", &b).await;
    assert!(r.headers().get("idempotent-replayed").is_none());
    let created_b = json(r, 201).await;
    assert_eq!(created_b["order_id"], "NOSUB-B");
    // The first token's retry replays its own order.
    let r = post_with_key(&app, &first, "same-key", &a).await;
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(json(r, 201).await["id"], created_a["id"]);
}

/// The largest id an import takes: 2^53 - 1.
const MAX_IMPORTED_ID: i64 = 9_007_199_254_740_991;

/// An imported id near `i64::MAX` would leave the id sequence no room, and
/// every later `POST` would fail: ids above 2^53 - 1 are refused, row by
/// row, in every format.
async fn imported_ids_leave_the_sequence_room(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let import = |name: &str, content: String| {
        std::fs::write(dir.path().join(name), content).unwrap();
        commandes(dir.path())
            .args(["--database-url", &app.database_url, "import", name])
            .args(["--no-progress"])
            .output()
            .unwrap()
    };
    for too_big in [i64::MAX, MAX_IMPORTED_ID + 1] {
        let out = import(
            "big.csv",
            format!("id,order_id,customer_id,total_amount\n{too_big},BIG-1,C1,1.00\n"),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{too_big}: {stderr}");
        assert!(
            stderr.contains("big.csv:2: id: must be an integer from 1 to 9007199254740991"),
            "{stderr}"
        );
        let out = import(
            "big.ndjson",
            format!(
                "{{\"id\":{too_big},\"order_id\":\"BIG-1\",\"customer_id\":\"C1\",\"total_amount\":\"1.00\"}}\n"
            ),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{too_big}: {stderr}");
        assert!(stderr.contains("big.ndjson:1: id:"), "{stderr}");
    }
    let out = import(
        "edge.csv",
        format!("id,order_id,customer_id,total_amount\n{MAX_IMPORTED_ID},EDGE-1,C1,1.00\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The sequence has room: new orders still get ids.
    let created = app.create("AFTER-1", "C1", "1.00", "pending").await;
    assert_eq!(created["id"], MAX_IMPORTED_ID + 1);
    let created = app.create("AFTER-2", "C1", "1.00", "pending").await;
    assert_eq!(created["id"], MAX_IMPORTED_ID + 2);
}

crate::both_backends!(
    jwts_without_sub_do_not_share_idempotency_keys,
    imported_ids_leave_the_sequence_room,
);

/// A token anyone could guess is refused at start, without being shown.
#[test]
fn a_short_token_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for var in [
        "COMMANDES_API_TOKENS",
        "COMMANDES_READ_TOKENS",
        "COMMANDES_METRICS_TOKEN",
    ] {
        let mut child = commandes(dir.path())
            .env("COMMANDES_DATABASE_URL", "sqlite::memory:")
            .env(var, "change-me")
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // It must refuse at once; one that serves is stopped and fails.
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{var}: the service started with the token change-me");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains("at least 16 characters"), "{var}: {stderr}");
        assert!(!stderr.contains("change-me"), "{var}: {stderr}");
    }
}

/// The compose file ships no token and publishes the port on this machine
/// only.
#[test]
fn the_compose_file_ships_no_token_and_binds_loopback() {
    let compose =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
            .unwrap();
    assert!(!compose.contains("change-me"), "a default token is shipped");
    assert!(
        compose.contains("COMMANDES_API_TOKENS: ${COMMANDES_API_TOKENS:?"),
        "compose must refuse to start without a token"
    );
    let ports: Vec<&str> = compose
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("- \"") && l.ends_with(":8001\""))
        .collect();
    assert_eq!(ports, ["- \"127.0.0.1:8001:8001\""]);
}

/// `user_metadata` is editable by the user it describes (Supabase's
/// `updateUser`): a customer claim read there is a warning at start-up.
#[test]
fn a_customer_claim_in_user_metadata_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    for (claim, warned) in [
        ("user_metadata.customer_id", true),
        ("app_metadata.customer_id", false),
    ] {
        let served = serve(
            commandes(dir.path())
                .env("COMMANDES_DATABASE_URL", "sqlite::memory:")
                .env("COMMANDES_API_TOKENS", TOKEN)
                .env("COMMANDES_JWT_SECRET", SECRET)
                .env("COMMANDES_CUSTOMER_CLAIM", claim),
            false,
        );
        let (clean, logs) = terminate(served);
        assert!(clean, "{logs}");
        let warning = logs
            .lines()
            .find(|l| l.contains("\"WARN\"") && l.contains("user_metadata"));
        assert_eq!(warning.is_some(), warned, "{claim}: {logs}");
        if let Some(line) = warning {
            assert!(line.contains("app_metadata"), "{line}");
        }
    }
}
