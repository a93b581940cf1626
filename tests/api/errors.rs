//! Hostile input: nothing leaks, nothing is a 500, the table survives.

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::support::{enc, error_fields, json, problem, TestApp};

/// Words a client must never see in an answer.
const LEAKS: [&str; 12] = [
    "select ",
    "insert ",
    "sqlite",
    "postgres",
    "syntax error at",
    "constraint",
    "duplicate key",
    "unique",
    "panicked",
    "rusqlite",
    "tokio_postgres",
    "src/",
];

/// Reads a problem body and checks it leaks nothing.
async fn clean_problem(r: Response, status: u16) -> Value {
    let text = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(text.as_deref(), Some("application/problem+json"));
    assert_eq!(r.status(), status);
    let body = r.text().await.unwrap();
    let lower = body.to_lowercase();
    for word in LEAKS {
        assert!(!lower.contains(word), "{word:?} in {body}");
    }
    serde_json::from_str(&body).unwrap()
}

async fn failure_bodies_leak_nothing(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "completed").await;
    let id = order["id"].as_i64().unwrap();
    // 409 duplicate on create and on change.
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "CMD001", "customer_id": "C1", "total_amount": 1}),
        )
        .await;
    clean_problem(r, 409).await;
    let other = app.create("CMD002", "C1", "1.00", "pending").await;
    let r = app
        .put(
            &format!("/commandes/{}", other["id"]),
            &json!({"order_id": "CMD001"}),
        )
        .await;
    clean_problem(r, 409).await;
    // 409 transition.
    clean_problem(
        app.put(&format!("/commandes/{id}/status"), &json!("pending"))
            .await,
        409,
    )
    .await;
    // 404, 405, 400, 401, 413, 415, 422.
    clean_problem(app.get("/commandes/999999").await, 404).await;
    clean_problem(app.get("/nowhere").await, 404).await;
    clean_problem(
        app.request(Method::PATCH, "/commandes")
            .send()
            .await
            .unwrap(),
        405,
    )
    .await;
    clean_problem(
        app.send_raw(
            Method::POST,
            "/commandes",
            Some("application/json"),
            "{\"a\":",
        )
        .await,
        400,
    )
    .await;
    clean_problem(
        app.anonymous(Method::GET, "/commandes")
            .send()
            .await
            .unwrap(),
        401,
    )
    .await;
    let head = format!(
        "POST /commandes HTTP/1.1\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 70000",
        crate::support::TOKEN
    );
    let r = app.raw_http(&head, b"").await;
    assert_eq!(r.status, 413);
    let lower = r.body.to_lowercase();
    for word in LEAKS {
        assert!(!lower.contains(word), "{word:?} in {}", r.body);
    }
    clean_problem(
        app.send_raw(Method::POST, "/commandes", Some("text/plain"), "x")
            .await,
        415,
    )
    .await;
    clean_problem(
        app.get("/commandes?sort=id;drop%20table%20commandes").await,
        422,
    )
    .await;
    clean_problem(app.get("/commandes?min_amount=1'%20or%20'1'='1").await, 422).await;
    clean_problem(app.get("/commandes/1%20or%201=1").await, 422).await;
}

async fn a_nul_in_an_order_id_lookup_is_404(app: TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
    // No order_id holds a NUL (a control character), so none matches; and
    // the value must not reach a driver that cannot hold it (PostgreSQL).
    for path in [
        "/commandes/order/%00",
        "/commandes/order/A%00B",
        "/commandes/order/CMD001%00",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        clean_problem(r, 404).await;
    }
}

async fn a_nul_in_customer_lookups_is_harmless(app: TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
    for path in ["/commandes/customer/%00", "/commandes/customer/A%00B"] {
        assert_eq!(app.list(path).await, Vec::<Value>::new(), "{path}");
    }
    for path in [
        "/commandes?customer_id=%00",
        "/commandes/status/pending?customer_id=A%00",
    ] {
        let r = app.get(path).await;
        assert_eq!(
            error_fields(&clean_problem(r, 422).await),
            ["customer_id"],
            "{path}"
        );
    }
}

async fn path_values_that_are_not_utf8_are_not_500(app: TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
    // Bytes that are not UTF-8 once decoded: refused (400) or matched by
    // nothing (404), never a 500.
    for path in [
        "/commandes/order/%FF",
        "/commandes/order/%C3",
        "/commandes/order/%C0%80",
    ] {
        let r = app.get(path).await;
        let status = r.status().as_u16();
        assert!(status == 404 || status == 400, "{path}: {status}");
        clean_problem(r, status).await;
    }
}

async fn bytes_that_are_not_utf8_match_no_text(app: TestApp) {
    // U+FFFD is what a lossy decoder makes of a stray byte; the byte is not
    // that character, so an exact match must not find it.
    let replacement = app.create("\u{fffd}", "\u{fffd}", "1.00", "pending").await;
    let mut misses = Vec::new();
    for path in [
        "/commandes/order/%FF",
        "/commandes/customer/%FF",
        "/commandes?customer_id=%FF",
        "/commandes/status/pending?customer_id=%FF",
    ] {
        let r = app.get(path).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        let found =
            body == replacement || body.as_array().is_some_and(|a| a.contains(&replacement));
        if status >= 500 || found {
            misses.push(format!("{path}: {status} {body}"));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

async fn very_long_path_segments(app: TestApp) {
    app.create("CMD001", "C1", "1.00", "pending").await;
    // Long, but a request line a server takes: the contract's answers.
    let long = "A".repeat(4_000);
    clean_problem(app.get(&format!("/commandes/order/{long}")).await, 404).await;
    assert_eq!(
        app.list(&format!("/commandes/customer/{long}")).await,
        Vec::<Value>::new()
    );
    let digits = "9".repeat(4_000);
    clean_problem(app.get(&format!("/commandes/{digits}")).await, 404).await;
    clean_problem(app.delete(&format!("/commandes/{digits}")).await, 404).await;
    let r = app.get(&format!("/commandes/{long}")).await;
    assert_eq!(error_fields(&clean_problem(r, 422).await), ["id"]);
    let r = app.get(&format!("/commandes/status/{long}")).await;
    assert_eq!(error_fields(&clean_problem(r, 422).await), ["status"]);
    let r = app.get(&format!("/commandes?customer_id={long}")).await;
    assert_eq!(error_fields(&clean_problem(r, 422).await), ["customer_id"]);
    // Far longer: refused as a whole (414) or not found, never a 500.
    let huge = "A".repeat(20_000);
    for path in [
        format!("/commandes/order/{huge}"),
        format!("/commandes/{huge}"),
        format!("/commandes?customer_id={huge}"),
        format!("/{huge}"),
    ] {
        let r = app.get(&path).await;
        let status = r.status().as_u16();
        assert!(
            status == 414 || status == 404 || status == 422,
            "{status} for {}…",
            &path[..30]
        );
        clean_problem(r, status).await;
    }
    assert_eq!(app.stats().await["total_orders"], 1);
}

async fn deeply_nested_json_is_400(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let id = order["id"].as_i64().unwrap();
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    let inside = format!(
        "{{\"order_id\": \"X\", \"customer_id\": \"C1\", \"total_amount\": {}}}",
        format_args!("{}{}", "[".repeat(10_000), "]".repeat(10_000))
    );
    for body in [&arrays, &objects, &inside] {
        for path in [
            "/commandes".to_string(),
            format!("/commandes/{id}"),
            format!("/commandes/{id}/status"),
        ] {
            let method = if path == "/commandes" {
                Method::POST
            } else {
                Method::PUT
            };
            let r = app
                .send_raw(method, &path, Some("application/json"), body.clone())
                .await;
            assert_eq!(r.status(), 400, "{path}: {}…", &body[..20]);
            clean_problem(r, 400).await;
        }
    }
    // Still alive, nothing changed.
    assert_eq!(app.list("/commandes").await, vec![order]);
}

async fn huge_numbers_are_422(app: TestApp) {
    let literals = [
        "1e999999999",
        "-1e999999999",
        "1e-999999999",
        "1E+99999999999999999999999",
        "123456789012345678901234567890",
        "0.0000000000000000000001",
        "99999999.990000000000000000001",
        &format!("1{}", "0".repeat(5000)),
        &format!("0.{}1", "0".repeat(5000)),
    ];
    for literal in literals {
        let body =
            format!(r#"{{"order_id": "H", "customer_id": "C1", "total_amount": {literal}}}"#);
        let r = app
            .send_raw(Method::POST, "/commandes", Some("application/json"), body)
            .await;
        assert_eq!(r.status(), 422, "{}", &literal[..literal.len().min(40)]);
        assert_eq!(error_fields(&clean_problem(r, 422).await), ["total_amount"]);
    }
    let r = app
        .get(&format!("/commandes?min_amount={}", "9".repeat(5000)))
        .await;
    assert_eq!(error_fields(&clean_problem(r, 422).await), ["min_amount"]);
    let r = app
        .get(&format!("/commandes?skip={}", "9".repeat(5000)))
        .await;
    assert_eq!(error_fields(&clean_problem(r, 422).await), ["skip"]);
    // Zero with a huge exponent is still zero, and exact.
    let body = r#"{"order_id": "Z", "customer_id": "C1", "total_amount": 0e999999999}"#;
    let r = app
        .send_raw(Method::POST, "/commandes", Some("application/json"), body)
        .await;
    assert_eq!(json(r, 201).await["total_amount"], "0.00");
    // Trailing zeros are not precision.
    let body = format!(
        r#"{{"order_id": "T", "customer_id": "C1", "total_amount": 1.5{}}}"#,
        "0".repeat(5000)
    );
    let r = app
        .send_raw(Method::POST, "/commandes", Some("application/json"), body)
        .await;
    assert_eq!(json(r, 201).await["total_amount"], "1.50");
    assert_eq!(app.stats().await["total_orders"], 2);
}

async fn sql_in_values_is_stored_verbatim(app: TestApp) {
    let nasty = [
        ("'; drop table commandes; --", "\" or 1=1 --"),
        ("x' or '1'='1", "' OR '1'='1"),
        ("1; delete from commandes", "C1'); --"),
        ("%_*", "%"),
        ("\\'", "\\"),
    ];
    let normal = app.create("NORMAL", "C1", "1.00", "pending").await;
    let mut created = Vec::new();
    for (order_id, customer_id) in nasty {
        let order = app.create(order_id, customer_id, "2.00", "pending").await;
        assert_eq!(order["order_id"], order_id);
        assert_eq!(order["customer_id"], customer_id);
        let got = json(
            app.get(&format!("/commandes/order/{}", enc(order_id)))
                .await,
            200,
        )
        .await;
        assert_eq!(got, order);
        // The customer filter is an exact match, not a pattern.
        let mine = app
            .list(&format!("/commandes?customer_id={}", enc(customer_id)))
            .await;
        assert_eq!(mine, vec![order.clone()], "{customer_id}");
        let mine = app
            .list(&format!("/commandes/customer/{}", enc(customer_id)))
            .await;
        assert_eq!(mine, vec![order.clone()], "{customer_id}");
        created.push(order);
    }
    // The table still works, with every row in it.
    assert_eq!(app.stats().await["total_orders"], 6);
    assert_eq!(app.list("/commandes?sort=id").await.len(), 6);
    assert_eq!(
        json(app.get("/commandes/order/NORMAL").await, 200).await,
        normal
    );
    problem(app.get("/commandes/order/%25").await, 404).await;
    let r = app
        .put(
            &format!("/commandes/{}", created[0]["id"]),
            &json!({"customer_id": "'; --"}),
        )
        .await;
    assert_eq!(json(r, 200).await["customer_id"], "'; --");
    assert_eq!(
        app.delete(&format!("/commandes/{}", created[1]["id"]))
            .await
            .status(),
        204
    );
    assert_eq!(app.stats().await["total_orders"], 5);
}

async fn the_service_survives_a_burst_of_garbage(app: TestApp) {
    let bodies: Vec<Vec<u8>> = vec![
        vec![0xff; 100],
        vec![0; 100],
        b"\x00{\"order_id\": 1}".to_vec(),
        "{\"order_id\": \"\u{0}\", \"customer_id\": \"\u{0}\", \"total_amount\": \"\u{0}\"}"
            .as_bytes()
            .to_vec(),
        "\"\\ud800\"".as_bytes().to_vec(),
        "{\"order_id\": \"\\ud800\", \"customer_id\": \"C1\", \"total_amount\": 1}"
            .as_bytes()
            .to_vec(),
    ];
    for body in bodies {
        let r = app
            .send_raw(
                Method::POST,
                "/commandes",
                Some("application/json"),
                body.clone(),
            )
            .await;
        let status = r.status().as_u16();
        assert!(status == 400 || status == 422, "{status} for {body:?}");
        clean_problem(r, status).await;
    }
    assert_eq!(app.stats().await["total_orders"], 0);
    let r = json(
        app.anonymous(Method::GET, "/health/ready")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(r["status"], "ok");
}

crate::both_backends!(
    failure_bodies_leak_nothing,
    a_nul_in_an_order_id_lookup_is_404,
    a_nul_in_customer_lookups_is_harmless,
    path_values_that_are_not_utf8_are_not_500,
    bytes_that_are_not_utf8_match_no_text,
    very_long_path_segments,
    deeply_nested_json_is_400,
    huge_numbers_are_422,
    sql_in_values_is_stored_verbatim,
    the_service_survives_a_burst_of_garbage,
);
