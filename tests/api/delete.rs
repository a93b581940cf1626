//! `DELETE /commandes/{id}`.

use serde_json::{json, Value};

use crate::support::{error_fields, problem, TestApp};

fn id_of(order: &Value) -> i64 {
    order["id"].as_i64().unwrap()
}

async fn a_delete_is_204_with_no_body_then_404(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}", id_of(&order));
    let r = app.delete(&path).await;
    assert_eq!(r.status(), 204);
    assert!(
        r.headers().get("content-type").is_none(),
        "{:?}",
        r.headers()
    );
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    problem(app.get(&path).await, 404).await;
    problem(app.get("/commandes/order/CMD001").await, 404).await;
    assert_eq!(app.list("/commandes").await, Vec::<Value>::new());
}

async fn a_second_delete_is_404(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}", id_of(&order));
    assert_eq!(app.delete(&path).await.status(), 204);
    let body = problem(app.delete(&path).await, 404).await;
    assert_eq!(body["title"], "Not Found");
    problem(app.delete(&path).await, 404).await;
}

async fn a_deleted_order_cannot_be_changed(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let path = format!("/commandes/{}", id_of(&order));
    assert_eq!(app.delete(&path).await.status(), 204);
    problem(app.put(&path, &json!({"customer_id": "C2"})).await, 404).await;
    problem(
        app.put(&format!("{path}/status"), &json!("processing"))
            .await,
        404,
    )
    .await;
    assert_eq!(app.stats().await["total_orders"], 0);
}

async fn only_the_named_order_goes(app: TestApp) {
    let a = app.create("CMD001", "C1", "1.00", "pending").await;
    let b = app.create("CMD002", "C1", "2.00", "completed").await;
    let c = app.create("CMD003", "C2", "3.00", "cancelled").await;
    assert_eq!(
        app.delete(&format!("/commandes/{}", id_of(&b)))
            .await
            .status(),
        204
    );
    assert_eq!(
        app.list("/commandes?sort=id").await,
        vec![a.clone(), c.clone()]
    );
    assert_eq!(app.list("/commandes/customer/C1").await, vec![a]);
    assert_eq!(
        app.list("/commandes/status/completed").await,
        Vec::<Value>::new()
    );
    let stats = app.stats().await;
    assert_eq!(stats["total_orders"], 2);
    assert_eq!(stats["total_amount"], "4.00");
}

async fn absent_and_bad_ids(app: TestApp) {
    let order = app.create("CMD001", "C1", "5.00", "pending").await;
    let absent = id_of(&order) + 1;
    problem(app.delete(&format!("/commandes/{absent}")).await, 404).await;
    for id in [
        "0",
        "9223372036854775807",
        "9223372036854775808",
        "99999999999999999999999999",
    ] {
        problem(app.delete(&format!("/commandes/{id}")).await, 404).await;
    }
    for id in ["abc", "1.5", "-1", "+1", "1e3", "%201"] {
        let r = app.delete(&format!("/commandes/{id}")).await;
        assert_eq!(error_fields(&problem(r, 422).await), ["id"], "{id}");
    }
    assert_eq!(app.list("/commandes").await, vec![order]);
}

crate::both_backends!(
    a_delete_is_204_with_no_body_then_404,
    a_second_delete_is_404,
    a_deleted_order_cannot_be_changed,
    only_the_named_order_goes,
    absent_and_bad_ids,
);
