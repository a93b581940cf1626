//! `GET /events/stream`: the feed as server-sent events. In order with
//! their ids and exactly the feed's items; resumed by `Last-Event-ID` (or
//! `after`) across a reconnect and a restart of the server, without a gap
//! or a repeat; through another replica on one PostgreSQL; capped; ended
//! promptly by a shutdown; kept alive by heartbeats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use crate::support::{error_fields, problem, Backend, TestApp};

/// What a stream sent: an event, or a comment line.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Event { id: i64, kind: String, data: Value },
    Comment(String),
}

/// An open stream, read block by block (a block ends with a blank line).
struct Stream {
    response: reqwest::Response,
    buffer: String,
    /// The last `retry:` hint received.
    retry: Option<u64>,
    /// The last `id:` received (of an event, or alone: a position).
    last_id: Option<i64>,
}

impl Stream {
    /// Opens `path` with the test token and `headers`; it must answer 200
    /// with `text/event-stream`.
    async fn open(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Stream {
        let r = Self::request(app, path, headers).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        assert_eq!(r.headers()["cache-control"], "no-cache");
        Stream {
            response: r,
            buffer: String::new(),
            retry: None,
            last_id: None,
        }
    }

    async fn request(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = app.request(Method::GET, path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request sent")
    }

    /// The next block; `None` when the server ended the stream. Panics if
    /// nothing comes within `within`.
    async fn next(&mut self, within: Duration) -> Option<Item> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let item = parse(block.trim_end(), &mut self.retry);
                if let Some(id) = id_of(block.trim_end()) {
                    self.last_id = Some(id);
                }
                return Some(item);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk = tokio::time::timeout(left, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("nothing within {within:?}; have {:?}", self.buffer))
                .expect("the stream reads cleanly");
            match chunk {
                Some(bytes) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                None => {
                    assert!(self.buffer.is_empty(), "a cut block: {:?}", self.buffer);
                    return None;
                }
            }
        }
    }

    /// The next `n` events (comments skipped).
    async fn events(&mut self, n: usize) -> Vec<(i64, String, Value)> {
        let mut events = Vec::new();
        while events.len() < n {
            match self.next(Duration::from_secs(10)).await {
                Some(Item::Event { id, kind, data }) => events.push((id, kind, data)),
                Some(Item::Comment(_)) => {}
                None => panic!("the stream ended after {events:?}"),
            }
        }
        events
    }

    /// Asserts that no event comes for `quiet` (comments may).
    async fn no_event_for(&mut self, quiet: Duration) {
        let until = Instant::now() + quiet;
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.next(quiet + Duration::from_secs(60))).await {
                Err(_) => return,
                Ok(Some(Item::Comment(_))) => {}
                Ok(other) => panic!("expected nothing, got {other:?}"),
            }
        }
    }
}

/// A block: an event, or the text of its comment lines (a block without
/// `data:` may also hold `retry:`, put in `retry`, and `id:`).
fn parse(block: &str, retry: &mut Option<u64>) -> Item {
    let comment: Vec<&str> = block
        .lines()
        .filter_map(|l| l.strip_prefix(':'))
        .map(str::trim)
        .collect();
    if !block.lines().any(|l| l.starts_with("data:")) {
        for line in block.lines().filter(|l| !l.starts_with(':')) {
            match line.split_once(": ") {
                Some(("retry", ms)) => *retry = Some(ms.parse().unwrap()),
                Some(("id", id)) => assert!(id.parse::<i64>().is_ok(), "{block}"),
                _ => panic!("unexpected line {line:?} in {block}"),
            }
        }
        return Item::Comment(comment.join("\n"));
    }
    let (mut id, mut kind, mut data) = (None, None, None);
    for line in block.lines() {
        let (field, value) = line.split_once(": ").unwrap_or_else(|| panic!("{line:?}"));
        match field {
            "id" => id = Some(value.parse().unwrap()),
            "event" => kind = Some(value.to_string()),
            "data" => {
                assert!(data.is_none(), "one data line per event: {block}");
                data = Some(serde_json::from_str(value).unwrap());
            }
            other => panic!("unexpected field {other} in {block}"),
        }
    }
    Item::Event {
        id: id.expect("an id"),
        kind: kind.expect("an event type"),
        data: data.expect("data"),
    }
}

/// The `id:` of a block, if it has one.
fn id_of(block: &str) -> Option<i64> {
    block
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .map(|id| id.parse().unwrap())
}

/// Every item of `GET /events` (all pages).
async fn feed(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let after = all
            .last()
            .map_or(0, |e: &Value| e["data"]["sequence"].as_i64().unwrap());
        let page = app.list(&format!("/events?after={after}&limit=1000")).await;
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Makes `n` changes (creates, then a status change each) named `tag`.
async fn changes(app: &TestApp, tag: &str, n: usize) {
    for i in 0..n {
        let order = app
            .create(&format!("{tag}-{i}"), "C", "1.00", "pending")
            .await;
        let r = app
            .put(
                &format!("/commandes/{}/status", order["id"]),
                &Value::from("processing"),
            )
            .await;
        assert_eq!(r.status(), 200);
    }
}

/// The ids, types and data of a stream are exactly the feed's.
fn assert_is_feed(got: &[(i64, String, Value)], feed: &[Value]) {
    assert_eq!(got.len(), feed.len(), "{got:?}");
    for ((id, kind, data), item) in got.iter().zip(feed) {
        assert_eq!(*id, item["data"]["sequence"].as_i64().unwrap());
        assert_eq!(kind, item["type"].as_str().unwrap());
        assert_eq!(data, item);
    }
}

async fn a_stream_sends_every_event_in_order(app: TestApp) {
    let app = Arc::new(app);
    changes(&app, "OLD", 2).await;
    let mut stream = Stream::open(&app, "/events/stream", &[]).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some(Item::Comment("stream open".into()))
    );
    // What was there, then what comes, from writers at once.
    let mut first = stream.events(4).await;
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move { changes(&app, &format!("NEW{w}"), 5).await })
        })
        .collect();
    // Streams that open while the writers write: what they read from the
    // store and what the shared reader pushes overlap, and must not repeat.
    let mut late = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(40)).await;
        late.push(Stream::open(&app, "/events/stream", &[]).await);
    }
    for w in writers {
        w.await.unwrap();
    }
    first.extend(stream.events(20).await);
    let feed = feed(&app).await;
    assert_is_feed(&first, &feed);
    stream.no_event_for(Duration::from_millis(500)).await;
    for mut s in late {
        assert_is_feed(&s.events(24).await, &feed);
        s.no_event_for(Duration::from_millis(100)).await;
    }
}

async fn a_stream_resumes_after_a_reconnect(app: TestApp) {
    changes(&app, "A", 2).await;
    let mut stream = Stream::open(&app, "/events/stream", &[]).await;
    let mut got = stream.events(4).await;
    let last = got.last().unwrap().0;
    drop(stream);
    changes(&app, "B", 2).await;
    // The header wins over `after`.
    let mut stream = Stream::open(
        &app,
        "/events/stream?after=0",
        &[("Last-Event-ID", &last.to_string())],
    )
    .await;
    got.extend(stream.events(4).await);
    changes(&app, "C", 1).await;
    got.extend(stream.events(2).await);
    stream.no_event_for(Duration::from_millis(300)).await;
    drop(stream);
    let feed = feed(&app).await;
    assert_is_feed(&got, &feed);
    // `after` alone, in the middle.
    let middle = feed[5]["data"]["sequence"].as_i64().unwrap();
    let mut stream = Stream::open(&app, &format!("/events/stream?after={middle}"), &[]).await;
    assert_is_feed(&stream.events(4).await, &feed[6..]);
}

async fn a_stream_checks_its_input(app: TestApp) {
    for (path, header, fields) in [
        ("/events/stream?after=-1", None, vec!["after"]),
        ("/events/stream?after=1&wait=3", None, vec!["wait"]),
        ("/events/stream?limit=3", None, vec!["limit"]),
        ("/events/stream", Some("abc"), vec!["Last-Event-ID"]),
        ("/events/stream", Some(""), vec!["Last-Event-ID"]),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("Last-Event-ID", h)).into_iter().collect();
        let r = Stream::request(&app, path, &headers).await;
        let body = problem(r, 422).await;
        assert_eq!(error_fields(&body), fields, "{path} {header:?}");
    }
    let r = app
        .anonymous(Method::GET, "/events/stream")
        .send()
        .await
        .unwrap();
    problem(r, 401).await;
}

/// A database shared by successive servers (and replicas): a SQLite file of
/// the test's own, or a PostgreSQL database.
async fn shared_database(
    backend: Backend,
    dir: &tempfile::TempDir,
) -> Option<(String, Option<crate::support::TestDatabase>)> {
    match backend {
        Backend::Sqlite => Some((
            format!("sqlite://{}", dir.path().join("shared.db").display()),
            None,
        )),
        _ => {
            let db = crate::support::TestDatabase::create().await?;
            Some((db.url.clone(), Some(db)))
        }
    }
}

async fn on(
    backend: Backend,
    url: &str,
    adjust: impl FnOnce(&mut commandes::config::Settings),
) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.database.url = url.parse().unwrap();
        adjust(s);
    })
    .await
    .expect("the app starts")
}

/// A shutdown ends an open stream at once (cleanly: the last block is
/// whole), well before the server's shutdown deadline (5 s here); the
/// client resumes on the restarted server with what it last received.
async fn a_stream_ends_on_shutdown_and_resumes_after_a_restart(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _db)) = shared_database(backend, &dir).await else {
        return;
    };
    let first = on(backend, &url, |_| {}).await;
    changes(&first, "BEFORE", 2).await;
    let mut stream = Stream::open(&first, "/events/stream", &[]).await;
    let mut got = stream.events(4).await;
    let t = Instant::now();
    first.stop().await;
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "the shutdown took {took:?}");
    // Ended, not cut: whatever was left is comments, then the end.
    while let Some(item) = stream.next(Duration::from_secs(2)).await {
        assert!(matches!(item, Item::Comment(_)), "{item:?}");
    }
    let second = on(backend, &url, |_| {}).await;
    changes(&second, "AFTER", 2).await;
    let last = got.last().unwrap().0.to_string();
    let mut stream = Stream::open(&second, "/events/stream", &[("Last-Event-ID", &last)]).await;
    got.extend(stream.events(4).await);
    stream.no_event_for(Duration::from_millis(300)).await;
    assert_is_feed(&got, &feed(&second).await);
}

/// Past `events.max_streams` (2 here), 503 with `Retry-After` at once; a
/// stream that closes frees its slot.
async fn streams_past_the_cap_are_503(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.events.max_streams = 2).await else {
        return;
    };
    let one = Stream::open(&app, "/events/stream", &[]).await;
    let _two = Stream::open(&app, "/events/stream", &[]).await;
    let t = Instant::now();
    let r = Stream::request(&app, "/events/stream", &[]).await;
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(r.headers().contains_key("retry-after"));
    let body = problem(r, 503).await;
    assert!(
        body["detail"].as_str().unwrap().contains("event streams"),
        "{body}"
    );
    // The feed and the rest of the API are not counted.
    app.list("/events").await;
    drop(one);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = Stream::request(&app, "/events/stream", &[]).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot is not free"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After `events.stream_heartbeat_secs` (1 here) without an event, a
/// `: keep-alive` comment; an event resets the wait.
async fn a_quiet_stream_sends_heartbeats(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |s| s.events.stream_heartbeat_secs = 1).await
    else {
        return;
    };
    let mut stream = Stream::open(&app, "/events/stream", &[]).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some(Item::Comment("stream open".into()))
    );
    let t = Instant::now();
    for _ in 0..2 {
        assert_eq!(
            stream.next(Duration::from_secs(3)).await,
            Some(Item::Comment("keep-alive".into()))
        );
    }
    assert!(
        t.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t.elapsed()
    );
    changes(&app, "HB", 1).await;
    assert_eq!(stream.events(2).await.len(), 2);
}

/// Two replicas on one PostgreSQL: a stream on A gets what is written
/// through B (and A) at once, in the feed's order; resumed on B halfway,
/// nothing is missed or repeated.
async fn a_stream_follows_writes_through_another_replica() {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _db)) = shared_database(Backend::Postgres, &dir).await else {
        return;
    };
    let a = Arc::new(on(Backend::Postgres, &url, |_| {}).await);
    let b = Arc::new(on(Backend::Postgres, &url, |_| {}).await);
    let mut stream = Stream::open(&a, "/events/stream", &[]).await;
    let writers: Vec<_> = [
        (a.clone(), "ON-A"),
        (b.clone(), "ON-B"),
        (b.clone(), "ON-B2"),
    ]
    .into_iter()
    .map(|(app, tag)| tokio::spawn(async move { changes(&app, tag, 8).await }))
    .collect();
    let mut got = stream.events(20).await;
    drop(stream);
    let last = got.last().unwrap().0.to_string();
    let mut stream = Stream::open(&b, "/events/stream", &[("Last-Event-ID", &last)]).await;
    for w in writers {
        w.await.unwrap();
    }
    got.extend(stream.events(48 - 20).await);
    stream.no_event_for(Duration::from_millis(500)).await;
    assert_is_feed(&got, &feed(&b).await);
    // Only B writes now: A's stream hears of it by polling.
    let mut on_a = Stream::open(
        &a,
        &format!("/events/stream?after={}", got.last().unwrap().0),
        &[],
    )
    .await;
    let t = Instant::now();
    changes(&b, "LATE", 1).await;
    let late = on_a.events(2).await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(late[0].2["data"]["order_id"], "LATE-0");
}

/// `after=latest` starts at the newest event: the opening block has the
/// `retry:` hint and that position as `id:`, and only what comes follows.
async fn a_stream_starts_at_the_latest_event(app: TestApp) {
    changes(&app, "OLD", 2).await;
    let newest = feed(&app).await.last().unwrap()["data"]["sequence"]
        .as_i64()
        .unwrap();
    let mut stream = Stream::open(&app, "/events/stream?after=latest", &[]).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some(Item::Comment("stream open".into()))
    );
    assert_eq!(stream.retry, Some(2000));
    assert_eq!(stream.last_id, Some(newest));
    stream.no_event_for(Duration::from_millis(300)).await;
    changes(&app, "NEW", 1).await;
    let got = stream.events(2).await;
    assert_is_feed(&got, &feed(&app).await[usize::try_from(newest).unwrap()..]);
    // A stream from a number has the hint, and no position to learn.
    let mut plain = Stream::open(&app, "/events/stream?after=1", &[]).await;
    plain.next(Duration::from_secs(5)).await;
    assert_eq!((plain.retry, plain.last_id), (Some(2000), None));
    for path in [
        "/events/stream?after=latest&after=1",
        "/events/stream?after=newest",
    ] {
        let body = problem(Stream::request(&app, path, &[]).await, 422).await;
        assert_eq!(error_fields(&body), ["after"], "{path}");
    }
}

/// While PostgreSQL cannot be reached, an open stream stays open (its
/// heartbeats go on) instead of ending into a reconnect loop; once the
/// database is back, what was missed follows, then what comes.
async fn a_stream_stays_open_while_the_database_is_down() {
    if crate::support::postgres_server().is_none() {
        return;
    }
    let mut proxy = crate::outage::Proxy::start(crate::outage::upstream(Backend::Postgres)).await;
    let addr = proxy.addr;
    let app = TestApp::spawn_with(Backend::Postgres, |s| {
        s.database.url = crate::outage::through(&s.database.url.expose(), addr)
            .parse()
            .unwrap();
        s.database.connect_timeout_secs = 2;
        s.events.stream_heartbeat_secs = 1;
    })
    .await
    .expect("PostgreSQL is available");
    changes(&app, "BEFORE", 1).await;
    proxy.cut().await;
    let mut stream = Stream::open(&app, "/events/stream", &[]).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some(Item::Comment("stream open".into()))
    );
    // Three heartbeats in the outage: the stream did not end.
    for _ in 0..3 {
        assert_eq!(
            stream.next(Duration::from_secs(8)).await,
            Some(Item::Comment("keep-alive".into()))
        );
    }
    proxy.restore().await;
    let missed = stream.events(2).await;
    assert_eq!(missed[0].2["data"]["order_id"], "BEFORE-0");
    crate::support::wait_until_ready(&app).await;
    changes(&app, "AFTER", 1).await;
    let after = stream.events(2).await;
    assert_eq!(after[0].2["data"]["order_id"], "AFTER-0");
}

crate::both_backends!(
    a_stream_sends_every_event_in_order,
    a_stream_resumes_after_a_reconnect,
    a_stream_checks_its_input,
    a_stream_starts_at_the_latest_event,
);

mod sqlite_servers {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_ends_on_shutdown_and_resumes_after_a_restart() {
        super::a_stream_ends_on_shutdown_and_resumes_after_a_restart(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_past_the_cap_are_503() {
        super::streams_past_the_cap_are_503(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_stream_sends_heartbeats() {
        super::a_quiet_stream_sends_heartbeats(Backend::Sqlite).await;
    }
}

mod postgres_servers {
    use crate::support::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_ends_on_shutdown_and_resumes_after_a_restart() {
        super::a_stream_ends_on_shutdown_and_resumes_after_a_restart(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn streams_past_the_cap_are_503() {
        super::streams_past_the_cap_are_503(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quiet_stream_sends_heartbeats() {
        super::a_quiet_stream_sends_heartbeats(Backend::Postgres).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_follows_writes_through_another_replica() {
        super::a_stream_follows_writes_through_another_replica().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_stays_open_while_the_database_is_down() {
        super::a_stream_stays_open_while_the_database_is_down().await;
    }
}
