//! The round trip a new user tries first.

use serde_json::json;

use crate::support::TestApp;

async fn create_read_change_delete(app: TestApp) {
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "CMD001", "customer_id": "CLIENT123", "total_amount": 150.5}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let created: serde_json::Value = r.json().await.unwrap();
    assert_eq!(location, format!("/commandes/{}", created["id"]));
    assert_eq!(created["total_amount"], "150.50");
    assert_eq!(created["status"], "pending");

    let got: serde_json::Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(got, created);

    let r = app
        .put(&format!("{location}/status"), &json!("processing"))
        .await;
    assert_eq!(r.status(), 200);
    let changed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(changed["status"], "processing");
    assert!(changed["updated_at"].as_str() > created["updated_at"].as_str());

    assert_eq!(app.delete(&location).await.status(), 204);
    assert_eq!(app.get(&location).await.status(), 404);
}

crate::both_backends!(create_read_change_delete);
