//! Probes, request ids, metrics and CORS.

use reqwest::Method;
use serde_json::Value;

use crate::support::{problem, Backend, TestApp, TOKEN};

async fn probes_answer_without_a_token(app: TestApp) {
    for path in ["/health/live", "/health/ready", "/health/live?x=1"] {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"status": "ok"}), "{path}");
    }
}

async fn a_valid_request_id_is_echoed_and_quoted_in_problems(app: TestApp) {
    let r = app
        .request(Method::GET, "/commandes/999")
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let body = problem(r, 404).await;
    assert_eq!(body["request_id"], "trace-abc-123");
}

async fn an_unsafe_request_id_is_replaced(app: TestApp) {
    for bad in ["has space", &"x".repeat(200), ""] {
        let r = app
            .request(Method::GET, "/stats")
            .header("x-request-id", bad)
            .send()
            .await
            .unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 32, "a generated id");
    }
    // Every response carries one, errors included.
    let r = app
        .anonymous(Method::GET, "/no/such/route")
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-request-id"));
    let a = app.get("/stats").await.headers()["x-request-id"].clone();
    let b = app.get("/stats").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

async fn metrics_need_a_token_and_show_routes(app: TestApp) {
    let r = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    problem(r, 401).await;
    app.get("/commandes/123456").await;
    app.get("/commandes?limit=3").await;
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(
            r#"commandes_http_requests_total{method="GET",route="/commandes/{id}",status="404"}"#
        ),
        "requests by route template: {text}"
    );
    assert!(text.contains(
        r#"commandes_http_request_duration_seconds_bucket{method="GET",route="/commandes""#
    ));
    assert!(
        !text.contains("route=\"/commandes/123456\""),
        "never the raw path"
    );
    assert!(text.contains("commandes_db_query_duration_seconds_bucket"));
    assert!(text.contains(r#"commandes_db_pool_connections{state="idle"}"#));
    let build_info = format!(
        r#"commandes_build_info{{version="{}",revision="{}"}} 1"#,
        commandes::build_info::VERSION,
        commandes::build_info::REVISION
    );
    assert!(text.contains(&build_info), "no {build_info}: {text}");
}

async fn creates_and_status_changes_are_counted(app: TestApp) {
    let order = app.create("MET-1", "C1", "1.00", "pending").await;
    app.put(
        &format!("/commandes/{}/status", order["id"]),
        &serde_json::json!("processing"),
    )
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(r#"commandes_orders_created_total{status="pending"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"commandes_order_status_changes_total{from="pending",to="processing"}"#),
        "{text}"
    );
}

/// How many database calls readiness probes have made so far (every app
/// of this test process counts: the metrics are process-wide).
async fn readiness_calls(app: &TestApp) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    readiness_calls_in(&text)
}

/// The readiness calls in a Prometheus scrape: the store operations a probe
/// may use (`info` counts every order; `schema_state` does not).
pub fn readiness_calls_in(scrape: &str) -> u64 {
    scrape
        .lines()
        .filter(|l| l.starts_with("commandes_db_query_duration_seconds_count{"))
        .filter(|l| l.contains("operation=\"info\"") || l.contains("operation=\"schema_state\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A burst of probes costs about one database call per second, not one
/// each: the answer is reused for a second, and computed by one probe at a
/// time while the others wait for it.
async fn readiness_is_cached_and_computed_once_at_a_time(app: TestApp) {
    let app = std::sync::Arc::new(app);
    let before = readiness_calls(&app).await;
    let started = std::time::Instant::now();
    let probes: Vec<_> = (0..10)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let r = app
                        .anonymous(Method::GET, "/health/ready")
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for p in probes {
        p.await.unwrap();
    }
    let seconds = started.elapsed().as_secs();
    let calls = readiness_calls(&app).await - before;
    // One per second of the burst, one more at each end, and some slack
    // for the probes of other tests running in this process.
    assert!(
        calls <= seconds + 2 + 8,
        "200 probes in {seconds} s made {calls} database calls"
    );
    // The answer is not kept for long: a probe a second later asks again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = readiness_calls(&app).await;
    let r = app
        .anonymous(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(readiness_calls(&app).await > before, "asked again");
}

/// The value of the sample `series` (name and labels, exactly as written)
/// in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Idle and in-use connections add up to the open ones, never past the
/// maximum; the maximum and the waiting requests are metrics of their own,
/// each with HELP and TYPE.
async fn pool_gauges_add_up(app: TestApp) {
    app.get("/commandes?limit=3").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let idle = sample(&text, r#"commandes_db_pool_connections{state="idle"}"#).expect(&text);
    let in_use = sample(&text, r#"commandes_db_pool_connections{state="in_use"}"#).expect(&text);
    let max = sample(&text, "commandes_db_pool_max_connections").expect(&text);
    let waiting = sample(&text, "commandes_db_pool_waiting_requests").expect(&text);
    assert!(idle >= 0.0 && in_use >= 0.0 && waiting >= 0.0);
    assert!(
        idle + in_use >= 1.0,
        "a request has opened a connection: {text}"
    );
    assert!(
        idle + in_use <= max,
        "{idle} + {in_use} open, {max} at most"
    );
    match app.backend {
        // SQLite's connections (the writer and the readers) are all open
        // for the store's life; the test settings ask for 8 PostgreSQL
        // connections at most.
        Backend::Sqlite => assert_eq!(idle + in_use, max),
        _ => assert_eq!(max, 8.0),
    }
    for name in [
        "commandes_db_pool_connections",
        "commandes_db_pool_max_connections",
        "commandes_db_pool_waiting_requests",
    ] {
        assert!(text.contains(&format!("# TYPE {name} gauge")), "{name}");
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    for gone in ["size", "waiting", "max"] {
        assert!(
            !text.contains(&format!(
                r#"commandes_db_pool_connections{{state="{gone}"}}"#
            )),
            "{gone} is not a state of a connection"
        );
    }
}

/// A path no route serves is labelled `unmatched`: never empty, never the
/// path the client sent.
async fn unknown_routes_get_a_bounded_label(app: TestApp) {
    for path in ["/no/such/route-7f3a9", "/commandes/1/nothing-here-7f3a9"] {
        let r = app.get(path).await;
        problem(r, 404).await;
    }
    let r = app.anonymous(Method::GET, "/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.contains(
            r#"commandes_http_requests_total{method="GET",route="unmatched",status="404"}"#
        ),
        "{text}"
    );
    assert!(!text.contains("route=\"\""), "an empty route label: {text}");
    assert!(!text.contains("7f3a9"), "a raw path in a label: {text}");
    assert!(
        text.contains(r#"commandes_http_requests_total{method="GET",route="/",status="200"}"#),
        "{text}"
    );
}

/// The standard process metrics, with the types client libraries give
/// them, read from this (test) process.
async fn process_metrics_are_exported(app: TestApp) {
    let text = app.get("/metrics").await.text().await.unwrap();
    for (name, kind) in [
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {text}"
        );
        assert!(sample(&text, name).is_some(), "{name}: {text}");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = sample(&text, "process_start_time_seconds").unwrap();
    assert!(started <= now + 1.0 && started > now - 3600.0, "{started}");
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    let open = sample(&text, "process_open_fds").unwrap();
    assert!(open >= 3.0 && open <= sample(&text, "process_max_fds").unwrap());
    assert!(sample(&text, "process_cpu_seconds_total").unwrap() > 0.0);
}

crate::both_backends!(
    pool_gauges_add_up,
    unknown_routes_get_a_bounded_label,
    process_metrics_are_exported,
    readiness_is_cached_and_computed_once_at_a_time,
    probes_answer_without_a_token,
    a_valid_request_id_is_echoed_and_quoted_in_problems,
    an_unsafe_request_id_is_replaced,
    metrics_need_a_token_and_show_routes,
    creates_and_status_changes_are_counted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_is_the_only_key_to_metrics() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.metrics.token = "scrape-only-token-0123".into()
    })
    .await
    .unwrap();
    let with = |token: &'static str| {
        app.anonymous(Method::GET, "/metrics")
            .bearer_auth(token)
            .send()
    };
    assert_eq!(with("scrape-only-token-0123").await.unwrap().status(), 200);
    assert_eq!(
        with(TOKEN).await.unwrap().status(),
        401,
        "an API token does not open /metrics"
    );
    // ... and the metrics token opens nothing else.
    assert_eq!(
        app.anonymous(Method::GET, "/stats")
            .bearer_auth("scrape-only-token-0123")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_by_default_and_follows_its_settings() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let r = app
        .anonymous(Method::GET, "/")
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));

    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.cors.allowed_origins = vec!["https://shop.example.com".into()];
        s.cors.max_age_secs = 120;
    })
    .await
    .unwrap();
    let preflight = app
        .anonymous(Method::OPTIONS, "/commandes/1")
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(preflight.headers()["access-control-max-age"], "120");
    let r = app
        .request(Method::GET, "/stats")
        .header("origin", "https://shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("location"));
    let r = app
        .request(Method::GET, "/stats")
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    let body = problem(r, 403).await;
    assert!(body["detail"].is_string());
}

/// An outage: connections to the database are refused, then allowed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_is_a_503_and_the_service_recovers() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    app.create("OUT-1", "C1", "1.00", "pending").await;
    let (server, name) = app.pg_database();
    crate::support::admin(
        server,
        &format!("alter database {name} allow_connections false"),
    )
    .await;
    crate::support::admin(
        server,
        &format!("select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'"),
    )
    .await;

    let started = std::time::Instant::now();
    let r = app.get("/commandes/order/OUT-1").await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "bounded, not a hang"
    );
    assert!(r.headers().contains_key("retry-after"));
    let body = problem(r, 503).await;
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("terminat") && !text.contains("sqlstate"),
        "no driver text: {body}"
    );
    let ready = app
        .anonymous(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "unavailable");
    assert!(ready["reason"].is_string());

    crate::support::admin(
        server,
        &format!("alter database {name} allow_connections true"),
    )
    .await;
    let r = app.get("/commandes/order/OUT-1").await;
    assert_eq!(r.status(), 200, "recovers without a restart");
    crate::support::wait_until_ready(&app).await;
}

/// With `server.metrics_address`, a second port serves the scrape with no
/// token (and nothing else); the main port's `/metrics` still wants one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_serves_the_scrape_without_a_token() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.server.metrics_address = "127.0.0.1:0".into()
    })
    .await
    .unwrap();
    let metrics = app.metrics_base.clone().expect("a metrics listener");
    assert_ne!(metrics, app.base);
    app.get("/stats").await;
    let r = reqwest::get(format!("{metrics}/metrics")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"commandes_http_requests_total{method="GET",route="/stats",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("process_open_fds "), "{text}");
    assert!(
        text.contains("commandes_db_pool_max_connections "),
        "{text}"
    );
    // Nothing else is served there, and errors are problems.
    for path in ["/stats", "/commandes", "/health/live", "/metrics/x"] {
        let r = reqwest::get(format!("{metrics}{path}")).await.unwrap();
        problem(r, 404).await;
    }
    let r = reqwest::Client::new()
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    problem(r, 405).await;
    // The main port is unchanged.
    let r = app.anonymous(Method::GET, "/metrics").send().await.unwrap();
    problem(r, 401).await;

    // Off by default.
    let plain = TestApp::spawn(Backend::Sqlite).await.unwrap();
    assert!(plain.metrics_base.is_none());
}
