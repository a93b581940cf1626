//! Order events: each change writes its events with it (or none), the
//! histories, the feed a consumer follows under concurrent writers, and
//! retention.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use commandes::domain::Actor;
use commandes::storage::StoreError;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{count_rows, error_fields, exec_sql, open_store, problem, Backend, TestApp};

/// `GET /commandes/{id}/history` (must be 200).
async fn history(app: &TestApp, id: i64) -> Vec<Value> {
    app.list(&format!("/commandes/{id}/history")).await
}

/// `GET /events?after=…&limit=…` (must be 200), and the next `after` its
/// `Link` names.
async fn feed(app: &TestApp, after: i64, limit: u32, wait: u32) -> (Vec<Value>, i64) {
    let r = app
        .get(&format!("/events?after={after}&limit={limit}&wait={wait}"))
        .await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    let events = crate::support::json(r, 200).await;
    let next = link
        .strip_prefix("</events?after=")
        .and_then(|rest| rest.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("Link: {link}"));
    assert!(
        link.ends_with(&format!("&limit={limit}>; rel=\"next\"")),
        "{link}"
    );
    (events.as_array().expect("an array").clone(), next)
}

/// Every page of a history as `token` sees it, `limit` at a time, following
/// the `Link` headers (each page but the last must be full).
pub async fn history_pages(app: &TestApp, token: &str, id: i64, limit: u32) -> Vec<Value> {
    // The default limit is asked for as clients always did: without a query.
    let mut path = match limit {
        100 => format!("/commandes/{id}/history"),
        _ => format!("/commandes/{id}/history?limit={limit}"),
    };
    let mut all = Vec::new();
    loop {
        let r = app
            .anonymous(Method::GET, &path)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let link = r
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_string());
        let page = crate::support::json(r, 200)
            .await
            .as_array()
            .unwrap()
            .clone();
        assert!(
            page.len() <= limit as usize,
            "{path}: {} events",
            page.len()
        );
        all.extend(page.iter().cloned());
        match link {
            Some(link) => {
                assert_eq!(
                    page.len(),
                    limit as usize,
                    "{path}: a Link after a short page"
                );
                path = link
                    .strip_prefix('<')
                    .and_then(|l| l.strip_suffix(">; rel=\"next\""))
                    .unwrap_or_else(|| panic!("Link: {link}"))
                    .to_string();
            }
            None => return all,
        }
    }
}

fn sequence(event: &Value) -> i64 {
    event["data"]["sequence"].as_i64().expect("data.sequence")
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn put_status(app: &TestApp, id: i64, status: &str, if_match: Option<&str>) -> u16 {
    let mut req = app
        .request(Method::PUT, &format!("/commandes/{id}/status"))
        .header("content-type", "application/json")
        .body(json!(status).to_string());
    if let Some(tag) = if_match {
        req = req.header("if-match", tag);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn each_change_makes_its_events(app: TestApp) {
    let order = app.create("EV-1", "C1", "10.50", "pending").await;
    let id = order["id"].as_i64().unwrap();

    // A change of fields, a status change, both at once, and a no-op.
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"total_amount": "11.00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(put_status(&app, id, "processing", None).await, 200);
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"customer_id": "C2", "status": "completed"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"customer_id": "C2", "status": "completed"}),
        )
        .await;
    assert_eq!(r.status(), 200, "a no-op");
    assert_eq!(put_status(&app, id, "completed", None).await, 200);

    let events = history(&app, id).await;
    assert_eq!(
        types(&events),
        [
            "order.created",
            "order.updated",
            "order.status_changed",
            "order.updated",
            "order.status_changed",
        ]
    );
    let created = &events[0];
    assert_eq!(created["specversion"], "1.0");
    assert_eq!(created["source"], "/commandes");
    assert_eq!(created["subject"], id.to_string());
    assert_eq!(created["datacontenttype"], "application/json");
    assert_eq!(created["data"]["id"], id);
    assert_eq!(created["data"]["order_id"], "EV-1");
    assert!(created["data"]["actor"]
        .as_str()
        .unwrap()
        .starts_with("token:"));
    assert!(!created["data"]["actor"]
        .as_str()
        .unwrap()
        .contains(crate::support::TOKEN));
    assert_eq!(created["data"]["order"], order, "the order as created");
    assert_eq!(created["time"], order["created_at"]);

    assert_eq!(
        events[1]["data"]["changes"],
        json!({"total_amount": {"before": "10.50", "after": "11.00"}})
    );
    assert_eq!(events[1]["data"]["order"]["total_amount"], "11.00");
    assert_eq!(events[2]["data"]["from"], "pending");
    assert_eq!(events[2]["data"]["to"], "processing");
    assert_eq!(
        events[3]["data"]["changes"],
        json!({"customer_id": {"before": "C1", "after": "C2"}})
    );
    assert_eq!(events[4]["data"]["from"], "processing");
    assert_eq!(events[4]["data"]["to"], "completed");
    assert_eq!(events[4]["data"]["order"], app.fetch(id).await);

    // Sequence numbers increase along the history; ids are unique.
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["data"]["sequence"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len());

    // The deletion is the last entry, and the history outlives the order.
    let before_delete = app.fetch(id).await;
    assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
    let events = history(&app, id).await;
    assert_eq!(events.len(), 6);
    assert_eq!(events[5]["type"], "order.deleted");
    assert_eq!(events[5]["data"]["order"], before_delete);

    // The feed has the same events in the same order, and pages follow
    // each other.
    let (all, next) = feed(&app, 0, 100, 0).await;
    assert_eq!(all, events);
    assert_eq!(next, sequence(&events[5]));
    let (page, next) = feed(&app, seqs[2], 2, 0).await;
    assert_eq!(page, events[3..5]);
    assert_eq!(next, seqs[4]);
    let (rest, next) = feed(&app, next, 2, 0).await;
    assert_eq!(rest, events[5..]);
    let (none, same) = feed(&app, next, 2, 0).await;
    assert!(none.is_empty());
    assert_eq!(same, next, "nothing new: ask again from the same place");
}

async fn an_idempotent_replay_writes_no_event(app: TestApp) {
    let store = open_store(&app).await;
    let body = json!({"order_id": "EV-K", "customer_id": "C", "total_amount": "1.00"});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = app
            .request(Method::POST, "/commandes")
            .header("content-type", "application/json")
            .header("idempotency-key", "ev-key-1")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_i64().unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(types(&history(&app, ids[0]).await), ["order.created"]);
    assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1);
}

async fn a_refused_change_writes_no_event(app: TestApp) {
    let store = open_store(&app).await;
    let a = app.create("EV-A", "C", "1.00", "completed").await;
    let b = app.create("EV-B", "C", "1.00", "pending").await;
    let (a, b) = (a["id"].as_i64().unwrap(), b["id"].as_i64().unwrap());
    let before = store.events_after(0, 100).await.unwrap();
    assert_eq!(before.len(), 2);

    // 409: an illegal transition, a taken order_id (create and change).
    assert_eq!(put_status(&app, a, "pending", None).await, 409);
    let r = app
        .post(
            "/commandes",
            &json!({"order_id": "EV-A", "customer_id": "C", "total_amount": 1}),
        )
        .await;
    assert_eq!(r.status(), 409);
    let r = app
        .put(&format!("/commandes/{b}"), &json!({"order_id": "EV-A"}))
        .await;
    assert_eq!(r.status(), 409);
    // 412: a stale If-Match, on a change and on a delete.
    assert_eq!(
        put_status(&app, b, "processing", Some("\"stale\"")).await,
        412
    );
    let r = app
        .request(Method::DELETE, &format!("/commandes/{b}"))
        .header("if-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    // 404: nothing to change or delete.
    assert_eq!(app.delete("/commandes/999999").await.status(), 404);
    assert_eq!(put_status(&app, 999_999, "processing", None).await, 404);

    assert_eq!(store.events_after(0, 100).await.unwrap(), before);
    assert_eq!(
        count_rows(&app, "select count(*) from commandes_events").await,
        2
    );
}

async fn histories_of_unknown_and_eventless_orders(app: TestApp) {
    let store = open_store(&app).await;
    assert!(matches!(
        store.history(424_242, 0, 100, &Actor::system()).await,
        Err(StoreError::NotFound)
    ));
    // Demo data (like imports) is a restore, not a change: no events.
    let t = chrono::Utc::now();
    store
        .insert_historical(&[commandes::domain::HistoricalOrder {
            order: commandes::domain::NewOrder {
                order_id: "EV-DEMO".into(),
                customer_id: "C-DEMO".into(),
                status: commandes::domain::Status::Completed,
                total_amount: commandes::domain::Amount::from_cents(100).unwrap(),
            },
            created_at: t,
            updated_at: t,
        }])
        .await
        .unwrap();
    let demo = json(&app, "/commandes/order/EV-DEMO").await;
    let id = demo["id"].as_i64().unwrap();
    assert_eq!(history(&app, id).await, Vec::<Value>::new());
    problem(app.get("/commandes/424242/history").await, 404).await;
    assert!(store.events_after(0, 10).await.unwrap().is_empty());

    // A caller restricted to another customer finds nothing, even once
    // the order is gone (none of its events is that customer's).
    let other = Actor {
        owner: Some("C-OTHER".into()),
        ..Actor::system()
    };
    let mine = Actor {
        owner: Some("C-DEMO".into()),
        ..Actor::system()
    };
    assert!(matches!(
        store.history(id, 0, 100, &other).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.history(id, 0, 100, &mine).await.unwrap(), vec![]);
    let made = app.create("EV-OWN", "C-DEMO", "1.00", "pending").await;
    let made = made["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/commandes/{made}")).await.status(),
        204
    );
    let gone = store.history(made, 0, 100, &mine).await.unwrap();
    assert_eq!(gone.len(), 2);
    assert!(matches!(
        store.history(made, 0, 100, &other).await,
        Err(StoreError::NotFound)
    ));
    // Past its last event, the history of a deleted order is an empty
    // page to its customer, and still absent to the others.
    let last = gone[1].sequence;
    assert_eq!(store.history(made, last, 100, &mine).await.unwrap(), vec![]);
    assert!(matches!(
        store.history(made, last, 100, &other).await,
        Err(StoreError::NotFound)
    ));
}

async fn json(app: &TestApp, path: &str) -> Value {
    crate::support::json(app.get(path).await, 200).await
}

/// What a writer was told happened: the order and the event types its
/// acknowledged change makes.
type Acked = Vec<(i64, &'static str)>;

/// One writer: creates orders and changes them in every way, remembering
/// each acknowledged change.
async fn writer(app: Arc<TestApp>, w: usize, rounds: usize) -> Acked {
    let mut acked = Vec::new();
    for i in 0..rounds {
        let order = app
            .create(&format!("W{w}-{i}"), &format!("C{w}"), "5.00", "pending")
            .await;
        let id = order["id"].as_i64().unwrap();
        acked.push((id, "order.created"));
        match i % 4 {
            0 => {
                let r = app
                    .put(
                        &format!("/commandes/{id}"),
                        &json!({"total_amount": "6.00"}),
                    )
                    .await;
                assert_eq!(r.status(), 200);
                acked.push((id, "order.updated"));
            }
            1 => {
                assert_eq!(put_status(&app, id, "processing", None).await, 200);
                acked.push((id, "order.status_changed"));
                // Refused: writes nothing.
                assert_eq!(put_status(&app, id, "pending", None).await, 409);
            }
            2 => {
                let r = app
                    .put(
                        &format!("/commandes/{id}"),
                        &json!({"total_amount": "7.00", "status": "cancelled"}),
                    )
                    .await;
                assert_eq!(r.status(), 200);
                acked.push((id, "order.updated"));
                acked.push((id, "order.status_changed"));
            }
            _ => {
                assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
                acked.push((id, "order.deleted"));
            }
        }
    }
    acked
}

/// Follows `GET /events` from the start, `limit` at a time (long polling
/// `wait` seconds), until `stop` is set and a read comes back empty; checks
/// each page follows the last.
async fn follow(app: Arc<TestApp>, stop: Arc<AtomicBool>, limit: u32, wait: u32) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let (page, next) = feed(&app, after, limit, wait).await;
        assert!(page.len() <= limit as usize);
        for e in &page {
            assert!(sequence(e) > after, "{} after {after}", sequence(e));
            after = sequence(e);
            seen.push(e.clone());
        }
        assert_eq!(next, after);
        if page.is_empty() {
            if stopping {
                return seen;
            }
            if wait == 0 {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    }
}

async fn the_feed_delivers_every_committed_event_once_in_order(app: TestApp) {
    let app = Arc::new(app);
    let stop = Arc::new(AtomicBool::new(false));
    // One consumer polls, one long-polls.
    let polling = tokio::spawn(follow(app.clone(), stop.clone(), 7, 0));
    let waiting = tokio::spawn(follow(app.clone(), stop.clone(), 50, 1));
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(app.clone(), w, 24)))
        .collect();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    stop.store(true, Ordering::Release);
    let seen = polling.await.unwrap();
    assert_eq!(waiting.await.unwrap(), seen, "both consumers saw the same");

    // Each event once, and exactly the events in the table.
    let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "an event seen twice");
    let stored = count_rows(&app, "select count(*) from commandes_events").await;
    assert_eq!(seen.len() as i64, stored);
    let (all, _) = feed(&app, 0, 1000, 0).await;
    assert_eq!(seen, all, "the followed feed is the whole feed, in order");

    // The events are the acknowledged changes, each order's in the order
    // they were made.
    let mut expected: HashMap<i64, Vec<&str>> = HashMap::new();
    for (id, kind) in &acked {
        expected.entry(*id).or_default().push(kind);
    }
    let mut got: HashMap<i64, Vec<&str>> = HashMap::new();
    for e in &seen {
        got.entry(e["data"]["id"].as_i64().unwrap())
            .or_default()
            .push(e["type"].as_str().unwrap());
    }
    assert_eq!(got, expected);
    assert_eq!(seen.len(), acked.len());
}

/// The crux of the visibility rule: an event inserted by a transaction
/// that commits late (after later events were read) must still be
/// delivered, not skipped because its number would have been lower.
async fn a_late_committer_is_not_skipped(app: TestApp) {
    let first = app.create("LATE-0", "C", "1.00", "pending").await;
    let first_id = first["id"].as_i64().unwrap();

    // A writer that has inserted its change and its event, not committed.
    let (mut client, conn) = tokio_postgres::connect(&app.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "update commandes set total_amount = 2 where id = {first_id};
         insert into commandes_events (event_id, type, time, order_ref, order_id, customer_id, data)
         values (gen_random_uuid(), 'order.updated', now(), {first_id}, 'LATE-0', 'C',
                 '{{\"id\": {first_id}, \"order_id\": \"LATE-0\"}}')"
    ))
    .await
    .unwrap();

    // Later changes commit and are read meanwhile.
    for i in 1..=3 {
        app.create(&format!("LATE-{i}"), "C", "1.00", "pending")
            .await;
    }
    let (page, after) = feed(&app, 0, 100, 0).await;
    let seen: Vec<&str> = page
        .iter()
        .map(|e| e["data"]["order_id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["LATE-0", "LATE-1", "LATE-2", "LATE-3"]);

    // Once it commits, a consumer following `after` gets it.
    tx.commit().await.unwrap();
    drop(client);
    let _ = task.await;
    let (late, _) = feed(&app, after, 100, 0).await;
    assert_eq!(late.len(), 1, "the late event was skipped");
    assert_eq!(late[0]["data"]["order_id"], "LATE-0");
    assert!(sequence(&late[0]) > after);
    let h = history(&app, first_id).await;
    assert_eq!(types(&h), ["order.created", "order.updated"]);
}

async fn retention_prunes_old_events_in_batches(app: TestApp) {
    let store = open_store(&app).await;
    for i in 0..25 {
        app.create(&format!("RET-{i}"), "C", "1.00", "pending")
            .await;
    }
    // Make the first 20 events 40 days old.
    let old = match app.backend {
        Backend::Sqlite => {
            "update commandes_events set time = '2000-01-01T00:00:00.000000Z'
             where sequence in (select sequence from commandes_events order by sequence limit 20)"
        }
        Backend::Postgres | Backend::Pooler => {
            // Number them first (the app's sequencer may not have run yet).
            store.events_after(0, 100).await.unwrap();
            "update commandes_events set time = now() - interval '40 days'
             where sequence in (select sequence from commandes_events order by sequence limit 20)"
        }
    };
    assert_eq!(exec_sql(&app, old).await, 20);
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let mut batches = Vec::new();
    loop {
        let n = store.purge_events(cutoff, None, 7).await.unwrap();
        batches.push(n);
        if n < 7 {
            break;
        }
    }
    assert_eq!(batches, [7, 7, 6]);
    let left = store.events_after(0, 100).await.unwrap();
    assert_eq!(left.len(), 5);
    assert_eq!(left[0].event.order_id, "RET-20");
    // The numbering goes on above what was pruned.
    let last = left[4].sequence;
    app.create("RET-NEW", "C", "1.00", "pending").await;
    let new = store.events_after(last, 10).await.unwrap();
    assert_eq!(new.len(), 1);
    assert!(new[0].sequence > last);
}

async fn the_feed_and_histories_check_their_input(app: TestApp) {
    for (query, fields) in [
        ("x=1", vec!["x"]),
        ("after=-1", vec!["after"]),
        ("after=abc", vec!["after"]),
        ("after=", vec!["after"]),
        ("after=99999999999999999999", vec!["after"]),
        ("limit=0", vec!["limit"]),
        ("limit=1001", vec!["limit"]),
        ("wait=31", vec!["wait"]),
        ("wait=1.5", vec!["wait"]),
        ("after=1&after=2", vec!["after"]),
        ("limit=x&wait=-1&cursor=1", vec!["cursor", "limit", "wait"]),
    ] {
        let body = problem(app.get(&format!("/events?{query}")).await, 422).await;
        assert_eq!(error_fields(&body), fields, "{query}");
    }
    let (events, next) = feed(&app, 0, 1000, 0).await;
    assert!(events.is_empty());
    assert_eq!(next, 0);
    let r = app.anonymous(Method::GET, "/events").send().await.unwrap();
    problem(r, 401).await;

    let body = problem(app.get("/commandes/abc/history").await, 422).await;
    assert_eq!(error_fields(&body), ["id"]);
    problem(app.get("/commandes/0/history").await, 404).await;
    problem(app.get("/commandes/77/history").await, 404).await;
    let r = app
        .anonymous(Method::GET, "/commandes/1/history")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
    let order = app.create("EV-Q", "C", "1.00", "pending").await;
    let body = problem(
        app.get(&format!("/commandes/{}/history?x=1", order["id"]))
            .await,
        422,
    )
    .await;
    assert_eq!(error_fields(&body), ["x"]);
}

/// 250 events on one order, interleaved with another order's: every page
/// is bounded, and following `Link` gives each event once, in order, with
/// any `limit`.
async fn a_history_is_paged_like_the_feed(app: TestApp) {
    let x = app.create("PAGE-X", "C", "1.00", "pending").await["id"]
        .as_i64()
        .unwrap();
    let y = app.create("PAGE-Y", "C", "1.00", "pending").await["id"]
        .as_i64()
        .unwrap();
    for i in 2..=250 {
        let r = app
            .put(
                &format!("/commandes/{x}"),
                &json!({"total_amount": format!("{i}.00")}),
            )
            .await;
        assert_eq!(r.status(), 200);
        if i % 2 == 0 {
            let r = app
                .put(
                    &format!("/commandes/{y}"),
                    &json!({"total_amount": format!("{i}.00")}),
                )
                .await;
            assert_eq!(r.status(), 200);
        }
    }
    let (everything, _) = feed(&app, 0, 1000, 0).await;
    let of = |id: i64| -> Vec<Value> {
        everything
            .iter()
            .filter(|e| e["data"]["id"] == id)
            .cloned()
            .collect()
    };
    let expected = of(x);
    assert_eq!(expected.len(), 250);

    // The first page by default: 100 events, and where to go next.
    let r = app.get(&format!("/commandes/{x}/history")).await;
    let link = r.headers()["link"].to_str().unwrap().to_string();
    assert_eq!(
        link,
        format!(
            "</commandes/{x}/history?after={}&limit=100>; rel=\"next\"",
            sequence(&expected[99])
        )
    );
    let page = crate::support::json(r, 200).await;
    assert_eq!(page.as_array().unwrap(), &expected[..100]);

    // Every limit walks the whole history, each event once, in order.
    for limit in [1, 7, 100, 250, 1000] {
        let walked = history_pages(&app, crate::support::TOKEN, x, limit).await;
        assert_eq!(walked.len(), 250, "limit {limit}");
        assert_eq!(walked, expected, "limit {limit}");
    }
    // `after` may be any sequence number, another order's included.
    let y_events = of(y);
    let middle = sequence(&y_events[y_events.len() / 2]);
    let above: Vec<Value> = expected
        .iter()
        .filter(|e| sequence(e) > middle)
        .cloned()
        .collect();
    assert!(!above.is_empty() && above.len() < 250);
    assert_eq!(
        app.list(&format!("/commandes/{x}/history?after={middle}&limit=1000"))
            .await,
        above
    );
    // Past the end: an empty page, without a Link.
    let last = sequence(expected.last().unwrap());
    let r = app
        .get(&format!("/commandes/{x}/history?after={last}"))
        .await;
    assert!(r.headers().get("link").is_none());
    assert_eq!(crate::support::json(r, 200).await, json!([]));
    // A history shorter than a page looks as it always did: no Link.
    let z = app.create("PAGE-Z", "C", "1.00", "pending").await["id"]
        .as_i64()
        .unwrap();
    let r = app.get(&format!("/commandes/{z}/history")).await;
    assert!(r.headers().get("link").is_none());
    let short = crate::support::json(r, 200).await;
    assert_eq!(types(short.as_array().unwrap()), ["order.created"]);

    // The feed's bounds; no long polling here.
    for (query, fields) in [
        ("wait=1", vec!["wait"]),
        ("limit=0", vec!["limit"]),
        ("limit=1001", vec!["limit"]),
        ("after=-1", vec!["after"]),
        ("after=1&after=2&cursor=x", vec!["after", "cursor"]),
    ] {
        let body = problem(
            app.get(&format!("/commandes/{x}/history?{query}")).await,
            422,
        )
        .await;
        assert_eq!(error_fields(&body), fields, "{query}");
    }
}

async fn a_long_poll_answers_when_an_event_arrives(app: TestApp) {
    let app = Arc::new(app);
    app.create("LP-0", "C", "1.00", "pending").await;
    let (_, after) = feed(&app, 0, 10, 0).await;
    // Nothing new: an empty page once the wait is over.
    let (none, same) = feed(&app, after, 10, 1).await;
    assert!(none.is_empty());
    assert_eq!(same, after);

    // An event arriving during the wait is returned at once (well before
    // the 20 seconds: an empty page would fail the test).
    let poll = tokio::spawn({
        let app = app.clone();
        async move { feed(&app, after, 10, 20).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.create("LP-1", "C", "1.00", "pending").await;
    let (events, next) = poll.await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"]["order_id"], "LP-1");
    assert_eq!(next, sequence(&events[0]));

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("commandes_events_written_total{type=\"order.created\"}"),
        "{metrics}"
    );
}

/// A long poll must not hold the shutdown for its whole wait: it answers
/// (empty) as soon as the server starts stopping. Were it held, the
/// server's shutdown deadline (5 s in tests, under the 30 s wait) would cut
/// the connection instead of answering.
async fn shutdown_ends_long_polls(app: TestApp) {
    let url = app.url("/events?wait=30");
    let poll = tokio::spawn(
        app.client
            .get(url)
            .bearer_auth(crate::support::TOKEN)
            .send(),
    );
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    app.stop().await;
    let r = poll
        .await
        .unwrap()
        .expect("an answer, not a cut connection");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!([]));
}

/// Long polls past `events.max_waiters` (2 here) are refused at once with
/// 503 and `Retry-After`; reads that do not wait, and other requests, are
/// not counted; a slot freed is taken again.
async fn long_polls_past_the_cap_are_503(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.events.max_waiters = 2).await else {
        return;
    };
    let app = Arc::new(app);
    let order = app.create("W-0", "C", "1.00", "pending").await;
    let (_, after) = feed(&app, 0, 10, 0).await;
    // Three long polls at once: two wait their 3 s, one is refused.
    let polls: Vec<_> = (0..3)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let r = app.get(&format!("/events?after={after}&wait=3")).await;
                (r, t.elapsed())
            })
        })
        .collect();
    // Meanwhile reads that do not wait, and the rest of the API, answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(feed(&app, 0, 10, 0).await.0.len(), 1);
    app.fetch(order["id"].as_i64().unwrap()).await;
    let mut refused = Vec::new();
    for p in polls {
        let (r, took) = p.await.unwrap();
        match r.status().as_u16() {
            200 => assert!(r.json::<Value>().await.unwrap() == json!([])),
            503 => {
                assert!(took < std::time::Duration::from_secs(2), "refused at once");
                assert!(r.headers().contains_key("retry-after"));
                refused.push(problem(r, 503).await);
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["detail"].as_str().unwrap().contains("long poll"),
        "{}",
        refused[0]
    );
    // The slots are free again.
    assert!(feed(&app, after, 10, 1).await.0.is_empty());
}

/// While another sequencer run holds its lock (here a transaction of the
/// test's own), feed reads wait for it without holding a pooled
/// connection: with a pool of 2 and three such reads, an order is still
/// read within a second (it used to wait the reads' 2 s out).
async fn feed_reads_waiting_for_the_sequencer_hold_no_connection() {
    let Some(app) = TestApp::spawn_with(Backend::Postgres, |s| s.database.pool_size = 2).await
    else {
        return;
    };
    let app = Arc::new(app);
    let order = app.create("SEQ-0", "C", "1.00", "pending").await;
    feed(&app, 0, 10, 0).await;
    let (mut client, conn) = tokio_postgres::connect(&app.direct_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("select pg_advisory_xact_lock(7165065848790871668)")
        .await
        .unwrap();
    // An event no run can number while the lock is held.
    app.create("SEQ-1", "C", "1.00", "pending").await;
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { feed(&app, 0, 10, 0).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    app.fetch(order["id"].as_i64().unwrap()).await;
    let took = t.elapsed();
    for r in readers {
        r.await.unwrap();
    }
    tx.commit().await.unwrap();
    drop(client);
    let _ = task.await;
    assert!(
        took < std::time::Duration::from_secs(1),
        "a read took {took:?} while feed reads waited for the sequencer"
    );
    let (events, _) = feed(&app, 0, 10, 0).await;
    assert_eq!(events.len(), 2, "numbered once the lock is free");
}

/// The background task prunes by itself (every second here).
async fn old_events_are_pruned_in_the_background(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.events.purge_interval_secs = 1).await else {
        return;
    };
    for i in 0..3 {
        app.create(&format!("BG-{i}"), "C", "1.00", "pending").await;
    }
    feed(&app, 0, 10, 0).await; // numbered (PostgreSQL)
    let old = match backend {
        Backend::Sqlite => {
            "update commandes_events set time = '2000-01-01T00:00:00.000000Z'
             where order_id in ('BG-0', 'BG-1')"
        }
        Backend::Postgres | Backend::Pooler => {
            "update commandes_events set time = now() - interval '31 days'
             where order_id in ('BG-0', 'BG-1')"
        }
    };
    assert_eq!(exec_sql(&app, old).await, 2);
    let mut left = 3;
    for _ in 0..100 {
        left = count_rows(&app, "select count(*) from commandes_events").await;
        if left == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "the old events were not pruned");
    let (events, _) = feed(&app, 0, 10, 0).await;
    assert_eq!(events[0]["data"]["order_id"], "BG-2");
}

mod background {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_old_events_are_pruned() {
        super::old_events_are_pruned_in_the_background(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_old_events_are_pruned() {
        super::old_events_are_pruned_in_the_background(Backend::Postgres).await;
    }
}

mod waiters {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_long_polls_past_the_cap_are_503() {
        super::long_polls_past_the_cap_are_503(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_long_polls_past_the_cap_are_503() {
        super::long_polls_past_the_cap_are_503(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_feed_reads_waiting_for_the_sequencer_hold_no_connection() {
        super::feed_reads_waiting_for_the_sequencer_hold_no_connection().await;
    }
}

crate::both_backends!(
    a_history_is_paged_like_the_feed,
    the_feed_and_histories_check_their_input,
    a_long_poll_answers_when_an_event_arrives,
    shutdown_ends_long_polls,
    each_change_makes_its_events,
    an_idempotent_replay_writes_no_event,
    a_refused_change_writes_no_event,
    histories_of_unknown_and_eventless_orders,
    the_feed_delivers_every_committed_event_once_in_order,
    retention_prunes_old_events_in_batches,
);

mod postgres_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_committer_is_not_skipped() {
        if let Some(app) = crate::support::TestApp::spawn(crate::support::Backend::Postgres).await {
            super::a_late_committer_is_not_skipped(app).await;
        }
    }
}
