//! `POST /commandes`: what a new order looks like, and when one is refused.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{enc, error_fields, json, problem, TestApp};

/// Posts a raw JSON text.
async fn post_text(app: &TestApp, body: &str) -> reqwest::Response {
    app.send_raw(
        Method::POST,
        "/commandes",
        Some("application/json"),
        body.to_string(),
    )
    .await
}

/// Checks the contract's timestamp format: `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn assert_timestamp(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert_eq!(text.len(), 27, "{text}");
    assert!(text.ends_with('Z'), "{text}");
    let b = text.as_bytes();
    for (i, c) in b.iter().enumerate() {
        let expected = match i {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'.',
            26 => b'Z',
            _ => {
                assert!(c.is_ascii_digit(), "{text}: position {i}");
                continue;
            }
        };
        assert_eq!(*c, expected, "{text}: position {i}");
    }
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
}

async fn a_created_order_has_the_contract_shape(app: TestApp) {
    let before = chrono::Utc::now();
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "CMD001", "customer_id": "CLIENT123", "total_amount": 150.5}),
        )
        .await;
    let after = chrono::Utc::now();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let order = json(r, 201).await;

    let mut keys: Vec<&str> = order
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "customer_id",
            "id",
            "order_id",
            "status",
            "total_amount",
            "updated_at"
        ]
    );
    let id = order["id"].as_i64().expect("integer id");
    assert!(id >= 1);
    assert_eq!(location, format!("/commandes/{id}"));
    assert_eq!(order["order_id"], "CMD001");
    assert_eq!(order["customer_id"], "CLIENT123");
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total_amount"], "150.50");
    assert_timestamp(&order["created_at"]);
    assert_timestamp(&order["updated_at"]);
    assert_eq!(order["created_at"], order["updated_at"]);
    let created: chrono::DateTime<chrono::Utc> =
        order["created_at"].as_str().unwrap().parse().unwrap();
    let slack = chrono::TimeDelta::seconds(5);
    assert!(
        created >= before - slack && created <= after + slack,
        "{created} not near {before}"
    );

    // What Location names is what was returned.
    assert_eq!(app.fetch(id).await, order);
}

async fn any_status_may_be_given_on_create(app: TestApp) {
    for (i, status) in ["pending", "processing", "completed", "cancelled"]
        .iter()
        .enumerate()
    {
        let order = app.create(&format!("CMD{i}"), "C1", "10", status).await;
        assert_eq!(order["status"], *status);
        assert_eq!(
            app.fetch(order["id"].as_i64().unwrap()).await["status"],
            *status
        );
    }
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "NOSTATUS", "customer_id": "C1", "total_amount": "1"}),
        )
        .await;
    assert_eq!(json(r, 201).await["status"], "pending");
}

async fn read_only_fields_are_ignored(app: TestApp) {
    let r = app
        .post(
            "/commandes",
            &json!({
                "id": 999, "order_id": "CMD001", "customer_id": "C1", "total_amount": "5",
                "created_at": "1999-01-01T00:00:00.000000Z", "updated_at": "not even a time",
            }),
        )
        .await;
    let order = json(r, 201).await;
    assert_ne!(order["id"], 999);
    assert_ne!(order["created_at"], "1999-01-01T00:00:00.000000Z");
    assert_eq!(order["created_at"], order["updated_at"]);
    assert_eq!(app.get("/commandes/999").await.status(), 404);

    // What a client read can be sent back as a new order.
    let mut copy = order.clone();
    copy["order_id"] = json!("CMD002");
    let again = json(app.post("/commandes", &copy).await, 201).await;
    assert_ne!(again["id"], order["id"]);
    assert_eq!(again["total_amount"], "5.00");
}

async fn amounts_as_numbers_and_strings(app: TestApp) {
    let cases = [
        ("150.5", "150.50"),
        (r#""150.5""#, "150.50"),
        (r#""150.50""#, "150.50"),
        (r#""150""#, "150.00"),
        ("150", "150.00"),
        (r#""007""#, "7.00"),
        ("1e2", "100.00"),
        ("1E+2", "100.00"),
        ("15e-1", "1.50"),
        ("1.25e1", "12.50"),
        (r#""1.230""#, "1.23"),
        ("1.230", "1.23"),
        (r#""-0""#, "0.00"),
        (r#""-0.00""#, "0.00"),
        ("-0", "0.00"),
        ("0", "0.00"),
        ("0.0", "0.00"),
        ("0.1", "0.10"),
        ("0.01", "0.01"),
        ("99999999.99", "99999999.99"),
        (r#""99999999.99""#, "99999999.99"),
        ("0e999999999", "0.00"),
    ];
    for (i, (literal, expected)) in cases.iter().enumerate() {
        let body =
            format!(r#"{{"order_id": "A{i}", "customer_id": "C1", "total_amount": {literal}}}"#);
        let r = post_text(&app, &body).await;
        assert_eq!(r.status(), 201, "{literal}");
        let order = json(r, 201).await;
        assert_eq!(order["total_amount"], *expected, "{literal}");
        assert_eq!(
            app.fetch(order["id"].as_i64().unwrap()).await["total_amount"],
            *expected,
            "{literal}"
        );
    }
}

async fn a_duplicate_order_id_is_409_and_the_original_stays(app: TestApp) {
    let original = app.create("CMD001", "C1", "10.00", "pending").await;
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "CMD001", "customer_id": "OTHER", "total_amount": 99, "status": "completed"}),
        )
        .await;
    let body = problem(r, 409).await;
    assert_eq!(body["title"], "Conflict");
    assert!(
        body["detail"].as_str().unwrap().contains("CMD001"),
        "{body}"
    );
    assert!(body.get("errors").is_none(), "{body}");

    assert_eq!(app.fetch(original["id"].as_i64().unwrap()).await, original);
    let all = app.list("/commandes").await;
    assert_eq!(all, vec![original]);
}

async fn order_ids_are_case_sensitive(app: TestApp) {
    let lower = app.create("cmd1", "C1", "1", "pending").await;
    let upper = app.create("CMD1", "C1", "2", "pending").await;
    assert_ne!(lower["id"], upper["id"]);
    let got = json(app.get("/commandes/order/cmd1").await, 200).await;
    assert_eq!(got, lower);
    let got = json(app.get("/commandes/order/CMD1").await, 200).await;
    assert_eq!(got, upper);
    problem(app.get("/commandes/order/Cmd1").await, 404).await;
}

async fn a_deleted_order_id_can_be_used_again_with_a_new_id(app: TestApp) {
    let first = app.create("CMD001", "C1", "1", "pending").await;
    let second = app.create("CMD002", "C1", "2", "pending").await;
    let (id1, id2) = (
        first["id"].as_i64().unwrap(),
        second["id"].as_i64().unwrap(),
    );
    assert!(id2 > id1);

    // Delete the newest: its id must not come back.
    assert_eq!(app.delete(&format!("/commandes/{id2}")).await.status(), 204);
    let third = app.create("CMD003", "C1", "3", "pending").await;
    let id3 = third["id"].as_i64().unwrap();
    assert!(id3 > id2, "id {id3} reused after deleting {id2}");

    // And the deleted order_id is free again, under a new id.
    assert_eq!(app.delete(&format!("/commandes/{id1}")).await.status(), 204);
    let again = app.create("CMD001", "C9", "4", "completed").await;
    let id4 = again["id"].as_i64().unwrap();
    assert!(id4 > id3, "id {id4} is not new");
    assert_eq!(again["customer_id"], "C9");
    assert_eq!(
        json(app.get("/commandes/order/CMD001").await, 200).await,
        again
    );
    problem(app.get(&format!("/commandes/{id1}")).await, 404).await;
}

async fn text_limits_count_code_points(app: TestApp) {
    let fifty_e = "é".repeat(50);
    let fifty_one_e = "é".repeat(51);
    let ok = app.create(&fifty_e, &fifty_e, "1", "pending").await;
    assert_eq!(ok["order_id"], fifty_e.as_str());
    assert_eq!(ok["customer_id"], fifty_e.as_str());

    let ascii_50 = "x".repeat(50);
    let ok = app.create(&ascii_50, "C1", "1", "pending").await;
    assert_eq!(ok["order_id"], ascii_50.as_str());

    // Four-byte code points count once too.
    let rockets = "🚀".repeat(50);
    let ok = app.create(&rockets, "C1", "1", "pending").await;
    assert_eq!(ok["order_id"], rockets.as_str());

    for (order_id, customer_id, bad) in [
        (fifty_one_e.as_str(), "C1", vec!["order_id"]),
        ("OK1", fifty_one_e.as_str(), vec!["customer_id"]),
        (
            &*"x".repeat(51),
            &*"y".repeat(51),
            vec!["customer_id", "order_id"],
        ),
        (&*"🚀".repeat(51), "C1", vec!["order_id"]),
    ] {
        let r = app
            .post(
                "/commandes",
                &json!({"order_id": order_id, "customer_id": customer_id, "total_amount": 1}),
            )
            .await;
        let body = problem(r, 422).await;
        assert_eq!(error_fields(&body), bad, "{order_id} / {customer_id}");
    }
    assert_eq!(app.stats().await["total_orders"], 3);
}

async fn unicode_is_stored_verbatim(app: TestApp) {
    let cases = [
        ("commande-日本語-001", "client-Ünïcødé"),
        ("CMD/2025/001", "ACME/EU"),
        ("café au lait", "Zoë"),
        ("emoji 🚀✨", "👩‍💻"),
        ("e\u{301}", "e\u{301}"), // combining accent: not the same as é
        ("é", "é"),
        ("100% sûr?#&", "a+b=c"),
    ];
    for (order_id, customer_id) in cases {
        let created = app.create(order_id, customer_id, "1", "pending").await;
        assert_eq!(created["order_id"], order_id);
        assert_eq!(created["customer_id"], customer_id);
        let got = json(
            app.get(&format!("/commandes/order/{}", enc(order_id)))
                .await,
            200,
        )
        .await;
        assert_eq!(got, created, "{order_id}");
        let mine = app
            .list(&format!("/commandes/customer/{}", enc(customer_id)))
            .await;
        assert!(mine.contains(&created), "{customer_id}: {mine:?}");
    }
}

async fn concurrent_creates_of_one_order_id_give_one_201(app: TestApp) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let request = app
            .request(Method::POST, "/commandes")
            .header("content-type", "application/json")
            .body(
                json!({"order_id": "RACE", "customer_id": format!("C{i}"), "total_amount": i})
                    .to_string(),
            );
        tasks.push(tokio::spawn(async move {
            let r = request.send().await.expect("sent");
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.expect("json"))
        }));
    }
    let mut created = Vec::new();
    let mut conflicts = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            201 => created.push(body),
            409 => {
                assert_eq!(body["status"], 409);
                conflicts += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), conflicts), (1, 19));
    let all = app.list("/commandes").await;
    assert_eq!(all, created);
}

async fn concurrent_creates_of_distinct_order_ids_all_succeed(app: TestApp) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let request = app
            .request(Method::POST, "/commandes")
            .header("content-type", "application/json")
            .body(
                json!({"order_id": format!("P{i:02}"), "customer_id": "C1", "total_amount": i})
                    .to_string(),
            );
        tasks.push(tokio::spawn(async move {
            request.send().await.expect("sent").status().as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    let mut ids = app.list_ids("/commandes?sort=id").await;
    assert_eq!(ids.len(), 20);
    ids.dedup();
    assert_eq!(ids.len(), 20, "ids are distinct");
    assert_eq!(app.stats().await["total_amount"], "190.00");
}

crate::both_backends!(
    a_created_order_has_the_contract_shape,
    any_status_may_be_given_on_create,
    read_only_fields_are_ignored,
    amounts_as_numbers_and_strings,
    a_duplicate_order_id_is_409_and_the_original_stays,
    order_ids_are_case_sensitive,
    a_deleted_order_id_can_be_used_again_with_a_new_id,
    text_limits_count_code_points,
    unicode_is_stored_verbatim,
    concurrent_creates_of_one_order_id_give_one_201,
    concurrent_creates_of_distinct_order_ids_all_succeed,
);
