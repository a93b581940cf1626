//! `GET /stats`: counts and amounts per status.

use serde_json::{json, Value};

use crate::support::{error_fields, problem, TestApp};

const STATUSES: [&str; 4] = ["pending", "processing", "completed", "cancelled"];

/// Cents from a `"123.45"` string.
fn cents(amount: &Value) -> i128 {
    let text = amount
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {amount}"));
    let (int, frac) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("no decimals: {text}"));
    assert_eq!(frac.len(), 2, "{text}");
    int.parse::<i128>().unwrap() * 100 + frac.parse::<i128>().unwrap()
}

async fn an_empty_database(app: TestApp) {
    let stats = app.stats().await;
    assert_eq!(
        stats,
        json!({
            "total_orders": 0,
            "by_status": {"pending": 0, "processing": 0, "completed": 0, "cancelled": 0},
            "amount_by_status": {"pending": "0.00", "processing": "0.00", "completed": "0.00", "cancelled": "0.00"},
            "total_amount": "0.00",
            "average_amount": "0.00",
        })
    );
}

async fn counts_and_sums_per_status(app: TestApp) {
    app.create("A", "C1", "10.00", "pending").await;
    app.create("B", "C1", "5.25", "pending").await;
    app.create("C", "C2", "100", "processing").await;
    app.create("D", "C2", "0.01", "cancelled").await;
    app.create("E", "C3", "0", "cancelled").await;
    let stats = app.stats().await;
    assert_eq!(
        stats,
        json!({
            "total_orders": 5,
            "by_status": {"pending": 2, "processing": 1, "completed": 0, "cancelled": 2},
            "amount_by_status": {"pending": "15.25", "processing": "100.00", "completed": "0.00", "cancelled": "0.01"},
            "total_amount": "115.26",
            // 115.26 / 5 = 23.052
            "average_amount": "23.05",
        })
    );
}

async fn the_average_rounds_half_away_from_zero(app: TestApp) {
    let cases: [(&[&str], &str); 7] = [
        (&["0.01", "0.02"], "0.02"),                      // 0.015
        (&["1.00", "1.00", "1.01"], "1.00"),              // 1.00333…
        (&["0.01", "0.02", "0.02"], "0.02"),              // 0.01666…
        (&["0.02", "0.03"], "0.03"),                      // 0.025
        (&["0.00", "0.01"], "0.01"),                      // 0.005
        (&["0.00", "0.00", "0.01"], "0.00"),              // 0.00333…
        (&["10.00", "10.01", "10.01", "10.01"], "10.01"), // 10.0075
    ];
    for (n, (amounts, average)) in cases.iter().enumerate() {
        // A fresh set of orders each time: delete the previous ones.
        for id in app.list_ids("/commandes?limit=1000").await {
            assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
        }
        for (i, amount) in amounts.iter().enumerate() {
            app.create(&format!("AVG{n}-{i}"), "C1", amount, "pending")
                .await;
        }
        let stats = app.stats().await;
        assert_eq!(stats["average_amount"], *average, "{amounts:?}");
        assert_eq!(stats["total_orders"], amounts.len(), "{amounts:?}");
    }
}

async fn sums_beyond_one_amount_are_exact(app: TestApp) {
    for i in 0..3 {
        app.create(&format!("BIG{i}"), "C1", "99999999.99", "completed")
            .await;
    }
    app.create("SMALL", "C1", "0.01", "completed").await;
    let stats = app.stats().await;
    assert_eq!(stats["amount_by_status"]["completed"], "299999999.98");
    assert_eq!(stats["total_amount"], "299999999.98");
    // 74999999.995, half away from zero.
    assert_eq!(stats["average_amount"], "75000000.00");
    assert_eq!(stats["by_status"]["completed"], 4);
}

async fn stats_follow_changes_and_agree_with_the_lists(app: TestApp) {
    let a = app.create("A", "C1", "10.00", "pending").await;
    let b = app.create("B", "C1", "20.00", "pending").await;
    let c = app.create("C", "C2", "30.00", "processing").await;
    app.create("D", "C2", "40.00", "completed").await;
    let r = app
        .put(
            &format!("/commandes/{}/status", a["id"]),
            &json!("cancelled"),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .put(
            &format!("/commandes/{}", b["id"]),
            &json!({"total_amount": "25.50", "status": "processing"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.delete(&format!("/commandes/{}", c["id"]))
            .await
            .status(),
        204
    );

    let stats = app.stats().await;
    assert_eq!(
        stats,
        json!({
            "total_orders": 3,
            "by_status": {"pending": 0, "processing": 1, "completed": 1, "cancelled": 1},
            "amount_by_status": {"pending": "0.00", "processing": "25.50", "completed": "40.00", "cancelled": "10.00"},
            "total_amount": "75.50",
            "average_amount": "25.17",
        })
    );
    // The same figures from the lists.
    let mut total = 0;
    let mut count = 0;
    for status in STATUSES {
        let orders = app
            .list(&format!("/commandes/status/{status}?limit=1000"))
            .await;
        let sum: i128 = orders.iter().map(|o| cents(&o["total_amount"])).sum();
        assert_eq!(stats["by_status"][status], orders.len(), "{status}");
        assert_eq!(cents(&stats["amount_by_status"][status]), sum, "{status}");
        total += sum;
        count += orders.len();
    }
    assert_eq!(cents(&stats["total_amount"]), total);
    assert_eq!(stats["total_orders"], count);
    assert_eq!(app.list("/commandes?limit=1000").await.len(), count);
}

async fn a_query_string_is_422(app: TestApp) {
    for (query, fields) in [
        ("x=1", vec!["x"]),
        ("status=pending", vec!["status"]),
        ("a=1&b=2", vec!["a", "b"]),
    ] {
        let r = app.get(&format!("/stats?{query}")).await;
        assert_eq!(error_fields(&problem(r, 422).await), fields, "{query}");
    }
}

crate::both_backends!(
    an_empty_database,
    counts_and_sums_per_status,
    the_average_rounds_half_away_from_zero,
    sums_beyond_one_amount_are_exact,
    stats_follow_changes_and_agree_with_the_lists,
    a_query_string_is_422,
);
