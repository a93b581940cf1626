//! Customer-scoped JWTs (`auth.customer_claim`): a customer sees, counts
//! and changes its own orders only; the others are absent to it.

use reqwest::Method;
use serde_json::{json, Value};

use crate::jwt::{claims, get_with, hs256, jwt_app, send_with, with, SECRET};
use crate::support::{ids, json, problem, TestApp};

/// An app whose JWTs are restricted to the customer in `sub`, with orders
/// of C1 (two) and C2 (one) made with the static token. Returns the app,
/// C1's token and the orders.
async fn setup(app: TestApp) -> (TestApp, String, Vec<Value>) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = SECRET.into();
        s.auth.customer_claim = "sub".into();
    })
    .await;
    let orders = vec![
        app.create("C1-A", "C1", "10.00", "pending").await,
        app.create("C1-B", "C1", "20.50", "processing").await,
        app.create("C2-A", "C2", "100.00", "pending").await,
    ];
    (app, hs256(&claims("authenticated", "C1")), orders)
}

async fn list_ids(app: &TestApp, token: &str, path: &str) -> Vec<i64> {
    let body = json(get_with(app, token, path).await, 200).await;
    let mut ids = ids(body.as_array().unwrap());
    ids.sort();
    ids
}

async fn a_customer_lists_and_counts_only_its_orders(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let (a, b) = (
        orders[0]["id"].as_i64().unwrap(),
        orders[1]["id"].as_i64().unwrap(),
    );
    assert_eq!(list_ids(&app, &c1, "/commandes").await, [a, b]);
    assert_eq!(
        list_ids(&app, &c1, "/commandes?customer_id=C2").await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list_ids(&app, &c1, "/commandes?customer_id=C1").await,
        [a, b]
    );
    assert_eq!(list_ids(&app, &c1, "/commandes/customer/C1").await, [a, b]);
    assert_eq!(
        list_ids(&app, &c1, "/commandes/customer/C2").await,
        Vec::<i64>::new()
    );
    assert_eq!(list_ids(&app, &c1, "/commandes/status/pending").await, [a]);
    assert_eq!(list_ids(&app, &c1, "/commandes?sort=id&limit=1").await, [a]);
    let stats = json(get_with(&app, &c1, "/stats").await, 200).await;
    assert_eq!(stats["total_orders"], 2, "{stats}");
    assert_eq!(stats["total_amount"], "30.50");
    assert_eq!(stats["by_status"]["pending"], 1);
    assert_eq!(stats["by_status"]["processing"], 1);
    assert_eq!(stats["amount_by_status"]["pending"], "10.00");
    assert_eq!(stats["average_amount"], "15.25");
    // A customer with no orders has empty figures.
    let nobody = hs256(&claims("authenticated", "C9"));
    let stats = json(get_with(&app, &nobody, "/stats").await, 200).await;
    assert_eq!(stats["total_orders"], 0);
    assert_eq!(stats["total_amount"], "0.00");
    // The static token still sees everything.
    assert_eq!(app.stats().await["total_orders"], 3);
    assert_eq!(app.list("/commandes").await.len(), 3);
}

async fn another_customers_order_is_absent(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let other = orders[2]["id"].as_i64().unwrap();
    let missing = problem(get_with(&app, &c1, "/commandes/999999").await, 404).await;
    let paths = [
        format!("/commandes/{other}"),
        "/commandes/order/C2-A".to_string(),
    ];
    for path in &paths {
        let body = problem(get_with(&app, &c1, path).await, 404).await;
        assert_eq!(body["detail"], missing["detail"], "{path}");
        assert_eq!(body["title"], missing["title"], "{path}");
    }
    let changes = [
        (
            Method::PUT,
            format!("/commandes/{other}"),
            json!({"total_amount": "1.00"}),
        ),
        (
            Method::PUT,
            format!("/commandes/{other}"),
            json!({"customer_id": "C1"}),
        ),
        (
            Method::PUT,
            format!("/commandes/{other}/status"),
            json!("cancelled"),
        ),
    ];
    for (method, path, body) in &changes {
        let r = send_with(&app, &c1, method.clone(), path, body).await;
        let body = problem(r, 404).await;
        assert_eq!(body["detail"], missing["detail"], "{method} {path}");
    }
    // With If-Match (the right ETag, read with the static token) too.
    let etag = app
        .get(&format!("/commandes/{other}"))
        .await
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let r = app
        .anonymous(Method::DELETE, &format!("/commandes/{other}"))
        .bearer_auth(&c1)
        .header("if-match", &etag)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    let r = app
        .anonymous(Method::DELETE, &format!("/commandes/{other}"))
        .bearer_auth(&c1)
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
    // Untouched.
    let stored = app.fetch(other).await;
    assert_eq!(stored, orders[2]);
}

async fn a_customer_changes_only_its_own_orders(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let own = orders[0]["id"].as_i64().unwrap();
    // Create: for itself yes, for another customer 403.
    let r = send_with(
        &app,
        &c1,
        Method::POST,
        "/commandes",
        &json!({"order_id": "C1-C", "customer_id": "C1", "total_amount": "1.00"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = send_with(
        &app,
        &c1,
        Method::POST,
        "/commandes",
        &json!({"order_id": "C2-B", "customer_id": "C2", "total_amount": "1.00"}),
    )
    .await;
    problem(r, 403).await;
    // Change its own order; moving it to another customer is 403.
    let r = send_with(
        &app,
        &c1,
        Method::PUT,
        &format!("/commandes/{own}"),
        &json!({"total_amount": "11.00"}),
    )
    .await;
    assert_eq!(json(r, 200).await["total_amount"], "11.00");
    let r = send_with(
        &app,
        &c1,
        Method::PUT,
        &format!("/commandes/{own}"),
        &json!({"customer_id": "C2"}),
    )
    .await;
    problem(r, 403).await;
    assert_eq!(app.fetch(own).await["customer_id"], "C1");
    let r = send_with(
        &app,
        &c1,
        Method::PUT,
        &format!("/commandes/{own}/status"),
        &json!("processing"),
    )
    .await;
    assert_eq!(json(r, 200).await["status"], "processing");
    let r = get_with(&app, &c1, &format!("/commandes/{own}")).await;
    assert_eq!(json(r, 200).await["status"], "processing");
    let r = get_with(&app, &c1, "/commandes/order/C1-A").await;
    assert_eq!(json(r, 200).await["id"], own);
    let r = app
        .anonymous(Method::DELETE, &format!("/commandes/{own}"))
        .bearer_auth(&c1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Nothing of C2 changed, and nothing was created for it.
    assert_eq!(
        app.list("/commandes/customer/C2").await,
        [orders[2].clone()]
    );
}

async fn an_authenticated_jwt_without_the_claim_is_403(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = SECRET.into();
        s.auth.customer_claim = "app_metadata.customer_id".into();
    })
    .await;
    app.create("C1-A", "C1", "10.00", "pending").await;
    let without = hs256(&claims("authenticated", "user-1"));
    for path in ["/commandes", "/stats", "/commandes/1"] {
        problem(get_with(&app, &without, path).await, 403).await;
    }
    let blank = hs256(&with(
        claims("authenticated", "user-1"),
        json!({"app_metadata": {"customer_id": " "}}),
    ));
    problem(get_with(&app, &blank, "/commandes").await, 403).await;
    // With the claim (a dotted path into app_metadata), its orders only.
    let with_claim = hs256(&with(
        claims("authenticated", "user-1"),
        json!({"app_metadata": {"customer_id": "C1"}}),
    ));
    assert_eq!(list_ids(&app, &with_claim, "/commandes").await.len(), 1);
    let other = hs256(&with(
        claims("authenticated", "user-2"),
        json!({"app_metadata": {"customer_id": "C2"}}),
    ));
    assert_eq!(list_ids(&app, &other, "/commandes").await.len(), 0);
    problem(get_with(&app, &other, "/commandes/1").await, 404).await;
    // service_role is never restricted.
    let service = hs256(&claims("service_role", "svc"));
    assert_eq!(list_ids(&app, &service, "/commandes").await.len(), 1);
}

/// Events follow the same rule: another customer's history is absent, and
/// the feed of every customer's events is not for a customer.
async fn a_customer_sees_only_its_own_history_and_not_the_feed(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let own = orders[0]["id"].as_i64().unwrap();
    let theirs = orders[2]["id"].as_i64().unwrap();
    let history = json(
        get_with(&app, &c1, &format!("/commandes/{own}/history")).await,
        200,
    )
    .await;
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["order.created"]);
    let absent = problem(get_with(&app, &c1, "/commandes/999999/history").await, 404).await;
    let other = problem(
        get_with(&app, &c1, &format!("/commandes/{theirs}/history")).await,
        404,
    )
    .await;
    assert_eq!(other["detail"], absent["detail"]);
    // Still absent once the order is gone (its history outlives it).
    let r = app.delete(&format!("/commandes/{theirs}")).await;
    assert_eq!(r.status(), 204);
    problem(
        get_with(&app, &c1, &format!("/commandes/{theirs}/history")).await,
        404,
    )
    .await;
    problem(get_with(&app, &c1, "/events").await, 403).await;
    // The static token sees the deleted order's history and the feed.
    let h = app.list(&format!("/commandes/{theirs}/history")).await;
    assert_eq!(h.last().unwrap()["type"], "order.deleted");
    assert!(app.list("/events").await.len() >= 4);
}

crate::both_backends!(
    a_customer_sees_only_its_own_history_and_not_the_feed,
    a_customer_lists_and_counts_only_its_orders,
    another_customers_order_is_absent,
    a_customer_changes_only_its_own_orders,
    an_authenticated_jwt_without_the_claim_is_403,
);
