//! `PUT /commandes/{id}/status` and the transition table, also through
//! `PUT /commandes/{id}`.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{error_fields, json, problem, TestApp};

const STATUSES: [&str; 4] = ["pending", "processing", "completed", "cancelled"];

/// The contract's transitions (besides staying put).
fn allowed(from: &str) -> Vec<&'static str> {
    match from {
        "pending" => vec!["processing", "cancelled"],
        "processing" => vec!["completed", "cancelled"],
        _ => vec![],
    }
}

fn id_of(order: &Value) -> i64 {
    order["id"].as_i64().unwrap()
}

/// Runs every from → to cell, each on an order of its own, through `send`.
async fn check_table(app: &TestApp, via: &str) {
    for from in STATUSES {
        for to in STATUSES {
            let what = format!("{via}: {from} → {to}");
            let order = app
                .create(&format!("{via}-{from}-{to}"), "C1", "5.00", from)
                .await;
            let id = id_of(&order);
            let r = match via {
                "bare" => {
                    app.put(&format!("/commandes/{id}/status"), &json!(to))
                        .await
                }
                "wrapped" => {
                    app.put(&format!("/commandes/{id}/status"), &json!({"status": to}))
                        .await
                }
                _ => {
                    app.put(&format!("/commandes/{id}"), &json!({"status": to}))
                        .await
                }
            };
            if from == to {
                let got = json(r, 200).await;
                assert_eq!(got, order, "{what}: a no-op changes nothing");
            } else if allowed(from).contains(&to) {
                let got = json(r, 200).await;
                assert_eq!(got["status"], to, "{what}");
                assert!(
                    got["updated_at"].as_str() > order["updated_at"].as_str(),
                    "{what}"
                );
                let mut expected = order.clone();
                expected["status"] = json!(to);
                expected["updated_at"] = got["updated_at"].clone();
                assert_eq!(got, expected, "{what}: only status and updated_at change");
            } else {
                assert_eq!(r.status(), 409, "{what}");
                let body = problem(r, 409).await;
                assert_eq!(body["title"], "Conflict", "{what}");
                assert_eq!(body["current_status"], from, "{what}");
                assert_eq!(body["allowed_transitions"], json!(allowed(from)), "{what}");
                assert!(body.get("errors").is_none(), "{what}: {body}");
                let detail = body["detail"].as_str().unwrap();
                assert!(
                    detail.contains(from) && detail.contains(to),
                    "{what}: {detail}"
                );
                assert_eq!(app.fetch(id).await, order, "{what}: nothing changed");
            }
        }
    }
}

async fn the_transition_table_with_a_bare_string(app: TestApp) {
    check_table(&app, "bare").await;
}

async fn the_transition_table_with_an_object(app: TestApp) {
    check_table(&app, "wrapped").await;
}

async fn the_transition_table_through_put(app: TestApp) {
    check_table(&app, "put").await;
}

async fn an_order_goes_through_its_life(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}/status", id_of(&order));
    let processing = json(app.put(&path, &json!("processing")).await, 200).await;
    assert_eq!(processing["status"], "processing");
    let completed = json(app.put(&path, &json!({"status": "completed"})).await, 200).await;
    assert_eq!(completed["status"], "completed");
    assert!(completed["updated_at"].as_str() > processing["updated_at"].as_str());
    assert_eq!(completed["created_at"], order["created_at"]);
    for to in ["pending", "processing", "cancelled"] {
        let body = problem(app.put(&path, &json!(to)).await, 409).await;
        assert_eq!(body["current_status"], "completed");
        assert_eq!(body["allowed_transitions"], json!([]));
    }
    assert_eq!(app.fetch(id_of(&order)).await, completed);
}

async fn bad_status_bodies_are_422(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}/status", id_of(&order));
    let cases = [
        (r#""lost""#, vec!["status"]),
        (r#""Pending""#, vec!["status"]),
        (r#""PROCESSING""#, vec!["status"]),
        (r#"" processing""#, vec!["status"]),
        (r#""""#, vec!["status"]),
        (r#"{"status": "lost"}"#, vec!["status"]),
        (r#"{"status": null}"#, vec!["status"]),
        (r#"{"status": 1}"#, vec!["status"]),
        (r#"{"status": ["processing"]}"#, vec!["status"]),
        (r#"{}"#, vec!["status"]),
        (r#"{"status": "x", "extra": 1}"#, vec!["extra", "status"]),
        (r#"{"status": "processing", "extra": 1}"#, vec!["extra"]),
        (r#"{"state": "processing"}"#, vec!["state", "status"]),
        (r#"["processing"]"#, vec!["body"]),
        ("3", vec!["body"]),
        ("null", vec!["body"]),
        ("true", vec!["body"]),
    ];
    for (body, fields) in cases {
        let r = app
            .send_raw(Method::PUT, &path, Some("application/json"), body)
            .await;
        assert_eq!(r.status(), 422, "{body}");
        let p = problem(r, 422).await;
        assert_eq!(error_fields(&p), fields, "{body}: {p}");
    }
    for body in ["", "processing", "'processing'", "{\"status\": }"] {
        let r = app
            .send_raw(Method::PUT, &path, Some("application/json"), body)
            .await;
        problem(r, 400).await;
    }
    assert_eq!(app.fetch(id_of(&order)).await, order);
}

/// The contract ignores the read-only `id`, `created_at` and `updated_at` in
/// every request body, here as in `PUT /commandes/{id}`: they are accepted
/// with any value and change nothing.
async fn the_object_form_ignores_read_only_fields(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}/status", id_of(&order));
    let body = json!({
        "status": "processing",
        "id": 999_999,
        "created_at": "not even a time",
        "updated_at": null,
    });
    let got = json(app.put(&path, &body).await, 200).await;
    assert_eq!(got["status"], "processing");
    assert_eq!(got["id"], order["id"], "the path's id, not the body's");
    assert_eq!(got["created_at"], order["created_at"]);
    assert!(got["updated_at"].as_str() > order["updated_at"].as_str());
    // Other fields are still not accepted here: this operation changes the
    // status only.
    let r = app
        .put(
            &path,
            &json!({"status": "completed", "total_amount": "1.00"}),
        )
        .await;
    assert_eq!(error_fields(&problem(r, 422).await), ["total_amount"]);
    assert_eq!(app.fetch(id_of(&order)).await, got);
}

async fn an_absent_order_is_404(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let absent = id_of(&order) + 1;
    problem(
        app.put(&format!("/commandes/{absent}/status"), &json!("processing"))
            .await,
        404,
    )
    .await;
    problem(
        app.put(
            &format!("/commandes/{absent}/status"),
            &json!({"status": "pending"}),
        )
        .await,
        404,
    )
    .await;
    problem(
        app.put("/commandes/0/status", &json!("processing")).await,
        404,
    )
    .await;
    let r = app.put("/commandes/abc/status", &json!("processing")).await;
    assert_eq!(error_fields(&problem(r, 422).await), ["id"]);
    assert_eq!(app.fetch(id_of(&order)).await, order);
}

/// One response of the race below.
struct Outcome {
    asked: &'static str,
    status: u16,
    body: Value,
}

async fn concurrent_status_changes_leave_a_legal_history(app: TestApp) {
    let order = app.create("RACE", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}/status", id_of(&order));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let asked = if i % 2 == 0 {
            "processing"
        } else {
            "cancelled"
        };
        let request = app
            .request(Method::PUT, &path)
            .header("content-type", "application/json")
            .body(json!(asked).to_string());
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.expect("sent");
            let status = r.status().as_u16();
            Outcome {
                asked,
                status,
                body: r.json().await.expect("json"),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }

    // Every answer is a success or a transition conflict.
    let mut states: Vec<(String, String)> = vec![(
        order["updated_at"].as_str().unwrap().to_string(),
        "pending".to_string(),
    )];
    for o in &outcomes {
        match o.status {
            200 => {
                assert_eq!(o.body["status"], o.asked, "a 200 reports the asked status");
                states.push((
                    o.body["updated_at"].as_str().unwrap().to_string(),
                    o.asked.to_string(),
                ));
            }
            409 => {
                // Only cancelled → processing can be refused here.
                assert_eq!(o.asked, "processing", "{}", o.body);
                assert_eq!(o.body["current_status"], "cancelled", "{}", o.body);
                assert_eq!(o.body["allowed_transitions"], json!([]));
            }
            other => panic!("unexpected {other}: {}", o.body),
        }
    }
    // One state per updated_at: no two different states at the same time.
    states.sort();
    states.dedup();
    for pair in states.windows(2) {
        assert_ne!(
            pair[0].0, pair[1].0,
            "two states share an updated_at: {states:?}"
        );
    }
    // In time order, each step is a legal transition.
    for pair in states.windows(2) {
        let (from, to) = (&pair[0].1, &pair[1].1);
        assert!(
            allowed(from).contains(&to.as_str()),
            "illegal step {from} → {to} in {states:?}"
        );
    }
    // The stored order is the last state.
    let last = states.last().unwrap();
    let now = app.fetch(id_of(&order)).await;
    assert_eq!(now["status"], last.1.as_str());
    assert_eq!(now["updated_at"], last.0.as_str());
    assert!(["processing", "cancelled"].contains(&now["status"].as_str().unwrap()));
    // Every cancelled request after the order was cancelled is a no-op 200,
    // so a cancellation can never be refused.
    assert!(outcomes
        .iter()
        .filter(|o| o.asked == "cancelled")
        .all(|o| o.status == 200));
}

async fn concurrent_completions_and_cancellations(app: TestApp) {
    // From processing, completed and cancelled are both final: exactly one
    // of them wins, the others are no-ops or conflicts.
    let order = app.create("RACE2", "C1", "5.00", "processing").await;
    let path = format!("/commandes/{}/status", id_of(&order));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let asked = if i % 2 == 0 { "completed" } else { "cancelled" };
        let request = app
            .request(Method::PUT, &path)
            .header("content-type", "application/json")
            .body(json!({"status": asked}).to_string());
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.expect("sent");
            (
                asked,
                r.status().as_u16(),
                r.json::<Value>().await.expect("json"),
            )
        }));
    }
    let now = {
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        let now = app.fetch(id_of(&order)).await;
        let winner = now["status"].as_str().unwrap().to_string();
        assert!(winner == "completed" || winner == "cancelled", "{now}");
        for (asked, status, body) in results {
            if asked == winner {
                assert_eq!(status, 200, "{body}");
                assert_eq!(body, now, "every winning answer is the final order");
            } else {
                assert_eq!(status, 409, "{asked} after {winner}: {body}");
                assert_eq!(body["current_status"], winner.as_str());
                assert_eq!(body["allowed_transitions"], json!([]));
            }
        }
        now
    };
    assert!(now["updated_at"].as_str() > order["updated_at"].as_str());
}

crate::both_backends!(
    the_transition_table_with_a_bare_string,
    the_transition_table_with_an_object,
    the_transition_table_through_put,
    an_order_goes_through_its_life,
    bad_status_bodies_are_422,
    the_object_form_ignores_read_only_fields,
    an_absent_order_is_404,
    concurrent_status_changes_leave_a_legal_history,
    concurrent_completions_and_cancellations,
);
