//! Bearer tokens: who gets in, who gets a 401, and what is checked first.

use reqwest::{Method, RequestBuilder, Response};
use serde_json::json;

use crate::support::{json, problem, TestApp, TOKEN};

/// Every protected operation, with a body that would be valid for it.
fn protected() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    let order = json!({"order_id": "CMD001", "customer_id": "C1", "total_amount": "1.00"});
    vec![
        (Method::GET, "/stats", None),
        (Method::GET, "/commandes", None),
        (Method::POST, "/commandes", Some(order)),
        (Method::GET, "/commandes/1", None),
        (
            Method::PUT,
            "/commandes/1",
            Some(json!({"customer_id": "C2"})),
        ),
        (Method::DELETE, "/commandes/1", None),
        (
            Method::PUT,
            "/commandes/1/status",
            Some(json!("processing")),
        ),
        (Method::GET, "/commandes/order/CMD001", None),
        (Method::GET, "/commandes/customer/C1", None),
        (Method::GET, "/commandes/status/pending", None),
    ]
}

fn with_body(request: RequestBuilder, body: &Option<serde_json::Value>) -> RequestBuilder {
    match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(b.to_string()),
        None => request,
    }
}

/// Checks a 401: problem body and `WWW-Authenticate: Bearer`.
async fn assert_unauthorized(r: Response, what: &str) {
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        challenge.as_deref(),
        Some("Bearer"),
        "{what}: WWW-Authenticate"
    );
    let body = problem(r, 401).await;
    assert_eq!(body["title"], "Unauthorized", "{what}");
}

/// Orders that exist once the test has set up its data.
async fn seed(app: &TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
}

/// Nothing was changed by refused requests.
async fn assert_untouched(app: &TestApp) {
    let orders = app.list("/commandes").await;
    assert_eq!(orders.len(), 1, "{orders:?}");
    assert_eq!(orders[0]["order_id"], "CMD001");
    assert_eq!(orders[0]["customer_id"], "C1");
    assert_eq!(orders[0]["status"], "pending");
    assert_eq!(orders[0]["created_at"], orders[0]["updated_at"]);
}

async fn no_header_is_401_everywhere(app: TestApp) {
    seed(&app).await;
    for (method, path, body) in protected() {
        let r = with_body(app.anonymous(method.clone(), path), &body)
            .send()
            .await
            .unwrap();
        assert_unauthorized(r, &format!("{method} {path}")).await;
    }
    assert_untouched(&app).await;
}

async fn malformed_headers_are_401(app: TestApp) {
    seed(&app).await;
    let headers = [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        "Bearer  ".to_string(),
        format!("Basic {TOKEN}"),
        "Basic dXNlcjpwYXNz".to_string(),
        TOKEN.to_string(),
        format!("Bearer {TOKEN} extra"),
        format!("Token {TOKEN}"),
        format!("Bearer{TOKEN}"),
        String::new(),
    ];
    for header in &headers {
        for (method, path, body) in protected() {
            let request = app
                .anonymous(method.clone(), path)
                .header("authorization", header.as_str());
            let r = with_body(request, &body).send().await.unwrap();
            assert_unauthorized(r, &format!("{method} {path} with {header:?}")).await;
        }
    }
    assert_untouched(&app).await;
}

async fn unknown_tokens_are_401(app: TestApp) {
    seed(&app).await;
    let near_misses = [
        "wrong".to_string(),
        TOKEN.to_uppercase(),
        format!("{TOKEN}x"),
        TOKEN[..TOKEN.len() - 1].to_string(),
    ];
    for token in &near_misses {
        for (method, path, body) in protected() {
            let request = app.anonymous(method.clone(), path).bearer_auth(token);
            let r = with_body(request, &body).send().await.unwrap();
            assert_unauthorized(r, &format!("{method} {path} with token {token:?}")).await;
        }
    }
    assert_untouched(&app).await;
}

async fn the_scheme_name_is_case_insensitive(app: TestApp) {
    seed(&app).await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = app
            .anonymous(Method::GET, "/commandes")
            .header("authorization", format!("{scheme} {TOKEN}"))
            .send()
            .await
            .unwrap();
        let body = json(r, 200).await;
        assert_eq!(body.as_array().map(Vec::len), Some(1), "{scheme}");
    }
    let r = app
        .anonymous(Method::POST, "/commandes")
        .header("authorization", format!("bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(json!({"order_id": "CMD002", "customer_id": "C1", "total_amount": 2}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
}

async fn public_endpoints_need_no_token(app: TestApp) {
    for path in [
        "/",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/health/live",
        "/health/ready",
    ] {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} without a token");
        // A token, even a wrong one, changes nothing.
        let r = app
            .anonymous(Method::GET, path)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} with an unknown token");
        let r = app.get(path).await;
        assert_eq!(r.status(), 200, "{path} with the token");
    }
}

async fn public_endpoints_ignore_query_strings(app: TestApp) {
    for path in [
        "/?x=1",
        "/docs?x=1",
        "/redoc?x=1",
        "/openapi.json?x=1",
        "/health/live?x=1",
        "/health/ready?x=1",
    ] {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let body = json(
        app.anonymous(Method::GET, "/health/live?verbose=1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(body, json!({"status": "ok"}));
}

async fn the_token_is_checked_before_the_body(app: TestApp) {
    // Wrong media type, bad JSON, empty body, bad values, bad id, bad query:
    // without a token, all of them are 401.
    let cases: Vec<(Method, &str, Option<&str>, &str)> = vec![
        (Method::POST, "/commandes", Some("text/plain"), "hello"),
        (Method::POST, "/commandes", None, "{}"),
        (Method::POST, "/commandes", None, ""),
        (
            Method::POST,
            "/commandes",
            Some("application/json"),
            "{not json",
        ),
        (Method::POST, "/commandes", Some("application/json"), ""),
        (
            Method::POST,
            "/commandes",
            Some("application/json"),
            r#"{"order_id": ""}"#,
        ),
        (
            Method::POST,
            "/commandes?colour=red",
            Some("application/json"),
            "{}",
        ),
        (Method::PUT, "/commandes/abc", Some("text/plain"), "x"),
        (Method::PUT, "/commandes/1", Some("application/json"), "{"),
        (Method::PUT, "/commandes/1", Some("application/json"), "{}"),
        (
            Method::PUT,
            "/commandes/abc/status",
            Some("application/json"),
            r#""lost""#,
        ),
        (Method::PUT, "/commandes/1/status", None, r#""processing""#),
        (Method::GET, "/commandes/abc", None, ""),
        (Method::GET, "/commandes?limit=0", None, ""),
        (Method::GET, "/commandes/status/lost", None, ""),
        (Method::GET, "/stats?x=1", None, ""),
        (Method::DELETE, "/commandes/1.5", None, ""),
    ];
    for (method, path, ct, body) in cases {
        let mut request = app.anonymous(method.clone(), path);
        if let Some(ct) = ct {
            request = request.header("content-type", ct);
        }
        let r = request.body(body.to_string()).send().await.unwrap();
        assert_unauthorized(r, &format!("{method} {path} ({ct:?}, {body:?})")).await;
        // With a bad token too.
        let mut request = app.anonymous(method.clone(), path).bearer_auth("nope");
        if let Some(ct) = ct {
            request = request.header("content-type", ct);
        }
        let r = request.body(body.to_string()).send().await.unwrap();
        assert_unauthorized(r, &format!("{method} {path} ({ct:?}, {body:?}) bad token")).await;
    }
    assert_eq!(app.stats().await["total_orders"], 0);
}

async fn unknown_paths_are_404_whatever_the_token(app: TestApp) {
    let paths = [
        (Method::GET, "/nope"),
        (Method::GET, "/commande"),
        (Method::GET, "/commandes/1/extra"),
        (Method::POST, "/commandes/1/status/again"),
        (Method::GET, "/commandes/order/A/B"),
        (Method::GET, "/commandes/1/status/x"),
        (Method::DELETE, "/stats/1"),
        (Method::GET, "/health"),
        (Method::PUT, "/orders/1"),
    ];
    for (method, path) in paths {
        let what = format!("{method} {path}");
        let r = app.anonymous(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{what} without a token");
        problem(r, 404).await;
        let r = app
            .anonymous(method.clone(), path)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{what} with an unknown token");
        problem(r, 404).await;
        let r = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{what} with the token");
        let body = problem(r, 404).await;
        assert_eq!(body["title"], "Not Found", "{what}");
    }
}

async fn wrong_methods_are_405_whatever_the_token(app: TestApp) {
    let cases = [
        (Method::PATCH, "/commandes/1"),
        (Method::POST, "/commandes/1"),
        (Method::DELETE, "/commandes"),
        (Method::PUT, "/commandes"),
        (Method::PATCH, "/commandes"),
        (Method::POST, "/stats"),
        (Method::DELETE, "/stats"),
        (Method::GET, "/commandes/1/status"),
        (Method::POST, "/commandes/1/status"),
        (Method::DELETE, "/commandes/order/CMD001"),
        (Method::POST, "/commandes/customer/C1"),
        (Method::PUT, "/commandes/status/pending"),
        (Method::POST, "/"),
        (Method::DELETE, "/health/live"),
        (Method::POST, "/health/ready"),
        (Method::POST, "/openapi.json"),
        (Method::POST, "/docs"),
        (Method::PUT, "/redoc"),
    ];
    for (method, path) in cases {
        let what = format!("{method} {path}");
        let r = app.anonymous(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status(), 405, "{what} without a token");
        problem(r, 405).await;
        let r = app
            .anonymous(method.clone(), path)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{what} with an unknown token");
        let r = app.request(method.clone(), path).send().await.unwrap();
        assert_eq!(r.status(), 405, "{what} with the token");
        let body = problem(r, 405).await;
        assert_eq!(body["title"], "Method Not Allowed", "{what}");
    }
}

async fn a_service_without_tokens_is_never_open(app: TestApp) {
    for tokens in [
        vec![],
        vec![String::new()],
        vec!["  ".to_string(), String::new()],
    ] {
        let closed = TestApp::spawn_with(app.backend, |s| {
            s.auth.tokens = tokens.iter().map(|t| t.as_str().into()).collect()
        })
        .await
        .expect("same backend as the test app");
        for (method, path, body) in protected() {
            let what = format!("{method} {path} with tokens {tokens:?}");
            let r = with_body(closed.anonymous(method.clone(), path), &body)
                .send()
                .await
                .unwrap();
            assert_unauthorized(r, &what).await;
            let r = with_body(closed.request(method.clone(), path), &body)
                .send()
                .await
                .unwrap();
            assert_unauthorized(r, &format!("{what} and the test token")).await;
            for blank in ["Bearer ", "Bearer  ", "Bearer \"\""] {
                let request = closed
                    .anonymous(method.clone(), path)
                    .header("authorization", blank);
                let r = with_body(request, &body).send().await.unwrap();
                assert_unauthorized(r, &format!("{what} and {blank:?}")).await;
            }
        }
        assert_eq!(
            closed
                .anonymous(Method::GET, "/health/live")
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
}

/// A read-only token the read-token tests configure.
const READER: &str = "reader-token-0123";

/// Every operation of the OpenAPI document that needs a token, with its
/// path filled in for the seeded order: (method, path).
async fn secured_operations(app: &TestApp) -> Vec<(Method, String)> {
    let doc = json(
        app.anonymous(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            if op["security"].as_array().is_none_or(Vec::is_empty) {
                continue;
            }
            let path = path
                .replace("{id}", "1")
                .replace("{order_id}", "CMD001")
                .replace("{customer_id}", "C1")
                .replace("{status}", "pending")
                .replace("{name}", "commandes-20200101T000000.000Z.db");
            ops.push((method.to_uppercase().parse().unwrap(), path));
        }
    }
    ops
}

async fn a_read_token_gets_403_on_every_change_and_reads_everything(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, |s| s.auth.read_tokens = vec![READER.into()])
        .await
        .unwrap();
    seed(&app).await;
    let ops = secured_operations(&app).await;
    // The administration (backups) is refused to a read token whatever
    // the method: tests/api/backup/admin.rs has its whole matrix.
    let (admin, ops): (Vec<_>, Vec<_>) = ops.iter().partition(|(_, p)| p.starts_with("/admin/"));
    assert_eq!(admin.len(), 3, "{admin:?}");
    for (method, path) in &admin {
        let r = app
            .anonymous(method.clone(), path)
            .bearer_auth(READER)
            .send()
            .await
            .unwrap();
        problem(r, 403).await;
    }
    let writes: Vec<_> = ops.iter().filter(|(m, _)| *m != Method::GET).collect();
    let reads: Vec<_> = ops.iter().filter(|(m, _)| *m == Method::GET).collect();
    // The document lists the four changes and the eleven reads (orders,
    // stats and their time series, history, the feed and its stream,
    // whoami).
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert_eq!(reads.len(), 11, "{reads:?}");
    for (method, path) in &writes {
        // 403 comes before the body is looked at: a valid body, an invalid
        // one, none at all.
        for body in [
            Some(
                json!({"order_id": "CMD009", "customer_id": "C1", "total_amount": "1.00"})
                    .to_string(),
            ),
            Some("{not json".to_string()),
            None,
        ] {
            let mut request = app.anonymous(method.clone(), path).bearer_auth(READER);
            if let Some(b) = &body {
                request = request
                    .header("content-type", "application/json")
                    .body(b.clone());
            }
            let r = request.send().await.unwrap();
            let problem = problem(r, 403).await;
            assert_eq!(problem["title"], "Forbidden", "{method} {path}");
        }
    }
    for (method, path) in &reads {
        let r = app
            .anonymous(method.clone(), path)
            .bearer_auth(READER)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{method} {path} with a read token");
    }
    assert_untouched(&app).await;
    // The read-write token passes the same check (whatever comes next; this
    // changes the data).
    for (method, path) in &writes {
        let r = app
            .request(method.clone(), path)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 403, "{method} {path} with the read-write token");
    }
    // A read token is still a token: 401 stays 401.
    let r = app
        .anonymous(Method::DELETE, "/commandes/1")
        .bearer_auth(format!("{READER}x"))
        .send()
        .await
        .unwrap();
    assert_unauthorized(r, "a near miss of the read token").await;
}

async fn every_secured_operation_documents_403(app: TestApp) {
    let doc = json(
        app.anonymous(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let mut checked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for (method, op) in methods.as_object().unwrap() {
            if op["security"].as_array().is_none_or(Vec::is_empty) {
                continue;
            }
            assert!(
                op["responses"]["403"].is_object(),
                "{method} {path} documents 403"
            );
            checked += 1;
        }
    }
    // The orders' twelve, the time series, the stream, whoami, and the
    // three of /admin/backups.
    assert_eq!(checked, 18);
    let scheme = doc["components"]["securitySchemes"]["bearerAuth"]["description"]
        .as_str()
        .unwrap();
    for word in [
        "COMMANDES_READ_TOKENS",
        "JWT",
        "service_role",
        "COMMANDES_CUSTOMER_CLAIM",
        "403",
        "/admin/",
    ] {
        assert!(scheme.contains(word), "the scheme explains {word}");
    }
}

/// `GET /whoami` tells a token what it may do, with a 200 for every token
/// that may read (the dashboard's sign-in asks it instead of probing with
/// a change that fails).
async fn whoami_tells_what_a_token_may_do(app: TestApp) {
    let app = TestApp::spawn_with(app.backend, |s| {
        s.auth.read_tokens = vec![READER.into()];
        s.auth.jwt_issuer = crate::jwt::ISSUER.into();
        s.auth.jwt_secret = Some(commandes::access::JwtSecret::new(crate::jwt::SECRET).unwrap());
        s.auth.customer_claim = "sub".into();
    })
    .await
    .unwrap();
    let me = |token: String| {
        app.anonymous(Method::GET, "/whoami")
            .bearer_auth(token)
            .send()
    };
    let full = json(me(TOKEN.into()).await.unwrap(), 200).await;
    assert_eq!(full["may_write"], true, "{full}");
    assert!(full.get("customer_id").is_none(), "{full}");
    assert!(
        full["who"].as_str().unwrap().starts_with("token:"),
        "{full}"
    );
    assert!(!full.to_string().contains(TOKEN));
    let reader = json(me(READER.into()).await.unwrap(), 200).await;
    assert_eq!(reader["may_write"], false, "{reader}");
    let jwt = crate::jwt::hs256(&crate::jwt::claims("authenticated", "CLIENT-A"));
    let customer = json(me(jwt).await.unwrap(), 200).await;
    assert_eq!(customer["customer_id"], "CLIENT-A", "{customer}");
    assert_eq!(customer["who"], "jwt:CLIENT-A", "{customer}");
    assert_unauthorized(me("nobody-0123456789".into()).await.unwrap(), "whoami").await;
    problem(app.get("/whoami?x=1").await, 422).await;
}

crate::both_backends!(
    whoami_tells_what_a_token_may_do,
    a_read_token_gets_403_on_every_change_and_reads_everything,
    every_secured_operation_documents_403,
    no_header_is_401_everywhere,
    malformed_headers_are_401,
    unknown_tokens_are_401,
    the_scheme_name_is_case_insensitive,
    public_endpoints_need_no_token,
    public_endpoints_ignore_query_strings,
    the_token_is_checked_before_the_body,
    unknown_paths_are_404_whatever_the_token,
    wrong_methods_are_405_whatever_the_token,
    a_service_without_tokens_is_never_open,
);
