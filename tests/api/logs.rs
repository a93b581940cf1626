//! The binary's log as an operator's pipeline reads it, from its stderr:
//! flat JSON lines, durations as milliseconds to the microsecond, and the
//! drivers' chatter kept out under a plain `RUST_LOG`.

use serde_json::Value;

use crate::process::{commandes, serve, terminate};
use crate::support::{TestDatabase, TOKEN};

/// Every line of `logs`, parsed: each must be one JSON object.
fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The text of `field`'s value in a raw JSON line, as written.
fn raw_value<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let at = line.find(&format!("\"{field}\":"))? + field.len() + 3;
    let rest = &line[at..];
    Some(&rest[..rest.find([',', '}'])?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_are_flat_and_durations_are_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = commandes(dir.path());
    cmd.env("COMMANDES_API_TOKENS", TOKEN)
        .env("COMMANDES_LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    let served = serve(&mut cmd, false);
    let client = reqwest::Client::new();
    for path in ["/stats", "/commandes?limit=5", "/no/such/route"] {
        client
            .get(format!("{}{path}", served.base()))
            .bearer_auth(TOKEN)
            .header("x-request-id", "flat-log-1")
            .send()
            .await
            .unwrap();
    }
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");

    let requests: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("\"message\":\"request\""))
        .collect();
    assert_eq!(requests.len(), 3, "{logs}");
    for line in &requests {
        let latency = raw_value(line, "latency_ms").unwrap();
        let decimals = latency.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            decimals <= 3 && !latency.contains('e'),
            "latency_ms as milliseconds to the microsecond: {line}"
        );
        let parsed: Value = serde_json::from_str(line).unwrap();
        assert_eq!(parsed["request_id"], "flat-log-1", "{line}");
        assert_eq!(parsed["span"], "request", "{line}");
        assert!(parsed["status"].is_u64(), "{line}");
        assert!(parsed["latency_ms"].is_f64(), "{line}");
    }
    for line in json_lines(&logs) {
        let object = line.as_object().expect("an object per line");
        for (key, value) in object {
            assert!(
                !value.is_object() && !value.is_array(),
                "{key} is nested: {line}"
            );
        }
        for key in ["timestamp", "level", "target", "message"] {
            assert!(object.contains_key(key), "no {key}: {line}");
        }
    }
    assert!(
        requests
            .iter()
            .any(|l| l.contains("\"route\":\"unmatched\"")),
        "{logs}"
    );
    // A duration that is not a latency reads the same way.
    let shutdown = logs
        .lines()
        .find(|l| l.contains("initiate graceful shutdown"))
        .expect("the shutdown line");
    assert_eq!(raw_value(shutdown, "shutdown_timeout_ms"), Some("10000.0"));
}

/// Whether a line of the log comes from the PostgreSQL driver.
fn from_driver(line: &Value) -> bool {
    line["target"]
        .as_str()
        .is_some_and(|t| t.starts_with("tokio_postgres"))
}

/// Starts and stops the binary on `url` with `rust_log`; its log lines.
fn serve_once(url: &str, rust_log: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = commandes(dir.path());
    cmd.env("COMMANDES_API_TOKENS", TOKEN)
        .env("COMMANDES_DATABASE_URL", url)
        .env("COMMANDES_LOG_FORMAT", "json")
        .env("RUST_LOG", rust_log);
    let (clean, logs) = terminate(serve(&mut cmd, false));
    assert!(clean, "{logs}");
    json_lines(&logs)
}

/// `RUST_LOG=info` keeps tokio-postgres at warn: the server's NOTICEs
/// (which a start on a migrated database makes) are not logged; naming
/// the crate shows them, so there was something to hold back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_keeps_the_drivers_notices_out() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    // The first start migrates; the later ones find the schema there.
    serve_once(&db.url, "info");
    let named = serve_once(&db.url, "info,tokio_postgres=info");
    assert!(
        named.iter().any(from_driver),
        "a start on a migrated database makes the server say NOTICE: {named:?}"
    );
    let plain = serve_once(&db.url, "info");
    let noisy: Vec<&Value> = plain.iter().filter(|l| from_driver(l)).collect();
    assert!(
        noisy.is_empty(),
        "RUST_LOG=info logged the driver: {noisy:?}"
    );
    assert!(
        plain.iter().any(|l| l["message"] == "listening"),
        "info lines are still there"
    );
}
