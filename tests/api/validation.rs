//! Request bodies that are refused: 400, 413, 415 and 422, and that nothing
//! is written after any of them.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{error_fields, problem, TestApp, TOKEN};

const JSON: Option<&str> = Some("application/json");

async fn post_text(app: &TestApp, body: &str) -> reqwest::Response {
    app.send_raw(Method::POST, "/commandes", JSON, body.to_string())
        .await
}

/// A valid create body with `field` replaced by the raw JSON `literal`.
fn with_field(field: &str, literal: &str) -> String {
    let mut parts = vec![
        ("order_id", r#""CMD001""#.to_string()),
        ("customer_id", r#""C1""#.to_string()),
        ("total_amount", "10".to_string()),
    ];
    match parts.iter_mut().find(|(name, _)| *name == field) {
        Some(part) => part.1 = literal.to_string(),
        None => parts.push((field, literal.to_string())),
    }
    let members: Vec<String> = parts.iter().map(|(n, v)| format!("\"{n}\": {v}")).collect();
    format!("{{{}}}", members.join(", "))
}

/// The database holds no order.
async fn assert_nothing_written(app: &TestApp) {
    assert_eq!(app.list("/commandes").await, Vec::<Value>::new());
    assert_eq!(app.stats().await["total_orders"], 0);
}

/// Posts `body` and expects a 422 naming exactly `fields`.
async fn assert_refused(app: &TestApp, body: &str, fields: &[&str]) -> Value {
    let r = post_text(app, body).await;
    assert_eq!(r.status(), 422, "{body}");
    let problem = problem(r, 422).await;
    assert_eq!(error_fields(&problem), fields, "{body}: {problem}");
    for e in problem["errors"].as_array().unwrap() {
        assert!(
            e["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}: every error has a message: {problem}"
        );
    }
    assert_eq!(problem["title"], "Unprocessable Entity");
    problem
}

async fn every_bad_field_is_listed_together(app: TestApp) {
    let body = json!({
        "order_id": "", "customer_id": 5, "total_amount": "1.234", "status": "lost", "colour": "red",
    });
    let problem = assert_refused(
        &app,
        &body.to_string(),
        &[
            "colour",
            "customer_id",
            "order_id",
            "status",
            "total_amount",
        ],
    )
    .await;
    // The detail names them too.
    let detail = problem["detail"].as_str().unwrap();
    for field in [
        "colour",
        "customer_id",
        "order_id",
        "status",
        "total_amount",
    ] {
        assert!(detail.contains(field), "{detail}");
    }
    assert_nothing_written(&app).await;
}

async fn unknown_fields_are_named(app: TestApp) {
    assert_refused(&app, &with_field("note", r#""x""#), &["note"]).await;
    assert_refused(&app, &with_field("ID", "3"), &["ID"]).await;
    assert_refused(&app, &with_field("orderId", r#""CMD002""#), &["orderId"]).await;
    assert_refused(
        &app,
        r#"{"order_id": "A", "customer_id": "C", "total_amount": 1, "a": 1, "b": null}"#,
        &["a", "b"],
    )
    .await;
    assert_nothing_written(&app).await;
}

async fn missing_required_fields_are_named(app: TestApp) {
    assert_refused(&app, "{}", &["customer_id", "order_id", "total_amount"]).await;
    assert_refused(
        &app,
        r#"{"order_id": "A"}"#,
        &["customer_id", "total_amount"],
    )
    .await;
    assert_refused(
        &app,
        r#"{"customer_id": "C", "total_amount": 1}"#,
        &["order_id"],
    )
    .await;
    assert_refused(
        &app,
        r#"{"status": "pending"}"#,
        &["customer_id", "order_id", "total_amount"],
    )
    .await;
    assert_nothing_written(&app).await;
}

async fn wrong_types_are_named(app: TestApp) {
    let cases = [
        ("order_id", "5"),
        ("order_id", "null"),
        ("order_id", "true"),
        ("order_id", "[\"A\"]"),
        ("order_id", "{\"v\": \"A\"}"),
        ("customer_id", "null"),
        ("customer_id", "12.5"),
        ("total_amount", "true"),
        ("total_amount", "null"),
        ("total_amount", "[10]"),
        ("total_amount", "{\"amount\": 10}"),
        ("status", "1"),
        ("status", "true"),
        ("status", "[\"pending\"]"),
    ];
    for (field, literal) in cases {
        assert_refused(&app, &with_field(field, literal), &[field]).await;
    }
    assert_nothing_written(&app).await;
}

async fn blank_text_is_refused(app: TestApp) {
    for blank in [
        "", " ", "   ", "\\t ", " \\n ", "\\u3000", "\\u00a0", "\\u2003 ",
    ] {
        for field in ["order_id", "customer_id"] {
            assert_refused(&app, &with_field(field, &format!("\"{blank}\"")), &[field]).await;
        }
    }
    assert_nothing_written(&app).await;
}

async fn control_characters_are_refused(app: TestApp) {
    for c in [
        "\\u0000", "\\u0001", "\\u001f", "\\u007f", "\\u0080", "\\u0085", "\\u009f", "\\n", "\\r",
        "\\t",
    ] {
        for field in ["order_id", "customer_id"] {
            for text in [format!("A{c}B"), format!("{c}AB"), format!("AB{c}")] {
                assert_refused(&app, &with_field(field, &format!("\"{text}\"")), &[field]).await;
            }
        }
    }
    assert_nothing_written(&app).await;
}

async fn bad_amounts_are_refused(app: TestApp) {
    let cases = [
        r#""1.234""#,
        "1.234",
        r#""0.001""#,
        r#"".5""#,
        r#""5.""#,
        r#""1e2""#,
        r#""1E2""#,
        r#""+1""#,
        r#"" 1""#,
        r#""1 ""#,
        r#""1,5""#,
        r#""""#,
        r#""abc""#,
        r#""0x10""#,
        r#""-1""#,
        r#""-0.01""#,
        "-1",
        "-0.01",
        "100000000",
        r#""100000000""#,
        "100000000.00",
        "1e8",
        "99999999.991",
        r#""99999999.991""#,
        "99999999.999",
        r#""NaN""#,
        r#""Infinity""#,
    ];
    for literal in cases {
        assert_refused(
            &app,
            &with_field("total_amount", literal),
            &["total_amount"],
        )
        .await;
    }
    assert_nothing_written(&app).await;
}

async fn the_largest_amount_is_accepted(app: TestApp) {
    let r = post_text(&app, &with_field("total_amount", "99999999.99")).await;
    assert_eq!(r.status(), 201);
    let order: Value = r.json().await.unwrap();
    assert_eq!(order["total_amount"], "99999999.99");
}

async fn bad_statuses_are_refused(app: TestApp) {
    for literal in [
        r#""lost""#,
        r#""Pending""#,
        r#""PENDING""#,
        r#"" pending""#,
        r#""""#,
    ] {
        assert_refused(&app, &with_field("status", literal), &["status"]).await;
    }
    assert_nothing_written(&app).await;
}

async fn non_object_bodies_are_422(app: TestApp) {
    for body in [
        "[]",
        "[{}]",
        r#""x""#,
        "3",
        "true",
        "null",
        r#"[{"order_id": "A"}]"#,
    ] {
        assert_refused(&app, body, &["body"]).await;
    }
    assert_nothing_written(&app).await;
}

async fn empty_bodies_are_400(app: TestApp) {
    for body in ["", " ", "\n\t  \r\n"] {
        let r = post_text(&app, body).await;
        let problem = problem(r, 400).await;
        assert_eq!(problem["title"], "Bad Request");
        assert!(problem.get("errors").is_none(), "{problem}");
    }
    assert_nothing_written(&app).await;
}

async fn invalid_json_is_400(app: TestApp) {
    let cases = [
        "{",
        "}",
        "{'order_id': 'A'}",
        r#"{"order_id": "A",}"#,
        r#"{"order_id": "A"} trailing"#,
        r#"{"order_id": "A"}{}"#,
        "nope",
        "NaN",
        r#"{"total_amount": 01}"#,
        r#"{"total_amount": .5}"#,
        r#"{"total_amount": +1}"#,
        r#"{"order_id": "\x"}"#,
        r#"{"order_id": "unterminated}"#,
    ];
    for body in cases {
        let r = post_text(&app, body).await;
        assert_eq!(r.status(), 400, "{body:?}");
        problem(r, 400).await;
    }
    // Bytes that are not UTF-8.
    let r = app
        .send_raw(
            Method::POST,
            "/commandes",
            JSON,
            b"{\"order_id\": \"\xff\xfe\"}".to_vec(),
        )
        .await;
    problem(r, 400).await;
    assert_nothing_written(&app).await;
}

async fn a_body_needs_the_json_content_type(app: TestApp) {
    let valid = with_field("status", r#""pending""#);
    let cases: [(Option<&str>, &str); 9] = [
        (None, &valid),
        (None, ""),
        (Some("text/plain"), &valid),
        (Some("text/plain"), ""),
        (Some("application/x-www-form-urlencoded"), "order_id=A"),
        (Some("application/jsonx"), &valid),
        (Some("application/merge-patch+json"), &valid),
        (Some("text/json"), &valid),
        (Some("multipart/form-data; boundary=x"), &valid),
    ];
    for (ct, body) in cases {
        let r = app
            .send_raw(Method::POST, "/commandes", ct, body.to_string())
            .await;
        assert_eq!(r.status(), 415, "{ct:?} {body:?}");
        let problem = problem(r, 415).await;
        assert_eq!(problem["title"], "Unsupported Media Type");
    }
    // The same on the other operations that take a body.
    let order = app.create("KEEP", "C1", "1", "pending").await;
    let id = order["id"].as_i64().unwrap();
    for (path, body) in [
        (format!("/commandes/{id}"), r#"{"customer_id": "C2"}"#),
        (format!("/commandes/{id}/status"), r#""processing""#),
    ] {
        for ct in [None, Some("text/plain")] {
            let r = app.send_raw(Method::PUT, &path, ct, body.to_string()).await;
            problem(r, 415).await;
            let r = app.send_raw(Method::PUT, &path, ct, "").await;
            problem(r, 415).await;
        }
    }
    assert_eq!(app.fetch(id).await, order);
    assert_eq!(app.stats().await["total_orders"], 1);
}

async fn json_media_type_parameters_are_accepted(app: TestApp) {
    let cases = [
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON",
        "application/json ; charset=utf-8",
    ];
    for (i, ct) in cases.iter().enumerate() {
        let body = json!({"order_id": format!("CMD{i}"), "customer_id": "C1", "total_amount": 1})
            .to_string();
        let r = app
            .send_raw(Method::POST, "/commandes", Some(ct), body)
            .await;
        assert_eq!(r.status(), 201, "{ct}");
    }
    assert_eq!(app.stats().await["total_orders"], 4);
}

async fn the_content_type_comes_before_the_syntax_and_the_values(app: TestApp) {
    // 415 before 400 and 422.
    for body in ["{", "{}", r#"{"colour": 1}"#, "[]"] {
        let r = app
            .send_raw(Method::POST, "/commandes", Some("text/plain"), body)
            .await;
        problem(r, 415).await;
    }
    let r = app
        .send_raw(Method::PUT, "/commandes/abc", Some("text/plain"), "{}")
        .await;
    problem(r, 415).await;
    let r = app
        .send_raw(Method::PUT, "/commandes/abc/status", None, r#""lost""#)
        .await;
    problem(r, 415).await;
    let r = app
        .send_raw(
            Method::POST,
            "/commandes?colour=red",
            Some("text/plain"),
            "{}",
        )
        .await;
    problem(r, 415).await;
    // 400 before 422.
    let r = app.send_raw(Method::PUT, "/commandes/abc", JSON, "{").await;
    problem(r, 400).await;
    let r = app
        .send_raw(Method::PUT, "/commandes/abc/status", JSON, "")
        .await;
    problem(r, 400).await;
    let r = app
        .send_raw(Method::POST, "/commandes?colour=red", JSON, "not json")
        .await;
    problem(r, 400).await;
    assert_nothing_written(&app).await;
}

async fn bad_query_and_bad_body_are_reported_together(app: TestApp) {
    let order = app.create("KEEP", "C1", "1", "pending").await;
    let id = order["id"].as_i64().unwrap();
    let cases = [
        (
            Method::POST,
            "/commandes?colour=red".to_string(),
            r#"{"order_id": "", "customer_id": "C1", "total_amount": 1}"#,
            vec!["colour", "order_id"],
        ),
        (
            Method::POST,
            "/commandes?colour=red".to_string(),
            "{}",
            vec!["colour", "customer_id", "order_id", "total_amount"],
        ),
        (
            Method::PUT,
            format!("/commandes/{id}?colour=red"),
            r#"{"total_amount": "1.234"}"#,
            vec!["colour", "total_amount"],
        ),
        (
            Method::PUT,
            format!("/commandes/{id}/status?colour=red"),
            r#""lost""#,
            vec!["colour", "status"],
        ),
    ];
    // Every case is tried, then the misses are reported together.
    let mut misses = Vec::new();
    for (method, path, body, expected) in cases {
        let r = app.send_raw(method.clone(), &path, JSON, body).await;
        let fields = error_fields(&problem(r, 422).await);
        if fields != expected {
            misses.push(format!(
                "{method} {path} {body}: expected {expected:?}, got {fields:?}"
            ));
        }
    }
    assert_eq!(app.list("/commandes").await, vec![order]);
    assert!(misses.is_empty(), "{misses:#?}");
}

async fn a_query_string_on_create_is_422(app: TestApp) {
    let body = json!({"order_id": "A", "customer_id": "C1", "total_amount": 1}).to_string();
    let r = app
        .send_raw(Method::POST, "/commandes?dry_run=1", JSON, body)
        .await;
    let problem = problem(r, 422).await;
    assert_eq!(error_fields(&problem), ["dry_run"]);
    assert_nothing_written(&app).await;
}

/// A body padded with spaces to exactly `size` bytes.
fn padded_order(order_id: &str, size: usize) -> String {
    let base = json!({"order_id": order_id, "customer_id": "C1", "total_amount": 1}).to_string();
    assert!(base.len() <= size);
    let mut text = base[..base.len() - 1].to_string();
    text.push_str(&" ".repeat(size - base.len()));
    text.push('}');
    assert_eq!(text.len(), size);
    text
}

/// Sends `body` with its length declared, the raw way (see
/// [`TestApp::raw_http`]): a 413 can come back before the body is read.
async fn send_sized(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
) -> crate::support::RawResponse {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}",
        body.len()
    );
    app.raw_http(&head, body.as_bytes()).await
}

/// Declares a body of `length` bytes and sends none of it.
async fn declare_only(
    app: &TestApp,
    method: &str,
    path: &str,
    length: usize,
) -> crate::support::RawResponse {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}"
    );
    app.raw_http(&head, b"").await
}

/// A 413 problem.
fn assert_too_large(r: &crate::support::RawResponse, what: &str) {
    assert_eq!(r.status, 413, "{what}: {}", r.head);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{what}"
    );
    let body = r.json();
    assert_eq!(body["status"], 413, "{what}");
    assert_eq!(body["type"], "about:blank", "{what}");
    assert_eq!(body["title"], "Payload Too Large", "{what}");
    assert!(body["detail"].is_string(), "{what}");
}

async fn a_body_over_a_small_limit_is_413(app: TestApp) {
    let small = TestApp::spawn_with(app.backend, |s| s.server.max_body_bytes = 1024)
        .await
        .expect("same backend as the test app");
    // At the limit: accepted.
    let r = send_sized(&small, "POST", "/commandes", &padded_order("AT", 1024)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.json()["id"].as_i64().unwrap();
    // One byte over: refused, valid JSON or not.
    let r = send_sized(&small, "POST", "/commandes", &padded_order("OVER", 1025)).await;
    assert_too_large(&r, "1025 bytes");
    assert_too_large(
        &send_sized(&small, "POST", "/commandes", &"x".repeat(5000)).await,
        "5000 bytes",
    );
    assert_too_large(
        &declare_only(&small, "POST", "/commandes", 1025).await,
        "declared 1025",
    );
    assert_too_large(
        &declare_only(&small, "POST", "/commandes", 1 << 30).await,
        "declared 1 GiB",
    );
    // The same for the changes.
    let big_patch = format!(r#"{{"customer_id": "{}"}}"#, "C".repeat(2000));
    let r = send_sized(&small, "PUT", &format!("/commandes/{id}"), &big_patch).await;
    assert_too_large(&r, "PUT");
    let big_status = format!(r#"{{"status": "processing"{}}}"#, " ".repeat(2000));
    let r = send_sized(
        &small,
        "PUT",
        &format!("/commandes/{id}/status"),
        &big_status,
    )
    .await;
    assert_too_large(&r, "PUT status");
    let orders = small.list("/commandes").await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["order_id"], "AT");
    assert_eq!(orders[0]["status"], "pending");
    assert_eq!(orders[0]["customer_id"], "C1");
}

/// Sends `body` chunked (no Content-Length), in pieces of 256 bytes.
async fn chunked_post(app: &TestApp, body: &str) -> crate::support::RawResponse {
    let head = format!(
        "POST /commandes HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked"
    );
    let mut chunked = String::new();
    for chunk in body.as_bytes().chunks(256) {
        let text = std::str::from_utf8(chunk).unwrap();
        chunked.push_str(&format!("{:x}\r\n{text}\r\n", chunk.len()));
    }
    chunked.push_str("0\r\n\r\n");
    app.raw_http(&head, chunked.as_bytes()).await
}

async fn a_chunked_body_over_the_limit_is_413(app: TestApp) {
    let small = TestApp::spawn_with(app.backend, |s| s.server.max_body_bytes = 1024)
        .await
        .expect("same backend as the test app");
    let r = chunked_post(&small, &padded_order("CHUNKED_OK", 1000)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_too_large(
        &chunked_post(&small, &padded_order("CHUNKED_BIG", 3000)).await,
        "chunked",
    );
    let orders = small.list("/commandes").await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["order_id"], "CHUNKED_OK");
}

async fn the_default_limit_is_64_kib(app: TestApp) {
    // Exactly 64 KiB: accepted.
    let r = app
        .send_raw(
            Method::POST,
            "/commandes",
            JSON,
            padded_order("UNDER", 64 * 1024),
        )
        .await;
    assert_eq!(r.status(), 201);
    // About 70 KB, or one byte over: refused as soon as it is declared.
    assert_too_large(
        &declare_only(&app, "POST", "/commandes", 70_000).await,
        "70 KB",
    );
    assert_too_large(
        &declare_only(&app, "POST", "/commandes", 64 * 1024 + 1).await,
        "64 KiB + 1",
    );
    let r = send_sized(
        &app,
        "POST",
        "/commandes",
        &padded_order("JUST_OVER", 64 * 1024 + 1),
    )
    .await;
    assert_too_large(&r, "64 KiB + 1 sent");
    let orders = app.list("/commandes").await;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["order_id"], "UNDER");
}

crate::both_backends!(
    every_bad_field_is_listed_together,
    unknown_fields_are_named,
    missing_required_fields_are_named,
    wrong_types_are_named,
    blank_text_is_refused,
    control_characters_are_refused,
    bad_amounts_are_refused,
    the_largest_amount_is_accepted,
    bad_statuses_are_refused,
    non_object_bodies_are_422,
    empty_bodies_are_400,
    invalid_json_is_400,
    a_body_needs_the_json_content_type,
    json_media_type_parameters_are_accepted,
    the_content_type_comes_before_the_syntax_and_the_values,
    bad_query_and_bad_body_are_reported_together,
    a_query_string_on_create_is_422,
    a_body_over_a_small_limit_is_413,
    a_chunked_body_over_the_limit_is_413,
    the_default_limit_is_64_kib,
);
