//! Optimistic concurrency (ETag, If-Match, If-None-Match), idempotent
//! creation (Idempotency-Key), and rules that hold under concurrent load.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{error_fields, problem, Backend, TestApp};

fn etag(r: &reqwest::Response) -> String {
    r.headers()["etag"].to_str().unwrap().to_string()
}

async fn put_status(
    app: &TestApp,
    id: &Value,
    status: &str,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .request(Method::PUT, &format!("/commandes/{id}/status"))
        .header("content-type", "application/json")
        .body(json!(status).to_string());
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    req.send().await.unwrap()
}

async fn every_single_order_response_has_a_strong_etag(app: TestApp) {
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "E1", "customer_id": "C", "total_amount": 1}),
        )
        .await;
    let created = etag(&r);
    assert!(
        created.starts_with('"') && created.ends_with('"'),
        "strong, quoted: {created}"
    );
    let body: Value = r.json().await.unwrap();
    let id = &body["id"];
    assert_eq!(etag(&app.get(&format!("/commandes/{id}")).await), created);
    assert_eq!(etag(&app.get("/commandes/order/E1").await), created);

    // A no-op keeps the tag; every change moves it, even two in a row.
    let same = app
        .put(&format!("/commandes/{id}"), &json!({"customer_id": "C"}))
        .await;
    assert_eq!(etag(&same), created);
    let a = etag(
        &app.put(&format!("/commandes/{id}"), &json!({"total_amount": "2"}))
            .await,
    );
    let b = etag(
        &app.put(&format!("/commandes/{id}"), &json!({"total_amount": "3"}))
            .await,
    );
    assert!(a != created && b != a, "{created} {a} {b}");
}

async fn if_match_refuses_a_stale_change_and_keeps_the_order(app: TestApp) {
    let order = app.create("E2", "C", "10.00", "pending").await;
    let id = &order["id"];
    let first = etag(&app.get(&format!("/commandes/{id}")).await);
    let moved = put_status(&app, id, "processing", Some(&first)).await;
    assert_eq!(moved.status(), 200);
    let current = etag(&moved);

    // A second clerk still holds the first tag.
    let stale = app
        .request(Method::PUT, &format!("/commandes/{id}"))
        .header("content-type", "application/json")
        .header("if-match", &first)
        .body(json!({"total_amount": "99.00"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(etag(&stale), current, "412 carries the current tag");
    problem(stale, 412).await;
    let stale = put_status(&app, id, "cancelled", Some(&first)).await;
    problem(stale, 412).await;
    let stale = app
        .request(Method::DELETE, &format!("/commandes/{id}"))
        .header("if-match", &first)
        .send()
        .await
        .unwrap();
    problem(stale, 412).await;
    let now: Value = app
        .get(&format!("/commandes/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (now["status"].as_str(), now["total_amount"].as_str()),
        (Some("processing"), Some("10.00"))
    );

    // Weak tags never match If-Match; `*` and the current tag do.
    problem(
        put_status(&app, id, "completed", Some(&format!("W/{current}"))).await,
        412,
    )
    .await;
    assert_eq!(
        put_status(&app, id, "processing", Some("*")).await.status(),
        200
    );
    let gone = app
        .request(Method::DELETE, &format!("/commandes/{id}"))
        .header("if-match", &current)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 204);
}

async fn if_none_match_answers_304_while_unchanged(app: TestApp) {
    let order = app.create("E3", "C", "1.00", "pending").await;
    let path = format!("/commandes/{}", order["id"]);
    let tag = etag(&app.get(&path).await);
    for header in [
        tag.clone(),
        format!("W/{tag}"),
        format!("\"other\", {tag}"),
        "*".to_string(),
    ] {
        let r = app
            .request(Method::GET, &path)
            .header("if-none-match", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{header}");
        assert_eq!(etag(&r), tag);
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = app
        .request(Method::GET, "/commandes/order/E3")
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    put_status(&app, &order["id"], "cancelled", None).await;
    let r = app
        .request(Method::GET, &path)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "changed since");
}

async fn only_one_of_many_concurrent_if_match_changes_wins(app: TestApp) {
    let app = Arc::new(app);
    let order = app.create("E4", "C", "1.00", "pending").await;
    let id = order["id"].clone();
    let tag = etag(&app.get(&format!("/commandes/{id}")).await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (app, id, tag) = (app.clone(), id.clone(), tag.clone());
            tokio::spawn(async move {
                app.request(Method::PUT, &format!("/commandes/{id}"))
                    .header("content-type", "application/json")
                    .header("if-match", tag)
                    .body(json!({"total_amount": format!("{}.00", i + 2)}).to_string())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        19,
        "{statuses:?}"
    );
}

fn keyed(app: &TestApp, key: &str, body: Value) -> reqwest::RequestBuilder {
    app.request(Method::POST, "/commandes")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
}

async fn a_retried_create_is_replayed_not_repeated(app: TestApp) {
    let first = keyed(
        &app,
        "key-1",
        json!({"order_id": "I1", "customer_id": "C", "total_amount": 150.5}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();

    // The same values, written differently, are the same request.
    let again = keyed(
        &app,
        "key-1",
        json!({"total_amount": "150.50", "customer_id": "C", "order_id": "I1"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.headers()["location"], location);
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    // The replay is the first answer, even after the order changed.
    put_status(&app, &first["id"], "processing", None).await;
    let later: Value = keyed(
        &app,
        "key-1",
        json!({"order_id": "I1", "customer_id": "C", "total_amount": 150.5}),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(later, first);
    let all: Vec<Value> = app.get("/commandes").await.json().await.unwrap();
    assert_eq!(all.len(), 1, "created once");
}

async fn a_key_reused_with_other_values_is_refused(app: TestApp) {
    let r = keyed(
        &app,
        "key-2",
        json!({"order_id": "I2", "customer_id": "C", "total_amount": 1}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = keyed(
        &app,
        "key-2",
        json!({"order_id": "I2", "customer_id": "C", "total_amount": 2}),
    )
    .send()
    .await
    .unwrap();
    let body = problem(r, 422).await;
    assert_eq!(error_fields(&body), ["Idempotency-Key"]);
    for bad in ["", &"k".repeat(256)] {
        let r = keyed(
            &app,
            bad,
            json!({"order_id": "I3", "customer_id": "C", "total_amount": 1}),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            error_fields(&problem(r, 422).await),
            ["Idempotency-Key"],
            "{bad:?}"
        );
    }
    let all: Vec<Value> = app.get("/commandes").await.json().await.unwrap();
    assert_eq!(all.len(), 1);
}

async fn keys_belong_to_their_caller(app: TestApp) {
    let mine = keyed(
        &app,
        "shared",
        json!({"order_id": "I4", "customer_id": "C", "total_amount": 1}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(mine.status(), 201);
    let theirs = app
        .anonymous(Method::POST, "/commandes")
        .bearer_auth(crate::support::SECOND_TOKEN)
        .header("content-type", "application/json")
        .header("idempotency-key", "shared")
        .body(json!({"order_id": "I5", "customer_id": "C", "total_amount": 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201, "another caller's key is another key");
    assert!(!theirs.headers().contains_key("idempotent-replayed"));
}

async fn concurrent_retries_of_one_key_create_once(app: TestApp) {
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let r = keyed(
                    &app,
                    "burst",
                    json!({"order_id": "I6", "customer_id": "C", "total_amount": 5}),
                )
                .send()
                .await
                .unwrap();
                (
                    r.status().as_u16(),
                    r.headers().contains_key("idempotent-replayed"),
                )
            })
        })
        .collect();
    let mut fresh = 0;
    for t in tasks {
        match t.await.unwrap() {
            (201, false) => fresh += 1,
            (201, true) | (409, false) => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request created the order");
    let all: Vec<Value> = app.get("/commandes").await.json().await.unwrap();
    assert_eq!(all.len(), 1);
}

async fn fifty_concurrent_creates_of_one_order_id_give_one_201(app: TestApp) {
    let app = Arc::new(app);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    "/commandes",
                    &json!({"order_id": "SAME", "customer_id": format!("C{i}"), "total_amount": 1}),
                )
                .await
                .status()
                .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
}

async fn fifty_concurrent_transitions_leave_a_legal_history(app: TestApp) {
    let app = Arc::new(app);
    let order = app.create("RACE", "C", "1.00", "pending").await;
    let id = order["id"].clone();
    let targets = ["processing", "cancelled", "completed", "pending"];
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move {
                let target = targets[i % targets.len()];
                let r = put_status(&app, &id, target, None).await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (status, target, body)
            })
        })
        .collect();
    let mut applied = Vec::new();
    for t in tasks {
        let (status, target, body) = t.await.unwrap();
        match status {
            200 => {
                assert_eq!(body["status"], target);
                applied.push((body["updated_at"].as_str().unwrap().to_string(), target));
            }
            409 => assert!(body["current_status"].is_string()),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // Replaying the answers in the order they were applied (updated_at
    // orders them: it moves forward on every change) must follow the rule.
    applied.sort();
    let legal = |from: &str, to: &str| {
        from == to
            || matches!(
                (from, to),
                ("pending", "processing")
                    | ("pending", "cancelled")
                    | ("processing", "completed")
                    | ("processing", "cancelled")
            )
    };
    let mut current = "pending";
    for (at, to) in &applied {
        assert!(
            legal(current, to),
            "{current} → {to} at {at} in {applied:?}"
        );
        current = to;
    }
    let last: Value = app
        .get(&format!("/commandes/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(last["status"], current);
}

crate::both_backends!(
    every_single_order_response_has_a_strong_etag,
    if_match_refuses_a_stale_change_and_keeps_the_order,
    if_none_match_answers_304_while_unchanged,
    only_one_of_many_concurrent_if_match_changes_wins,
    a_retried_create_is_replayed_not_repeated,
    a_key_reused_with_other_values_is_refused,
    keys_belong_to_their_caller,
    concurrent_retries_of_one_key_create_once,
    fifty_concurrent_creates_of_one_order_id_give_one_201,
    fifty_concurrent_transitions_leave_a_legal_history,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_and_are_cleaned_up() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_with(backend, |s| {
            s.idempotency.ttl_secs = 1;
            s.idempotency.cleanup_interval_secs = 1;
        })
        .await
        else {
            continue;
        };
        let body = json!({"order_id": "X1", "customer_id": "C", "total_amount": 1});
        assert_eq!(
            keyed(&app, "short", body.clone())
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        // Expired: the key is free again, so this is a new create (a
        // duplicate order_id now).
        let r = keyed(&app, "short", body).send().await.unwrap();
        problem(r, 409).await;
        let left =
            crate::support::count_rows(&app, "select count(*) from commandes_idempotency_keys")
                .await;
        assert_eq!(
            left, 0,
            "expired keys are deleted by the clean-up ({backend:?})"
        );
    }
}
