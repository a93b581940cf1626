//! Keyset pagination (`cursor` and `Link: rel="next"`) and the maintained
//! `/stats` counters.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{error_fields, problem, TestApp};

/// The path and query of a `Link: <…>; rel="next"` header, if any.
fn next_link(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().unwrap().to_string();
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(
        link.trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_string(),
    )
}

async fn ids_of(r: reqwest::Response) -> Vec<i64> {
    let orders: Vec<Value> = r.json().await.unwrap();
    orders.iter().map(|o| o["id"].as_i64().unwrap()).collect()
}

async fn following_next_links_visits_every_order_once(app: TestApp) {
    for i in 0..23 {
        // Few distinct amounts, so ties (broken by id) cross page boundaries.
        app.create(
            &format!("P{i:02}"),
            &format!("C{}", i % 3),
            &format!("{}.00", i % 4),
            "pending",
        )
        .await;
    }
    for sort in [
        "total_amount",
        "-total_amount",
        "created_at",
        "-created_at",
        "id",
        "-id",
        "updated_at",
    ] {
        let all = ids_of(app.get(&format!("/commandes?sort={sort}&limit=1000")).await).await;
        assert_eq!(all.len(), 23);
        let mut seen = Vec::new();
        let mut path = format!("/commandes?sort={sort}&limit=5");
        let mut pages = 0;
        loop {
            let r = app.get(&path).await;
            assert_eq!(r.status(), 200, "{path}");
            let next = next_link(&r);
            seen.extend(ids_of(r).await);
            pages += 1;
            match next {
                Some(p) => path = p,
                None => break,
            }
            assert!(pages < 10, "pagination must end");
        }
        assert_eq!(
            seen, all,
            "sort={sort}: the pages, joined, are the full list in order"
        );
        assert_eq!(pages, 5, "four full pages and a last one of three");
    }
}

async fn the_next_link_keeps_the_filters(app: TestApp) {
    for i in 0..6 {
        app.create(
            &format!("F{i}"),
            if i % 2 == 0 { "EVEN" } else { "ODD" },
            "1.00",
            "pending",
        )
        .await;
    }
    let r = app
        .get("/commandes/customer/EVEN?limit=2&sort=id&skip=0")
        .await;
    let next = next_link(&r).expect("a full page has a next link");
    assert!(next.starts_with("/commandes/customer/EVEN?"), "{next}");
    assert!(
        !next.contains("skip="),
        "the cursor replaces the offset: {next}"
    );
    let second: Vec<Value> = app.get(&next).await.json().await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["customer_id"], "EVEN");
}

async fn a_cursor_survives_deletes_before_it(app: TestApp) {
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.create(&format!("D{i}"), "C", "1.00", "pending").await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let r = app.get("/commandes?sort=id&limit=3").await;
    let next = next_link(&r).unwrap();
    // Orders on the first page go away; the second page does not shift.
    for id in &ids[..3] {
        assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
    }
    assert_eq!(ids_of(app.get(&next).await).await, ids[3..].to_vec());
}

async fn a_bad_cursor_is_a_422(app: TestApp) {
    app.create("X1", "C", "1.00", "pending").await;
    app.create("X2", "C", "1.00", "pending").await;
    for bad in ["zz", "31", "", "00", "313a313a2d31"] {
        let body = problem(app.get(&format!("/commandes?cursor={bad}")).await, 422).await;
        assert_eq!(error_fields(&body), ["cursor"], "{bad:?}");
    }
    // Any well-formed token is a position: with another sort it is read in
    // that order (here: ids after 1, newest first, so none).
    let r = app.get("/commandes?limit=1&sort=id").await;
    let next = next_link(&r).unwrap();
    let cursor = next.split("cursor=").nth(1).unwrap().to_string();
    let r = app
        .get(&format!("/commandes?sort=-id&cursor={cursor}"))
        .await;
    assert_eq!(r.status(), 200);
    assert!(ids_of(r).await.is_empty());
}

async fn stats_stay_exact_through_every_kind_of_change(app: TestApp) {
    let a = app.create("S1", "C", "10.00", "pending").await;
    let b = app.create("S2", "C", "20.50", "processing").await;
    app.create("S3", "C", "0.01", "completed").await;
    app.put(
        &format!("/commandes/{}/status", a["id"]),
        &json!("cancelled"),
    )
    .await;
    app.put(
        &format!("/commandes/{}", b["id"]),
        &json!({"total_amount": "21.00", "status": "completed"}),
    )
    .await;
    app.request(Method::DELETE, "/commandes/999999")
        .send()
        .await
        .unwrap();
    let c = app.create("S4", "C", "5.00", "pending").await;
    assert_eq!(
        app.delete(&format!("/commandes/{}", c["id"]))
            .await
            .status(),
        204
    );

    let stats: Value = app.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["total_orders"], 3);
    assert_eq!(
        stats["by_status"],
        json!({"pending": 0, "processing": 0, "completed": 2, "cancelled": 1})
    );
    assert_eq!(
        stats["amount_by_status"],
        json!({"pending": "0.00", "processing": "0.00", "completed": "21.01", "cancelled": "10.00"})
    );
    assert_eq!(stats["total_amount"], "31.01");
    // And they agree with a count of the lists.
    for status in ["pending", "processing", "completed", "cancelled"] {
        let list: Vec<Value> = app
            .get(&format!("/commandes/status/{status}?limit=1000"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(stats["by_status"][status], list.len(), "{status}");
    }
}

crate::both_backends!(
    following_next_links_visits_every_order_once,
    the_next_link_keeps_the_filters,
    a_cursor_survives_deletes_before_it,
    a_bad_cursor_is_a_422,
    stats_stay_exact_through_every_kind_of_change,
    stats_are_exact_after_an_import,
);

/// A bulk import (which counts once, not per row) leaves `/stats` exact too.
async fn stats_are_exact_after_an_import(app: TestApp) {
    app.create("LIVE-1", "C", "1.00", "pending").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orders.ndjson");
    let lines: Vec<String> = (0..50)
        .map(|i| {
            let status = ["pending", "processing", "completed", "cancelled"][i % 4];
            json!({"order_id": format!("IMP-{i}"), "customer_id": "C", "status": status,
                   "total_amount": format!("{i}.25")})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = crate::process::commandes(dir.path())
        .args([
            "--database-url",
            &app.database_url,
            "import",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    assert_eq!(stats["total_orders"], 51);
    assert_eq!(stats["by_status"]["pending"], 14);
    assert_eq!(stats["by_status"]["cancelled"], 12);
    // 1.00 + the sum of i.25 for i in 0..50
    assert_eq!(stats["total_amount"], "1238.50");
}
