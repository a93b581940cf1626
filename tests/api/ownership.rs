//! Customer-scoped JWTs (`auth.customer_claim`): a customer sees, counts
//! and changes its own orders only; the others are absent to it.

use commandes::access::JwtSecret;
use reqwest::Method;
use serde_json::{json, Value};

use crate::events::history_pages;
use crate::jwt::{claims, get_with, hs256, jwt_app, send_with, with, SECRET};
use crate::support::{ids, json, problem, TestApp};

/// An app whose JWTs are restricted to the customer in `sub`, with orders
/// of C1 (two) and C2 (one) made with the static token. Returns the app,
/// C1's token and the orders.
async fn setup(app: TestApp) -> (TestApp, String, Vec<Value>) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
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

/// The time series counts a customer's own orders only, whatever
/// `customer_id` it asks for.
async fn a_customer_charts_only_its_orders(app: TestApp) {
    let (app, c1, _) = setup(app).await;
    let total = |body: Value, field: &str| -> Vec<Value> {
        body["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["total_orders"] != 0)
            .map(|b| b[field].clone())
            .collect()
    };
    let own = json(get_with(&app, &c1, "/stats/timeseries").await, 200).await;
    assert_eq!(total(own.clone(), "total_orders"), [2]);
    assert_eq!(total(own, "total_amount"), ["30.50"]);
    let theirs = json(
        get_with(&app, &c1, "/stats/timeseries?customer_id=C2").await,
        200,
    )
    .await;
    assert!(total(theirs, "total_orders").is_empty());
    // The static token sees every customer's.
    let all = json(app.get("/stats/timeseries").await, 200).await;
    assert_eq!(total(all, "total_orders"), [3]);
}

async fn another_customers_order_is_absent(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let other = orders[2]["id"].as_i64().unwrap();
    // Every answer below is this one, apart from its request_id.
    let missing =
        without_request_id(problem(get_with(&app, &c1, "/commandes/999999").await, 404).await);
    let paths = [
        format!("/commandes/{other}"),
        "/commandes/order/C2-A".to_string(),
        format!("/commandes/{other}/history"),
    ];
    for path in &paths {
        let body = problem(get_with(&app, &c1, path).await, 404).await;
        assert_eq!(without_request_id(body), missing, "{path}");
    }
    // The right ETag (read with the static token), a stale one, and none.
    let etag = app
        .get(&format!("/commandes/{other}"))
        .await
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let changes = [
        (
            Method::PUT,
            format!("/commandes/{other}"),
            json!({"total_amount": "1.00"}),
        ),
        // Moving it to the caller's own customer.
        (
            Method::PUT,
            format!("/commandes/{other}"),
            json!({"customer_id": "C1"}),
        ),
        // Giving it an order_id that is taken.
        (
            Method::PUT,
            format!("/commandes/{other}"),
            json!({"order_id": "C1-A"}),
        ),
        (
            Method::PUT,
            format!("/commandes/{other}/status"),
            json!("cancelled"),
        ),
        // An illegal transition (pending → completed).
        (
            Method::PUT,
            format!("/commandes/{other}/status"),
            json!("completed"),
        ),
        (Method::DELETE, format!("/commandes/{other}"), json!(null)),
    ];
    for (method, path, body) in &changes {
        for if_match in [None, Some(etag.as_str()), Some("\"stale\"")] {
            let mut r = app
                .anonymous(method.clone(), path)
                .bearer_auth(&c1)
                .header("content-type", "application/json");
            if *method != Method::DELETE {
                r = r.body(body.to_string());
            }
            if let Some(tag) = if_match {
                r = r.header("if-match", tag);
            }
            let r = r.send().await.unwrap();
            assert!(r.headers().get("etag").is_none(), "{method} {path}");
            let got = problem(r, 404).await;
            assert_eq!(
                without_request_id(got),
                missing,
                "{method} {path} {body} If-Match {if_match:?}"
            );
        }
    }
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
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
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
    problem(get_with(&app, &c1, "/events/stream").await, 403).await;
    // The static token sees the deleted order's history and the feed.
    let h = app.list(&format!("/commandes/{theirs}/history")).await;
    assert_eq!(h.last().unwrap()["type"], "order.deleted");
    assert!(app.list("/events").await.len() >= 4);
}

/// A customer-scoped JWT of `user`, whose customer (in
/// `app_metadata.customer_id`) is `customer`.
fn customer_token(user: &str, customer: &str) -> String {
    hs256(&with(
        claims("authenticated", user),
        json!({"app_metadata": {"customer_id": customer}}),
    ))
}

/// An app whose `authenticated` JWTs are scoped by `app_metadata.customer_id`.
async fn customer_app(app: TestApp) -> TestApp {
    jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
        s.auth.customer_claim = "app_metadata.customer_id".into();
    })
    .await
}

/// The `data` of each event of a history page.
fn data(events: &[Value]) -> Vec<&Value> {
    events.iter().map(|e| &e["data"]).collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// An order created for customer ALPHA and moved to BETA: each customer
/// reads only the events of its own time with the order, and nothing that
/// names another caller (no `actor`, no `request_id`, not the other
/// customer); service callers read everything.
async fn a_moved_orders_history_shows_each_customer_only_its_time(app: TestApp) {
    let app = customer_app(app).await;
    let alpha = customer_token("user-alpha", "CUST-ALPHA");
    let beta = customer_token("user-beta", "CUST-BETA");
    let gamma = customer_token("user-gamma", "CUST-GAMMA");
    // ALPHA's time: created, changed, processing.
    let r = send_with(
        &app,
        &alpha,
        Method::POST,
        "/commandes",
        &json!({"order_id": "MOVE-1", "customer_id": "CUST-ALPHA", "total_amount": "10.00"}),
    )
    .await;
    let id = json(r, 201).await["id"].as_i64().unwrap();
    let path = format!("/commandes/{id}");
    let r = send_with(
        &app,
        &alpha,
        Method::PUT,
        &path,
        &json!({"total_amount": "11.00"}),
    )
    .await;
    json(r, 200).await;
    let r = send_with(
        &app,
        &alpha,
        Method::PUT,
        &format!("{path}/status"),
        &json!("processing"),
    )
    .await;
    json(r, 200).await;
    // The back office (static token) moves it to BETA, with a new amount.
    let r = app
        .put(
            &path,
            &json!({"customer_id": "CUST-BETA", "total_amount": "12.00"}),
        )
        .await;
    json(r, 200).await;
    // BETA's time: a change, completed, deleted.
    let r = send_with(
        &app,
        &beta,
        Method::PUT,
        &path,
        &json!({"total_amount": "13.00"}),
    )
    .await;
    json(r, 200).await;
    let r = send_with(
        &app,
        &beta,
        Method::PUT,
        &format!("{path}/status"),
        &json!("completed"),
    )
    .await;
    json(r, 200).await;

    // The static token (and a service_role JWT) sees all six, with actors.
    let all = app.list(&format!("{path}/history")).await;
    assert_eq!(
        kinds(&all),
        [
            "order.created",
            "order.updated",
            "order.status_changed",
            "order.updated",
            "order.updated",
            "order.status_changed",
        ]
    );
    assert_eq!(all[0]["data"]["actor"], "jwt:user-alpha");
    assert!(all[3]["data"]["actor"]
        .as_str()
        .unwrap()
        .starts_with("token:"));
    assert_eq!(
        all[3]["data"]["changes"]["customer_id"],
        json!({"before": "CUST-ALPHA", "after": "CUST-BETA"})
    );
    assert!(data(&all).iter().all(|d| d["request_id"].is_string()));
    let service = hs256(&claims("service_role", "svc"));
    assert_eq!(history_pages(&app, &service, id, 100).await, all);

    // BETA: from the move on; the move shows only what the order became.
    let seen = history_pages(&app, &beta, id, 100).await;
    assert_eq!(
        kinds(&seen),
        ["order.updated", "order.updated", "order.status_changed"]
    );
    assert_eq!(
        seen[0]["data"]["changes"],
        json!({"customer_id": {"after": "CUST-BETA"}, "total_amount": {"after": "12.00"}})
    );
    assert_eq!(seen[0]["id"], all[3]["id"]);
    assert_eq!(seen[1]["data"]["changes"], all[4]["data"]["changes"]);
    assert_eq!(seen[2]["data"]["order"], all[5]["data"]["order"]);
    let text = serde_json::to_string(&seen).unwrap();
    for secret in [
        "CUST-ALPHA",
        "user-alpha",
        "user-beta",
        "token:",
        "\"actor\"",
        "\"request_id\"",
    ] {
        assert!(
            !text.contains(secret),
            "BETA's history holds {secret}: {text}"
        );
    }
    // One at a time, the same events.
    assert_eq!(history_pages(&app, &beta, id, 1).await, seen);

    // ALPHA: its own time only, up to (not including) the move.
    let mine = history_pages(&app, &alpha, id, 100).await;
    assert_eq!(
        kinds(&mine),
        ["order.created", "order.updated", "order.status_changed"]
    );
    let ids = |events: &[Value]| -> Vec<Value> { events.iter().map(|e| e["id"].clone()).collect() };
    assert_eq!(ids(&mine), ids(&all[..3]));
    assert_eq!(mine[1]["data"]["changes"], all[1]["data"]["changes"]);
    let text = serde_json::to_string(&mine).unwrap();
    for secret in [
        "CUST-BETA",
        "user-alpha",
        "user-beta",
        "token:",
        "\"actor\"",
        "\"request_id\"",
    ] {
        assert!(
            !text.contains(secret),
            "ALPHA's history holds {secret}: {text}"
        );
    }
    // The order itself is BETA's now.
    problem(get_with(&app, &alpha, &path).await, 404).await;

    // Still so once BETA deletes it; a third customer finds nothing.
    let r = app
        .anonymous(Method::DELETE, &path)
        .bearer_auth(&beta)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        kinds(&history_pages(&app, &beta, id, 100).await).last(),
        Some(&"order.deleted")
    );
    assert_eq!(history_pages(&app, &alpha, id, 100).await, mine);
    let missing = problem(
        get_with(&app, &gamma, "/commandes/999999/history").await,
        404,
    )
    .await;
    let other = problem(
        get_with(&app, &gamma, &format!("{path}/history")).await,
        404,
    )
    .await;
    assert_eq!(without_request_id(other), without_request_id(missing));
}

/// A problem body without its `request_id` (which differs per request).
fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

/// `order_id` is unique across the service, so a taken one is a 409 to
/// anyone; but the 409 is the same whoever holds it, and names nothing a
/// guess could not (it echoes the `order_id` sent, nothing of the order).
async fn a_taken_order_id_tells_a_customer_nothing_more(app: TestApp) {
    let (app, c1, orders) = setup(app).await;
    let own = orders[1]["id"].as_i64().unwrap();
    // The body, with the value sent in place of `taken`.
    let conflict = |taken: &str, mut body: Value| {
        let detail = body["detail"].as_str().unwrap().replace(taken, "<sent>");
        body["detail"] = json!(detail);
        without_request_id(body)
    };
    let mut bodies = Vec::new();
    for taken in ["C1-A", "C2-A"] {
        let r = send_with(
            &app,
            &c1,
            Method::POST,
            "/commandes",
            &json!({"order_id": taken, "customer_id": "C1", "total_amount": "1.00"}),
        )
        .await;
        for header in ["location", "etag", "link"] {
            assert!(r.headers().get(header).is_none(), "POST {taken}: {header}");
        }
        bodies.push(conflict(taken, problem(r, 409).await));
        let r = send_with(
            &app,
            &c1,
            Method::PUT,
            &format!("/commandes/{own}"),
            &json!({"order_id": taken}),
        )
        .await;
        for header in ["location", "etag", "link"] {
            assert!(r.headers().get(header).is_none(), "PUT {taken}: {header}");
        }
        bodies.push(conflict(taken, problem(r, 409).await));
    }
    assert_eq!(
        bodies[0], bodies[2],
        "POST: own and other's order_id differ"
    );
    assert_eq!(bodies[1], bodies[3], "PUT: own and other's order_id differ");
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0]["detail"], "order_id \"<sent>\" is already taken");
    let mut keys: Vec<&String> = bodies[0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["detail", "status", "title", "type"], "{}", bodies[0]);
    // A service token gets the same answer.
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "C2-A", "customer_id": "C2", "total_amount": "1.00"}),
        )
        .await;
    assert_eq!(conflict("C2-A", problem(r, 409).await), bodies[0]);
    // Nothing changed.
    assert_eq!(app.fetch(own).await, orders[1]);
}

/// An `Idempotency-Key` belongs to its caller: the same key from another
/// caller is a new request, never the replay (or refusal) of someone else's.
async fn idempotency_keys_do_not_cross_callers(app: TestApp) {
    let app = customer_app(app).await;
    let alpha = customer_token("user-alpha", "CUST-ALPHA");
    let alpha_again = customer_token("user-alpha-2", "CUST-ALPHA");
    let beta = customer_token("user-beta", "CUST-BETA");
    let post = |token: &str, body: Value| {
        app.anonymous(Method::POST, "/commandes")
            .bearer_auth(token.to_string())
            .header("content-type", "application/json")
            .header("idempotency-key", "shared-key-1")
            .body(body.to_string())
            .send()
    };
    let alphas = json!({"order_id": "IK-A", "customer_id": "CUST-ALPHA", "total_amount": "1.00"});
    let betas = json!({"order_id": "IK-B", "customer_id": "CUST-BETA", "total_amount": "2.00"});
    let r = post(&alpha, alphas.clone()).await.unwrap();
    assert!(r.headers().get("idempotent-replayed").is_none());
    let first = json(r, 201).await;
    // BETA, same key, its own order: created, not refused, not replayed.
    let r = post(&beta, betas.clone()).await.unwrap();
    assert!(r.headers().get("idempotent-replayed").is_none());
    let b = json(r, 201).await;
    assert_eq!(b["order_id"], "IK-B");
    assert_ne!(b["id"], first["id"]);
    // Each caller's retry replays its own answer.
    let r = post(&alpha, alphas.clone()).await.unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(json(r, 201).await, first);
    let r = post(&beta, betas).await.unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    assert_eq!(json(r, 201).await, b);
    // Another user of the same customer, and a service token, sending
    // ALPHA's very request: a new create (so a taken order_id), no replay.
    let r = post(&alpha_again, alphas.clone()).await.unwrap();
    assert!(r.headers().get("idempotent-replayed").is_none());
    problem(r, 409).await;
    let r = app
        .request(Method::POST, "/commandes")
        .header("content-type", "application/json")
        .header("idempotency-key", "shared-key-1")
        .body(alphas.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("idempotent-replayed").is_none());
    problem(r, 409).await;
    assert_eq!(app.list("/commandes").await.len(), 2);
}

crate::both_backends!(
    a_moved_orders_history_shows_each_customer_only_its_time,
    a_taken_order_id_tells_a_customer_nothing_more,
    idempotency_keys_do_not_cross_callers,
    a_customer_sees_only_its_own_history_and_not_the_feed,
    a_customer_lists_and_counts_only_its_orders,
    a_customer_charts_only_its_orders,
    another_customers_order_is_absent,
    a_customer_changes_only_its_own_orders,
    an_authenticated_jwt_without_the_claim_is_403,
);
