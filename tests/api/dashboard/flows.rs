//! The dashboard in a real headless Chromium, on SQLite and PostgreSQL:
//! sign in, filter, page, open an order, an illegal and a legal transition,
//! a 422 under its field, a lost race (412), create and delete, a read-only
//! token, a 401, the phone width, and a second client's change shown
//! within 2 s without a reload. One browser per backend runs the whole
//! story, which keeps the run short (Chromium's start is most of it).
//!
//! The service is the built binary, run as a child process (one per
//! backend, shared by every flow of the story): the one cargo builds for
//! the tests, or the one `COMMANDES_TEST_BINARY` names: point it at
//! `target/release/commandes` to drive the release build (CI does not,
//! as a fresh fat-LTO build would add about a quarter of an hour; see
//! docs/contributing.md). Screenshots go to `target/dashboard-screenshots/`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use fantoccini::key::Key;

use super::browser::Browser;
use crate::jwt;
use crate::support::{Backend, TestApp, TOKEN};

const READ_TOKEN: &str = "read-only-token-0123456789";

async fn story(backend: Backend, label: &str) {
    let Some(app) = TestApp::spawn_binary(
        backend,
        &[
            ("COMMANDES_READ_TOKENS", READ_TOKEN),
            // JWTs of Supabase users, each restricted to the customer in
            // `sub`.
            ("COMMANDES_JWT_ISSUER", jwt::ISSUER),
            ("COMMANDES_JWT_SECRET", jwt::SECRET),
            ("COMMANDES_CUSTOMER_CLAIM", "sub"),
        ],
    )
    .await
    else {
        return;
    };
    let Some(browser) = Browser::start(label).await else {
        return;
    };
    let started = Instant::now();
    // 25 orders: two customers, all four statuses, amounts 10.00 … 250.00.
    for i in 1..=25 {
        let status = ["pending", "processing", "completed", "cancelled"][i % 4];
        let customer = if i % 2 == 0 { "CLIENT-A" } else { "CLIENT-B" };
        app.create(
            &format!("D{i:03}"),
            customer,
            &format!("{}.00", i * 10),
            status,
        )
        .await;
    }

    offline_and_signed_in(&app, &browser).await;
    orders_filter_and_page(&app, &browser).await;
    let id = order_page(&app, &browser).await;
    lost_race(&app, &browser, id).await;
    create_and_delete(&app, &browser).await;
    phone_width(&app, &browser).await;
    live_change(&app, &browser, id).await;
    customer_scoped(&app, &browser).await;
    read_only_and_401(&app, &browser).await;

    let severe: Vec<Value> = browser
        .console()
        .await
        .into_iter()
        .filter(|e| e["level"] == "SEVERE" && !expected_failure(e))
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:#?}");
    eprintln!("{label}: the browser story took {:?}", started.elapsed());
    browser.close().await;
    // Every sign-in learned its permissions without a failing request (no
    // 415 from a write probe), and nothing was a server error.
    let logs = app.stop_binary().await;
    let requests: Vec<&str> = logs.lines().filter(|l| l.contains("\"route\"")).collect();
    assert!(requests.len() > 50, "the request log: {logs}");
    for line in requests {
        assert!(
            !line.contains("\"status\":415") && !line.contains("\"status\":5"),
            "{line}"
        );
    }
}

/// The story provokes 4xx answers on purpose (sign-in with a bad token, a
/// 422, a 409, a 412): the console
/// reports each failed fetch. Anything else (a script error, a CSP
/// violation, an asset that did not load) fails the test.
fn expected_failure(entry: &Value) -> bool {
    let message = entry["message"].as_str().unwrap_or_default();
    message.contains("the server responded with a status of 4")
        && ["/commandes", "/stats", "/events", "/whoami"]
            .iter()
            .any(|p| message.contains(p))
}

async fn offline_and_signed_in(app: &TestApp, browser: &Browser) {
    // The browser cannot reach anything but the service: checked from a
    // page without the dashboard's policy, so only the resolver blocks it.
    browser.goto(&app.url("/health/live")).await;
    let outside = browser
        .js("return fetch('http://example.com/', {mode: 'no-cors'}).then(() => 'reached', () => 'blocked')")
        .await;
    assert_eq!(outside, "blocked", "the browser reached outside");
    browser.console().await;

    browser.goto(&app.url("/dashboard")).await;
    browser.wait("#signin").await;
    // Every resource came from the service, and loaded.
    let resources = browser
        .js("return performance.getEntriesByType('resource')
               .concat(performance.getEntriesByType('navigation'))
               .map(r => ({name: r.name, status: r.responseStatus, bytes: r.transferSize}))")
        .await;
    let resources = resources.as_array().expect("resources");
    // What a first visit transfers (bodies and headers; nothing cached).
    let bytes: u64 = resources.iter().filter_map(|r| r["bytes"].as_u64()).sum();
    eprintln!("first load: {} files, {bytes} bytes", resources.len());
    assert!(bytes < 80 * 1024, "the dashboard grew heavy: {bytes} bytes");
    assert!(resources.len() >= 8, "{resources:?}");
    for r in resources {
        let name = r["name"].as_str().unwrap();
        assert!(name.starts_with(&app.base), "outside request: {name}");
        assert_eq!(r["status"], 200, "{name}");
    }
    // The policy holds: the page itself may not talk to another origin.
    let elsewhere = browser
        .js("return fetch('http://127.0.0.2:9/').then(() => 'reached', () => 'blocked')")
        .await;
    assert_eq!(elsewhere, "blocked");
    let console = browser.console().await;
    assert!(
        console.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("Content Security Policy"))),
        "the policy did not stop the request: {console:?}"
    );
    // A wrong token is refused on the sign-in page.
    browser.fill("#token", "not-a-token").await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_text("#signin-error", "refused").await;
    browser.screenshot("signin").await;

    browser.fill("#token", TOKEN).await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_text(".stat.total .count", "25").await;
    browser.wait_text(".stat.pending .count", "6").await;
    browser.wait_text("#access", "read and write").await;
    chart(browser).await;
    browser.screenshot("overview").await;
}

/// The chart draws a bar per day of the last 30 from the time series.
/// Needs `GET /stats/timeseries` (branch `stream`); until it is merged the
/// overview says the series is unavailable.
async fn chart(browser: &Browser) {
    browser.wait("#chart svg, #chart .error").await;
    if browser.count("#chart .error").await > 0 {
        eprintln!("no time series on this service: the chart is not checked");
        return;
    }
    assert_eq!(browser.count("#chart svg rect.bar").await, 30);
}

async fn orders_filter_and_page(app: &TestApp, browser: &Browser) {
    browser.click("nav a[href='#/orders']").await;
    browser.wait_text("#page-info", "20 orders").await;
    assert_eq!(browser.count("#orders tbody tr").await, 20);
    browser.screenshot("orders").await;
    // Page 2 through the Link header, and back.
    browser.click("#next").await;
    browser.wait_text("#page-info", "Page 2 · 5 orders").await;
    assert!(
        browser
            .js("return document.querySelector('#next').disabled")
            .await
            == true
    );
    browser.click("#prev").await;
    browser.wait_text("#page-info", "Page 1 · 20 orders").await;

    // Filters: status, customer, amount range, dates, sort.
    browser.select("#f-status", "completed").await;
    browser.fill("#f-customer_id", "CLIENT-A").await;
    browser.fill("#f-min_amount", "50").await;
    browser.fill("#f-max_amount", "250").await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    browser
        .js(&format!(
            "document.querySelector('#f-created_from').value = '{today}'"
        ))
        .await;
    browser.select("#f-sort", "total_amount").await;
    browser.click("#filters button[type=submit]").await;
    // completed = i % 4 == 2, CLIENT-A = even: 2, 6, 10, 14, 18, 22 (×10);
    // from 50: 60, 100, 140, 180, 220.
    browser.wait_text("#page-info", "5 orders").await;
    let amounts = browser
        .js("return [...document.querySelectorAll('#orders tbody tr td.num')].map(td => td.textContent)")
        .await;
    assert_eq!(
        amounts,
        json!(["60.00", "100.00", "140.00", "180.00", "220.00"])
    );
    // A bad filter value: the service's 422, next to the field.
    browser.fill("#f-min_amount", "abc").await;
    browser.click("#filters button[type=submit]").await;
    browser
        .wait_until(
            "the 422 under min_amount",
            "return document.querySelector('#f-min_amount-error').textContent.length > 0",
        )
        .await;
    assert_eq!(
        browser
            .js("return document.querySelector('#f-min_amount').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    // order_id search.
    browser.click("#clear").await;
    browser.wait_text("#page-info", "Page 1 · 20 orders").await;
    browser.fill("#f-order_id", "D007").await;
    browser.click("#filters button[type=submit]").await;
    browser.wait_text("#page-info", "order_id = D007").await;
    assert_eq!(browser.count("#orders tbody tr").await, 1);
    let _ = app;
}

/// Opens D004 (pending, CLIENT-A, 40.00): an illegal and a legal
/// transition, and a 422 under its field.
async fn order_page(app: &TestApp, browser: &Browser) -> i64 {
    let order: Value = app.get("/commandes/order/D004").await.json().await.unwrap();
    let id = order["id"].as_i64().unwrap();
    browser.fill("#f-order_id", "D004").await;
    browser.click("#filters button[type=submit]").await;
    browser.wait_text("#page-info", "order_id = D004").await;
    browser.click("#orders tbody a").await;
    browser.wait_text("#fields", "CLIENT-A").await;
    // Exactly the allowed transitions.
    browser.wait("#transitions").await;
    let moves = browser
        .js("return [...document.querySelectorAll('#transitions button')].map(b => b.dataset.to)")
        .await;
    assert_eq!(moves, json!(["processing", "cancelled"]));
    // Illegal: pending → completed, refused (409) with its reason under the field.
    browser.select("#edit-status", "completed").await;
    browser.click("#edit button[type=submit]").await;
    browser
        .wait_text("#edit-status-error", "not allowed from pending")
        .await;
    // A 422: three decimals, shown under the amount.
    browser.select("#edit-status", "pending").await;
    browser.fill("#edit-total_amount", "1.234").await;
    browser.click("#edit button[type=submit]").await;
    browser
        .wait_text("#edit-total_amount-error", "two decimal")
        .await;
    assert_eq!(
        browser
            .js("return document.querySelector('#edit-total_amount').getAttribute('aria-invalid')")
            .await,
        "true"
    );
    browser.screenshot("order-422").await;
    // Legal: pending → processing, with If-Match.
    browser
        .click("#transitions button[data-to=processing]")
        .await;
    browser.wait_text("#summary h1", "processing").await;
    let moves = browser
        .js("return [...document.querySelectorAll('#transitions button')].map(b => b.dataset.to)")
        .await;
    assert_eq!(moves, json!(["completed", "cancelled"]));
    browser.wait_text("#history", "pending → processing").await;
    let now: Value = app
        .get(&format!("/commandes/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["status"], "processing");
    browser.screenshot("order").await;
    id
}

/// A second client changes the open order: the page shows it within 2 s,
/// without a reload.
async fn live_change(app: &TestApp, browser: &Browser, id: i64) {
    browser
        .goto(&app.url(&format!("/dashboard#/orders/{id}")))
        .await;
    browser.wait_text("#live-state", "live").await;
    browser.js("window.__sameDocument = true").await;
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"customer_id": "CLIENT-LIVE"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    browser
        .wait_text_within("#fields", "CLIENT-LIVE", Duration::from_secs(2))
        .await;
    browser
        .wait_text("#notice", "Changed by someone else")
        .await;
    assert_eq!(
        browser.js("return window.__sameDocument === true").await,
        true
    );

    // The orders table: a changed row is updated in place and marked, a
    // new order is announced.
    browser.goto(&app.url("/dashboard#/orders")).await;
    browser.wait_text("#page-info", "Page 1 · 20 orders").await;
    assert_eq!(browser.count("#orders tr.changed").await, 0);
    let row: Value = app.get("/commandes/order/D024").await.json().await.unwrap();
    let row_id = row["id"].as_i64().unwrap();
    let r = app
        .put(
            &format!("/commandes/{row_id}"),
            &json!({"total_amount": "241.00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let css = format!("#orders tr[data-id='{row_id}']");
    browser
        .wait_text_within(&css, "241.00", Duration::from_secs(2))
        .await;
    assert_eq!(browser.count(&format!("{css}.changed .marker")).await, 1);
    assert_eq!(browser.count("#orders tr.changed").await, 1);
    app.create("LIVE-1", "CLIENT-B", "5.00", "pending").await;
    browser
        .wait_text_within("#news", "1 new order", Duration::from_secs(2))
        .await;
    browser.screenshot("orders-live").await;

    // The overview counts the changes and redraws its figures.
    browser.click("nav a[href='#/']").await;
    browser.wait_text(".stat.total .count", "26").await;
    app.create("LIVE-2", "CLIENT-B", "5.00", "pending").await;
    browser
        .wait_text_within("#live-count", "1", Duration::from_secs(2))
        .await;
    browser.wait_text(".stat.total .count", "27").await;
    assert_eq!(
        browser.js("return window.__sameDocument === true").await,
        true
    );
}

/// The page has edits in progress when someone else changes the order:
/// saving is a 412 that says what changed and offers to reload.
async fn lost_race(app: &TestApp, browser: &Browser, id: i64) {
    browser.fill("#edit-total_amount", "99.00").await;
    let r = app
        .put(
            &format!("/commandes/{id}"),
            &json!({"total_amount": "77.00"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // Give the page time to hear of it (it keeps the edits).
    tokio::time::sleep(Duration::from_millis(300)).await;
    browser.click("#edit button[type=submit]").await;
    browser
        .wait_text("#notice", "Someone else changed this order (412)")
        .await;
    browser
        .wait_text("#race-diff", "Amount: was 40.00, now 77.00")
        .await;
    browser.screenshot("order-412").await;
    browser.click("#reload").await;
    browser.wait_text("#fields", "77.00").await;
    let now: Value = app
        .get(&format!("/commandes/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        now["total_amount"], "77.00",
        "the stale edit was not written"
    );
}

async fn create_and_delete(app: &TestApp, browser: &Browser) {
    browser.click("nav a[href='#/new']").await;
    browser.wait("#create").await;
    // Refusals, each under its field: a taken order id (409), a bad amount (422).
    browser.fill("#new-order_id", "D002").await;
    browser.fill("#new-customer_id", "CLIENT-NEW").await;
    browser.fill("#new-total_amount", "12.345").await;
    browser.click("#create button[type=submit]").await;
    browser
        .wait_text("#new-total_amount-error", "two decimal")
        .await;
    browser.fill("#new-total_amount", "12.34").await;
    browser.click("#create button[type=submit]").await;
    browser
        .wait_text("#new-order_id-error", "already taken")
        .await;
    browser.screenshot("create-409").await;
    browser.fill("#new-order_id", "NEW-1").await;
    // Text from clients stays text: markup in a field is shown, not run.
    let markup = "<img src=x onerror=window.__xss=1>";
    browser.fill("#new-customer_id", markup).await;
    browser.click("#create button[type=submit]").await;
    browser.wait_text("#summary h1", "NEW-1").await;
    browser.wait_text("#fields", markup).await;
    assert_eq!(browser.js("return window.__xss === undefined").await, true);
    assert_eq!(browser.count("#fields img").await, 0);
    let created: Value = app
        .get("/commandes/order/NEW-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["total_amount"], "12.34");
    assert_eq!(created["customer_id"], markup);
    // Delete asks first, by keyboard too: Enter on the button opens the
    // dialog with the harmless choice focused; Escape keeps the order.
    let delete = browser.wait("#delete").await;
    delete
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    browser.wait("dialog#confirm-delete[open]").await;
    browser.screenshot("delete-confirm").await;
    assert_eq!(browser.js("return document.activeElement.id").await, "keep");
    browser
        .client
        .active_element()
        .await
        .unwrap()
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .unwrap();
    browser
        .wait_until(
            "the dialog closed",
            "return !document.querySelector('dialog#confirm-delete')",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.get("/commandes/order/NEW-1").await.status(), 200);
    browser.click("#delete").await;
    browser.wait("dialog#confirm-delete[open]").await;
    browser.click("#confirm").await;
    browser.wait("#filters").await;
    assert_eq!(app.get("/commandes/order/NEW-1").await.status(), 404);
}

async fn phone_width(app: &TestApp, browser: &Browser) {
    // The chart is drawn again for its new width when the window narrows.
    browser.goto(&app.url("/dashboard#/")).await;
    browser.wait("#chart svg").await;
    let wide = browser
        .js("return Number(document.querySelector('#chart svg').getAttribute('width'))")
        .await;
    browser.client.set_window_size(390, 844).await.unwrap();
    browser
        .wait_until(
            "the chart follows the window's width",
            &format!(
                "const s = document.querySelector('#chart svg'); \
                 return !!s && Number(s.getAttribute('width')) < {wide} - 200"
            ),
        )
        .await;
    // A message closes with Escape (and by itself: its timer is the same
    // `dismiss`).
    browser
        .js("return import('/dashboard/dom.js').then(m => { m.notify('A message', 'error'); return true; })")
        .await;
    browser.wait_text("#toast", "A message").await;
    browser
        .js("document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'})); return true")
        .await;
    browser
        .wait_until(
            "Escape closes the message",
            "return document.getElementById('toast').childElementCount === 0",
        )
        .await;
    browser.goto(&app.url("/dashboard#/orders")).await;
    browser.wait_text("#page-info", "orders").await;
    // Nothing but the table (which scrolls in its own box) is wider than
    // the screen.
    let overflow = browser
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the page scrolls sideways by {overflow}px"
    );
    browser.screenshot("orders-phone").await;
    browser.goto(&app.url("/dashboard#/")).await;
    browser.wait(".stat.total").await;
    browser.screenshot("overview-phone").await;
    // Every control has a label a screen reader reads.
    let unlabelled = browser
        .js("return [...document.querySelectorAll('input, select')].filter(e => !e.labels.length).map(e => e.id)")
        .await;
    assert_eq!(unlabelled, json!([]));
    browser.client.set_window_size(1280, 900).await.unwrap();
}

/// A customer's JWT: its own orders only, refreshed instead of streamed
/// (the stream is 403 for it).
async fn customer_scoped(app: &TestApp, browser: &Browser) {
    browser.click("#signout").await;
    browser.wait("#signin").await;
    let token = jwt::hs256(&jwt::claims("authenticated", "CLIENT-A"));
    browser.fill("#token", &token).await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_text("#access", "own orders").await;
    browser.wait_text("#live-state", "refreshing").await;
    let mine: Vec<Value> = app
        .get("/commandes?customer_id=CLIENT-A")
        .await
        .json()
        .await
        .unwrap();
    browser
        .wait_text(".stat.total .count", &mine.len().to_string())
        .await;
    browser.click("nav a[href='#/orders']").await;
    browser
        .wait_text("#page-info", &format!("{} orders", mine.len()))
        .await;
    let customers = browser
        .js("return [...new Set([...document.querySelectorAll('#orders tbody tr td:nth-child(2)')].map(td => td.textContent))]")
        .await;
    assert_eq!(customers, json!(["CLIENT-A"]));
    browser.screenshot("orders-customer").await;
}

async fn read_only_and_401(app: &TestApp, browser: &Browser) {
    browser.click("#signout").await;
    browser.wait("#signin").await;
    browser.fill("#token", READ_TOKEN).await;
    browser.click("#signin button[type=submit]").await;
    browser.wait_text("#access", "read only").await;
    assert_eq!(browser.count("nav a[href='#/new']").await, 0);
    let order: Value = app.get("/commandes/order/D003").await.json().await.unwrap();
    browser
        .goto(&app.url(&format!("/dashboard#/orders/{}", order["id"])))
        .await;
    browser.wait_text("#actions", "Read-only token").await;
    assert_eq!(browser.count("#edit").await, 0);
    assert_eq!(browser.count("#transitions").await, 0);
    assert_eq!(browser.count("#delete").await, 0);
    browser.screenshot("order-read-only").await;
    // A token the service no longer takes: back to the sign-in, saying why.
    browser
        .js("sessionStorage.setItem('commandes.session', JSON.stringify({token: 'revoked', canWrite: true, scoped: false}))")
        .await;
    browser.goto(&app.url("/dashboard#/orders")).await;
    browser.wait_text("#signin-error", "401").await;
    let anything = app
        .anonymous(Method::GET, "/stats")
        .bearer_auth("revoked")
        .send()
        .await
        .unwrap();
    assert_eq!(anything.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_on_sqlite() {
    story(Backend::Sqlite, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_on_postgres() {
    story(Backend::Postgres, "postgres").await;
}
