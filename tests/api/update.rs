//! `PUT /commandes/{id}`: partial changes, no-ops, conflicts and refusals.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{error_fields, json, problem, TestApp};

fn id_of(order: &Value) -> i64 {
    order["id"].as_i64().unwrap()
}

async fn put_ok(app: &TestApp, id: i64, body: &Value) -> Value {
    json(app.put(&format!("/commandes/{id}"), body).await, 200).await
}

/// `after` is `before` with `changes` applied and a later `updated_at`.
fn assert_changed(before: &Value, after: &Value, changes: &Value) {
    let mut expected = before.clone();
    for (k, v) in changes.as_object().unwrap() {
        expected[k] = v.clone();
    }
    expected["updated_at"] = after["updated_at"].clone();
    assert_eq!(after, &expected);
    assert!(
        after["updated_at"].as_str() > before["updated_at"].as_str(),
        "updated_at did not move: {before} → {after}"
    );
}

async fn each_field_can_be_changed_alone(app: TestApp) {
    let mut order = app.create("CMD001", "C1", "10.00", "pending").await;
    let id = id_of(&order);
    let steps = [
        (json!({"order_id": "CMD002"}), json!({"order_id": "CMD002"})),
        (json!({"customer_id": "C2"}), json!({"customer_id": "C2"})),
        (
            json!({"total_amount": 12.5}),
            json!({"total_amount": "12.50"}),
        ),
        (
            json!({"total_amount": "7"}),
            json!({"total_amount": "7.00"}),
        ),
        (
            json!({"total_amount": "0"}),
            json!({"total_amount": "0.00"}),
        ),
        (
            json!({"status": "processing"}),
            json!({"status": "processing"}),
        ),
    ];
    for (body, changes) in steps {
        let updated = put_ok(&app, id, &body).await;
        assert_changed(&order, &updated, &changes);
        assert_eq!(app.fetch(id).await, updated, "{body}");
        order = updated;
    }
    assert_eq!(
        json(app.get("/commandes/order/CMD002").await, 200).await,
        order
    );
    problem(app.get("/commandes/order/CMD001").await, 404).await;
}

async fn several_fields_change_together(app: TestApp) {
    let order = app.create("CMD001", "C1", "10.00", "pending").await;
    let id = id_of(&order);
    let body = json!({"order_id": "NEW", "customer_id": "C9", "total_amount": "99.99", "status": "cancelled"});
    let updated = put_ok(&app, id, &body).await;
    assert_changed(
        &order,
        &updated,
        &json!({"order_id": "NEW", "customer_id": "C9", "total_amount": "99.99", "status": "cancelled"}),
    );
    assert_eq!(app.fetch(id).await, updated);
}

async fn read_only_fields_are_ignored_alongside_changes(app: TestApp) {
    let order = app.create("CMD001", "C1", "10.00", "pending").await;
    let id = id_of(&order);
    // Send back what was read, with one change.
    let mut body = order.clone();
    body["customer_id"] = json!("C2");
    body["id"] = json!(id + 100);
    body["created_at"] = json!("2000-01-01T00:00:00.000000Z");
    let updated = put_ok(&app, id, &body).await;
    assert_changed(&order, &updated, &json!({"customer_id": "C2"}));
    assert_eq!(updated["id"], id);
    assert_eq!(updated["created_at"], order["created_at"]);
}

async fn same_values_are_a_no_op(app: TestApp) {
    let order = app.create("CMD001", "C1", "150.50", "processing").await;
    let id = id_of(&order);
    for body in [
        json!({"order_id": "CMD001"}),
        json!({"customer_id": "C1"}),
        json!({"total_amount": "150.5"}),
        json!({"total_amount": 150.50}),
        json!({"total_amount": "150.500"}),
        json!({"status": "processing"}),
        json!({"order_id": "CMD001", "customer_id": "C1", "total_amount": "150.50", "status": "processing"}),
        order.clone(),
    ] {
        let got = put_ok(&app, id, &body).await;
        assert_eq!(got, order, "{body}");
    }
    assert_eq!(app.fetch(id).await, order);
}

async fn every_change_moves_updated_at(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let id = id_of(&order);
    let mut last = order["updated_at"].as_str().unwrap().to_string();
    for cents in 2..12 {
        let updated = put_ok(&app, id, &json!({"total_amount": format!("{cents}.00")})).await;
        let now = updated["updated_at"].as_str().unwrap().to_string();
        assert!(now > last, "{now} is not after {last}");
        assert_eq!(updated["created_at"], order["created_at"]);
        last = now;
    }
}

async fn a_duplicate_order_id_is_409_and_nothing_changes(app: TestApp) {
    let a = app.create("CMD001", "C1", "1.00", "pending").await;
    let b = app.create("CMD002", "C2", "2.00", "pending").await;
    let r = app
        .put(
            &format!("/commandes/{}", id_of(&b)),
            &json!({"order_id": "CMD001", "customer_id": "C3", "total_amount": 3}),
        )
        .await;
    let body = problem(r, 409).await;
    assert!(
        body["detail"].as_str().unwrap().contains("CMD001"),
        "{body}"
    );
    assert_eq!(app.fetch(id_of(&a)).await, a);
    assert_eq!(app.fetch(id_of(&b)).await, b);
    // Case differs: not a duplicate.
    let updated = put_ok(&app, id_of(&b), &json!({"order_id": "cmd001"})).await;
    assert_eq!(updated["order_id"], "cmd001");
}

async fn an_illegal_transition_is_409_and_nothing_is_applied(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "completed").await;
    let id = id_of(&order);
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"status": "pending", "customer_id": "C2", "order_id": "CMD009", "total_amount": 5}),
        )
        .await;
    let body = problem(r, 409).await;
    assert_eq!(body["current_status"], "completed");
    assert_eq!(body["allowed_transitions"], json!([]));
    assert_eq!(app.fetch(id).await, order);
    problem(app.get("/commandes/order/CMD009").await, 404).await;

    let pending = app.create("CMD002", "C1", "1.00", "pending").await;
    let r = app
        .put(
            &format!("/commandes/{}", id_of(&pending)),
            &json!({"status": "completed", "customer_id": "C2"}),
        )
        .await;
    let body = problem(r, 409).await;
    assert_eq!(body["current_status"], "pending");
    assert_eq!(
        body["allowed_transitions"],
        json!(["processing", "cancelled"])
    );
    assert_eq!(app.fetch(id_of(&pending)).await, pending);
}

async fn a_legal_transition_applies_with_the_other_fields(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "processing").await;
    let updated = put_ok(
        &app,
        id_of(&order),
        &json!({"status": "completed", "total_amount": "2.00"}),
    )
    .await;
    assert_changed(
        &order,
        &updated,
        &json!({"status": "completed", "total_amount": "2.00"}),
    );
}

async fn an_empty_change_is_422(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let id = id_of(&order);
    for body in [
        json!({}),
        json!({"id": 5}),
        json!({"created_at": "2020-01-01T00:00:00.000000Z", "updated_at": "x"}),
        json!({"id": id, "created_at": order["created_at"], "updated_at": order["updated_at"]}),
    ] {
        let r = app.put(&format!("/commandes/{id}"), &body).await;
        let p = problem(r, 422).await;
        assert_eq!(error_fields(&p), ["body"], "{body}");
    }
    assert_eq!(app.fetch(id).await, order);
}

async fn bad_changes_are_422_with_every_field(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let id = id_of(&order);
    let path = format!("/commandes/{id}");
    let cases = [
        (json!({"colour": "red"}), vec!["colour"]),
        (
            json!({"customer_id": "C2", "colour": "red"}),
            vec!["colour"],
        ),
        (json!({"order_id": ""}), vec!["order_id"]),
        (json!({"order_id": "   "}), vec!["order_id"]),
        (json!({"order_id": null}), vec!["order_id"]),
        (json!({"order_id": 5}), vec!["order_id"]),
        (json!({"customer_id": "a\u{0}b"}), vec!["customer_id"]),
        (json!({"customer_id": "x".repeat(51)}), vec!["customer_id"]),
        (json!({"total_amount": "1.234"}), vec!["total_amount"]),
        (json!({"total_amount": -1}), vec!["total_amount"]),
        (json!({"total_amount": null}), vec!["total_amount"]),
        (json!({"status": "lost"}), vec!["status"]),
        (json!({"status": null}), vec!["status"]),
        (
            json!({"order_id": "", "customer_id": 1, "total_amount": "x", "status": "Done", "extra": 1}),
            vec!["customer_id", "extra", "order_id", "status", "total_amount"],
        ),
    ];
    for (body, fields) in cases {
        let r = app.put(&path, &body).await;
        let p = problem(r, 422).await;
        assert_eq!(error_fields(&p), fields, "{body}");
    }
    for body in ["[]", "\"C2\"", "3", "null"] {
        let r = app
            .send_raw(Method::PUT, &path, Some("application/json"), body)
            .await;
        assert_eq!(error_fields(&problem(r, 422).await), ["body"], "{body}");
    }
    for body in ["", "{", "{\"customer_id\": }"] {
        let r = app
            .send_raw(Method::PUT, &path, Some("application/json"), body)
            .await;
        problem(r, 400).await;
    }
    assert_eq!(app.fetch(id).await, order);
}

async fn an_absent_order_is_404(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let absent = id_of(&order) + 1;
    let r = app
        .put(
            &format!("/commandes/{absent}"),
            &json!({"customer_id": "C2"}),
        )
        .await;
    problem(r, 404).await;
    problem(
        app.put("/commandes/0", &json!({"customer_id": "C2"})).await,
        404,
    )
    .await;
    // A valid body for an absent id is not a 409 either.
    let r = app
        .put(
            &format!("/commandes/{absent}"),
            &json!({"order_id": "CMD001"}),
        )
        .await;
    problem(r, 404).await;
    assert_eq!(app.list("/commandes").await, vec![order]);
}

async fn a_bad_id_is_422(app: TestApp) {
    for id in ["abc", "1.5", "-1", "+1", "1e3"] {
        let r = app
            .put(&format!("/commandes/{id}"), &json!({"customer_id": "C2"}))
            .await;
        assert_eq!(error_fields(&problem(r, 422).await), ["id"], "{id}");
    }
}

async fn concurrent_renames_to_one_order_id_give_one_200(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(id_of(
            &app.create(&format!("R{i}"), "C1", "1", "pending").await,
        ));
    }
    let mut tasks = Vec::new();
    for id in &ids {
        let request = app
            .request(Method::PUT, &format!("/commandes/{id}"))
            .header("content-type", "application/json")
            .body(json!({"order_id": "TAKEN"}).to_string());
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("sent").status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    let mut expected = vec![200];
    expected.extend([409; 9]);
    assert_eq!(statuses, expected);
    let taken = json(app.get("/commandes/order/TAKEN").await, 200).await;
    let renamed: Vec<Value> = app
        .list("/commandes?limit=1000")
        .await
        .into_iter()
        .filter(|o| o["order_id"] == "TAKEN")
        .collect();
    assert_eq!(renamed, vec![taken]);
}

async fn concurrent_changes_to_different_fields_are_all_kept(app: TestApp) {
    let order = app.create("CMD001", "C1", "1.00", "pending").await;
    let id = id_of(&order);
    let bodies = [
        json!({"customer_id": "C2"}),
        json!({"total_amount": "2.00"}),
        json!({"order_id": "CMD002"}),
        json!({"status": "processing"}),
    ];
    let mut tasks = Vec::new();
    for body in bodies {
        let request = app
            .request(Method::PUT, &format!("/commandes/{id}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("sent").status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let now = app.fetch(id).await;
    assert_eq!(now["customer_id"], "C2");
    assert_eq!(now["total_amount"], "2.00");
    assert_eq!(now["order_id"], "CMD002");
    assert_eq!(now["status"], "processing");
}

crate::both_backends!(
    each_field_can_be_changed_alone,
    several_fields_change_together,
    read_only_fields_are_ignored_alongside_changes,
    same_values_are_a_no_op,
    every_change_moves_updated_at,
    a_duplicate_order_id_is_409_and_nothing_changes,
    an_illegal_transition_is_409_and_nothing_is_applied,
    a_legal_transition_applies_with_the_other_fields,
    an_empty_change_is_422,
    bad_changes_are_422_with_every_field,
    an_absent_order_is_404,
    a_bad_id_is_422,
    concurrent_renames_to_one_order_id_give_one_200,
    concurrent_changes_to_different_fields_are_all_kept,
);
