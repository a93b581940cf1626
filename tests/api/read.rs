//! Reading one order: by `id` and by `order_id`.

use reqwest::Method;

use crate::support::{enc, error_fields, json, problem, TestApp};

/// `{id}` segments that are not ASCII digits.
const NOT_DIGITS: [&str; 12] = [
    "abc",
    "1.5",
    "+1",
    "1e3",
    "-1",
    "-0",
    "0x1",
    "1a",
    "%201",
    "1%20",
    "%D9%A1",
    "%EF%BC%91",
];

/// `{id}` segments that are digits but cannot be an order's id.
const OUT_OF_RANGE: [&str; 5] = [
    "0",
    "00",
    "9223372036854775808",
    "18446744073709551616",
    "123456789012345678901234567890",
];

async fn get_by_id(app: TestApp) {
    let a = app.create("CMD001", "C1", "10.00", "pending").await;
    let b = app.create("CMD002", "C2", "20.00", "completed").await;
    let got = json(app.get(&format!("/commandes/{}", a["id"])).await, 200).await;
    assert_eq!(got, a);
    let got = json(app.get(&format!("/commandes/{}", b["id"])).await, 200).await;
    assert_eq!(got, b);
    // Leading zeros are still digits.
    let got = json(app.get(&format!("/commandes/000{}", a["id"])).await, 200).await;
    assert_eq!(got, a);
}

async fn an_absent_id_is_404(app: TestApp) {
    let a = app.create("CMD001", "C1", "10.00", "pending").await;
    let absent = a["id"].as_i64().unwrap() + 1;
    let body = problem(app.get(&format!("/commandes/{absent}")).await, 404).await;
    assert_eq!(body["title"], "Not Found");
    assert!(body.get("errors").is_none(), "{body}");
    problem(app.get("/commandes/9223372036854775807").await, 404).await;
}

async fn an_id_that_is_not_digits_is_422(app: TestApp) {
    app.create("CMD001", "C1", "10.00", "pending").await;
    for id in NOT_DIGITS {
        let r = app.get(&format!("/commandes/{id}")).await;
        assert_eq!(r.status(), 422, "GET {id}");
        let body = problem(r, 422).await;
        assert_eq!(error_fields(&body), ["id"], "GET {id}");
    }
}

async fn an_id_out_of_range_is_404(app: TestApp) {
    app.create("CMD001", "C1", "10.00", "pending").await;
    for id in OUT_OF_RANGE {
        let r = app.get(&format!("/commandes/{id}")).await;
        assert_eq!(r.status(), 404, "GET {id}");
        problem(r, 404).await;
    }
}

async fn every_id_route_checks_the_id_the_same_way(app: TestApp) {
    let order = app.create("CMD001", "C1", "10.00", "pending").await;
    for id in NOT_DIGITS {
        let r = app
            .put(
                &format!("/commandes/{id}"),
                &serde_json::json!({"customer_id": "X"}),
            )
            .await;
        assert_eq!(error_fields(&problem(r, 422).await), ["id"], "PUT {id}");
        let r = app
            .put(
                &format!("/commandes/{id}/status"),
                &serde_json::json!("processing"),
            )
            .await;
        assert_eq!(
            error_fields(&problem(r, 422).await),
            ["id"],
            "PUT {id}/status"
        );
        let r = app.delete(&format!("/commandes/{id}")).await;
        assert_eq!(error_fields(&problem(r, 422).await), ["id"], "DELETE {id}");
    }
    for id in OUT_OF_RANGE.iter().chain(&["9223372036854775807"]) {
        let r = app
            .put(
                &format!("/commandes/{id}"),
                &serde_json::json!({"customer_id": "X"}),
            )
            .await;
        problem(r, 404).await;
        let r = app
            .put(
                &format!("/commandes/{id}/status"),
                &serde_json::json!("processing"),
            )
            .await;
        problem(r, 404).await;
        problem(app.delete(&format!("/commandes/{id}")).await, 404).await;
    }
    assert_eq!(app.list("/commandes").await, vec![order]);
}

async fn get_by_order_id(app: TestApp) {
    let plain = app.create("CMD001", "C1", "10.00", "pending").await;
    let slashed = app.create("CMD/2025/001", "C1", "11.00", "pending").await;
    let unicode = app
        .create("commande-été-日本", "C1", "12.00", "pending")
        .await;
    let spaced = app.create("CMD 42", "C1", "13.00", "pending").await;
    let reserved = app
        .create("a?b#c&d=e%f+g;h", "C1", "14.00", "pending")
        .await;

    assert_eq!(
        json(app.get("/commandes/order/CMD001").await, 200).await,
        plain
    );
    assert_eq!(
        json(app.get("/commandes/order/CMD%2F2025%2F001").await, 200).await,
        slashed
    );
    assert_eq!(
        json(app.get("/commandes/order/CMD%2f2025%2f001").await, 200).await,
        slashed
    );
    assert_eq!(
        json(
            app.get("/commandes/order/commande-%C3%A9t%C3%A9-%E6%97%A5%E6%9C%AC")
                .await,
            200
        )
        .await,
        unicode
    );
    assert_eq!(
        json(app.get("/commandes/order/CMD%2042").await, 200).await,
        spaced
    );
    assert_eq!(
        json(
            app.get(&format!("/commandes/order/{}", enc("a?b#c&d=e%f+g;h")))
                .await,
            200
        )
        .await,
        reserved
    );
    // Percent-encoding an unreserved character changes nothing.
    assert_eq!(
        json(app.get("/commandes/order/%43MD001").await, 200).await,
        plain
    );
}

async fn an_unknown_order_id_is_404(app: TestApp) {
    app.create("CMD001", "C1", "10.00", "pending").await;
    app.create("CMD/2025/001", "C1", "10.00", "pending").await;
    for path in [
        "/commandes/order/CMD002",
        "/commandes/order/cmd001",
        "/commandes/order/CMD001%20",
        "/commandes/order/CMD",
        "/commandes/order/%20",
        "/commandes/order/CMD%2F2025",
        "/commandes/order/%7F",
        "/commandes/order/CMD001%0A",
        // Last, as PostgreSQL cannot hold a NUL.
        "/commandes/order/%00",
        "/commandes/order/CMD%00001",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body = problem(r, 404).await;
        assert_eq!(body["title"], "Not Found", "{path}");
    }
    let too_long = "A".repeat(51);
    problem(app.get(&format!("/commandes/order/{too_long}")).await, 404).await;
}

async fn query_parameters_on_reads_are_422(app: TestApp) {
    let order = app.create("CMD001", "C1", "10.00", "pending").await;
    let id = order["id"].as_i64().unwrap();
    for path in [
        format!("/commandes/{id}?x=1"),
        format!("/commandes/{id}?x="),
        format!("/commandes/{id}?x"),
        "/commandes/order/CMD001?x=1".to_string(),
        "/stats?x=1".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status(), 422, "{path}");
        assert_eq!(error_fields(&problem(r, 422).await), ["x"], "{path}");
    }
    let r = app.get(&format!("/commandes/{id}?a=1&b=2")).await;
    assert_eq!(error_fields(&problem(r, 422).await), ["a", "b"]);
    // Nor on changes: nothing happens.
    let r = app
        .send_json(
            Method::PUT,
            &format!("/commandes/{id}?x=1"),
            &serde_json::json!({"customer_id": "C9"}),
        )
        .await;
    assert_eq!(error_fields(&problem(r, 422).await), ["x"]);
    let r = app
        .put(
            &format!("/commandes/{id}/status?x=1"),
            &serde_json::json!("processing"),
        )
        .await;
    assert_eq!(error_fields(&problem(r, 422).await), ["x"]);
    let r = app.delete(&format!("/commandes/{id}?x=1")).await;
    assert_eq!(error_fields(&problem(r, 422).await), ["x"]);
    assert_eq!(app.fetch(id).await, order);
}

async fn a_bad_id_and_a_bad_query_are_reported_together(app: TestApp) {
    app.create("CMD001", "C1", "10.00", "pending").await;
    let cases = [
        (Method::GET, "/commandes/abc?x=1", None, vec!["id", "x"]),
        (Method::DELETE, "/commandes/abc?x=1", None, vec!["id", "x"]),
        (
            Method::PUT,
            "/commandes/abc",
            Some(r#"{"colour": 1}"#),
            vec!["colour", "id"],
        ),
        (
            Method::PUT,
            "/commandes/abc/status",
            Some(r#""lost""#),
            vec!["id", "status"],
        ),
        (
            Method::PUT,
            "/commandes/abc?x=1",
            Some(r#"{"colour": 1}"#),
            vec!["colour", "id", "x"],
        ),
        (
            Method::PUT,
            "/commandes/abc/status?x=1",
            Some(r#""lost""#),
            vec!["id", "status", "x"],
        ),
    ];
    // Every case is tried, then the misses are reported together.
    let mut misses = Vec::new();
    for (method, path, body, expected) in cases {
        let r = match body {
            Some(b) => {
                app.send_raw(method.clone(), path, Some("application/json"), b)
                    .await
            }
            None => app.request(method.clone(), path).send().await.unwrap(),
        };
        let fields = error_fields(&problem(r, 422).await);
        if fields != expected {
            misses.push(format!(
                "{method} {path}: expected {expected:?}, got {fields:?}"
            ));
        }
    }
    assert!(misses.is_empty(), "{misses:#?}");
}

crate::both_backends!(
    get_by_id,
    an_absent_id_is_404,
    an_id_that_is_not_digits_is_422,
    an_id_out_of_range_is_404,
    every_id_route_checks_the_id_the_same_way,
    get_by_order_id,
    an_unknown_order_id_is_404,
    query_parameters_on_reads_are_422,
    a_bad_id_and_a_bad_query_are_reported_together,
);
