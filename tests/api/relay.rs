//! The broker relay against the real NATS (JetStream, 127.0.0.1:4222) and
//! RabbitMQ (127.0.0.1:5672, guest/guest) of this machine, from both
//! backends. Every test uses its own stream, subjects, exchange and queue,
//! and removes them at the end.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use commandes::config::Settings;
use commandes::storage::Store;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::outage::Proxy;
use crate::support::{open_store, Backend, TestApp};

pub(crate) const NATS: &str = "127.0.0.1:4222";
pub(crate) const AMQP: &str = "127.0.0.1:5672";

/// Each test's own names.
pub(crate) struct Names {
    pub(crate) tag: String,
}

impl Names {
    pub(crate) fn new() -> Names {
        let tag: [u8; 6] = rand::random();
        Names {
            tag: commandes::hex::encode(&tag),
        }
    }
    pub(crate) fn stream(&self) -> String {
        format!("RELAYTEST_{}", self.tag)
    }
    pub(crate) fn prefix(&self) -> String {
        format!("relaytest.{}.order", self.tag)
    }
    pub(crate) fn exchange(&self) -> String {
        format!("relaytest.{}", self.tag)
    }
    pub(crate) fn queue(&self) -> String {
        format!("relaytest.{}.q", self.tag)
    }
}

/// Relay settings for a test: short timeouts so failures are retried soon.
fn relay_settings(s: &mut Settings, url: &str, names: &Names) {
    s.events.relay_url = Some(commandes::relay::BrokerUrl::parse(url).unwrap());
    s.events.nats_stream = names.stream();
    s.events.nats_subject_prefix = names.prefix();
    s.events.amqp_exchange = names.exchange();
    s.events.relay_lease_secs = 3;
    s.events.relay_timeout_ms = 1000;
    s.events.relay_poll_ms = 50;
    s.events.relay_batch = 4;
}

/// What a consumer saw of one message.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    id: String,
    sequence: i64,
    key: String,
    body: Value,
}

/// The events the store holds, by sequence: (id, sequence, type).
async fn stored(store: &Arc<dyn Store>) -> Vec<(String, i64, String)> {
    store
        .events_after(0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.event.id, e.sequence, e.event.kind.short().to_string()))
        .collect()
}

/// Makes a few changes of every kind; returns how many events they made.
async fn changes(app: &TestApp, from: usize, n: usize) -> usize {
    let mut events = 0;
    for i in from..from + n {
        let order = app
            .create(&format!("RLY-{i}"), "c1", "10.00", "pending")
            .await;
        events += 1;
        let id = order["id"].as_i64().unwrap();
        if i % 2 == 0 {
            let r = app
                .put(
                    &format!("/commandes/{id}"),
                    &serde_json::json!({"status": "processing", "total_amount": "12.00"}),
                )
                .await;
            assert_eq!(r.status(), 200);
            events += 2;
        }
        if i % 3 == 0 {
            assert_eq!(app.delete(&format!("/commandes/{id}")).await.status(), 204);
            events += 1;
        }
    }
    events
}

/// Polls `f` until it says yes, for at most 30 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(Instant::now() < until, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message `received` is one of `expected`; without repeats, they
/// are `expected` in order; a repeat is the same message again.
fn check_delivery(received: &[Received], expected: &[(String, i64, String)], ordered: bool) {
    let mut seen = HashSet::new();
    let mut firsts = Vec::new();
    for r in received {
        let e = expected
            .iter()
            .find(|e| e.0 == r.id)
            .unwrap_or_else(|| panic!("unknown message {r:?}"));
        assert_eq!(r.sequence, e.1, "the sequence header of {}", r.id);
        assert!(r.key.ends_with(&e.2), "{} for a {}", r.key, e.2);
        assert_eq!(r.body["id"], r.id.as_str());
        assert_eq!(r.body["specversion"], "1.0");
        assert_eq!(r.body["data"]["sequence"], e.1);
        if seen.insert(r.id.clone()) {
            firsts.push(r.id.clone());
        }
    }
    let want: Vec<String> = expected.iter().map(|e| e.0.clone()).collect();
    if ordered {
        assert_eq!(firsts, want, "every event once, in sequence order");
    } else {
        let got: HashSet<_> = firsts.into_iter().collect();
        assert_eq!(got, want.into_iter().collect::<HashSet<_>>(), "every event");
    }
}

// --- NATS -----------------------------------------------------------------

pub(crate) async fn nats() -> jetstream::Context {
    jetstream::new(async_nats::connect(NATS).await.expect("NATS is running"))
}

/// Everything in the stream, in stream order (empty if it does not exist).
async fn nats_messages(js: &jetstream::Context, names: &Names) -> Vec<Received> {
    let Ok(mut stream) = js.get_stream(names.stream()).await else {
        return Vec::new();
    };
    let last = stream
        .info()
        .await
        .expect("stream info")
        .state
        .last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.expect("stream message");
        let header = |n: &str| m.headers.get(n).map(|v| v.as_str().to_string());
        out.push(Received {
            id: header("Nats-Msg-Id").expect("a message id"),
            sequence: header("Commandes-Sequence")
                .and_then(|s| s.parse().ok())
                .expect("a sequence header"),
            key: m.subject.to_string(),
            body: serde_json::from_slice(&m.payload).expect("JSON body"),
        });
    }
    out
}

async fn nats_delivers_every_event_in_order(backend: Backend) {
    let names = Names::new();
    let Some(app) = TestApp::spawn_with(backend, |s| {
        relay_settings(s, &format!("nats://{NATS}"), &names)
    })
    .await
    else {
        return;
    };
    let n = changes(&app, 0, 7).await;
    let store = open_store(&app).await;
    let js = nats().await;
    eventually("every event in the stream", || async {
        nats_messages(&js, &names).await.len() >= n
    })
    .await;
    let expected = stored(&store).await;
    assert_eq!(expected.len(), n);
    let got = nats_messages(&js, &names).await;
    assert_eq!(got.len(), n, "JetStream keeps each id once");
    check_delivery(&got, &expected, true);
    assert!(got[0].key.starts_with(&names.prefix()));
    app.stop().await;
    let _ = js.delete_stream(names.stream()).await;
}

async fn nats_connection_cut_loses_nothing(backend: Backend) {
    let names = Names::new();
    let mut proxy = Proxy::start(NATS.into()).await;
    let url = format!("nats://{}", proxy.addr);
    let Some(app) = TestApp::spawn_with(backend, |s| relay_settings(s, &url, &names)).await else {
        return;
    };
    let js = nats().await;
    let first = changes(&app, 0, 4).await;
    eventually("the first events", || async {
        nats_messages(&js, &names).await.len() >= first
    })
    .await;
    proxy.cut().await;
    let second = changes(&app, 4, 6).await;
    // The relay fails and backs off meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(nats_messages(&js, &names).await.len(), first);
    proxy.restore().await;
    eventually("every event after the cut", || async {
        nats_messages(&js, &names).await.len() >= first + second
    })
    .await;
    let expected = stored(&open_store(&app).await).await;
    let got = nats_messages(&js, &names).await;
    assert_eq!(got.len(), first + second);
    check_delivery(&got, &expected, true);
    app.stop().await;
    let _ = js.delete_stream(names.stream()).await;
}

async fn nats_refusal_is_retried_not_skipped(backend: Backend) {
    let names = Names::new();
    let js = nats().await;
    // A stream that refuses a fourth message: JetStream answers with an
    // error, the relay must not advance past it.
    js.create_stream(stream::Config {
        name: names.stream(),
        subjects: vec![format!("{}.>", names.prefix())],
        max_messages: 3,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .expect("create the stream");
    let Some(app) = TestApp::spawn_with(backend, |s| {
        relay_settings(s, &format!("nats://{NATS}"), &names)
    })
    .await
    else {
        let _ = js.delete_stream(names.stream()).await;
        return;
    };
    let store = open_store(&app).await;
    for i in 0..6 {
        app.create(&format!("NACK-{i}"), "c1", "1.00", "pending")
            .await;
    }
    let expected = stored(&store).await;
    let third = expected[2].1;
    eventually("the relay at the third event", || async {
        store.relay_position("default").await.unwrap() == Some(third)
    })
    .await;
    // Refused for a while: still there, never past it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(store.relay_position("default").await.unwrap(), Some(third));
    assert_eq!(nats_messages(&js, &names).await.len(), 3);
    js.update_stream(stream::Config {
        name: names.stream(),
        subjects: vec![format!("{}.>", names.prefix())],
        max_messages: -1,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .expect("lift the limit");
    eventually("every event once the stream takes them", || async {
        nats_messages(&js, &names).await.len() >= 6
    })
    .await;
    check_delivery(&nats_messages(&js, &names).await, &expected, true);
    let last = expected[5].1;
    eventually("the position at the end", || async {
        store.relay_position("default").await.unwrap() == Some(last)
    })
    .await;
    app.stop().await;
    let _ = js.delete_stream(names.stream()).await;
}

// --- RabbitMQ -------------------------------------------------------------

/// A consumer's queue, bound to the test's exchange (declared here first,
/// as the relay declares it).
pub(crate) struct Queue {
    connection: Connection,
    pub(crate) channel: lapin::Channel,
    names: Names,
}

impl Queue {
    pub(crate) async fn bind(names: Names, arguments: FieldTable) -> Queue {
        let connection = Connection::connect(
            &format!("amqp://guest:guest@{AMQP}/%2f"),
            ConnectionProperties::default(),
        )
        .await
        .expect("RabbitMQ is running");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .exchange_declare(
                names.exchange().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare the exchange");
        channel
            .queue_declare(
                names.queue().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("declare the queue");
        channel
            .queue_bind(
                names.queue().into(),
                names.exchange().into(),
                "order.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the queue");
        Queue {
            connection,
            channel,
            names,
        }
    }

    /// Takes every message waiting now.
    async fn drain(&self, into: &mut Vec<Received>) {
        while let Some(m) = self
            .channel
            .basic_get(self.names.queue().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            let p = &m.delivery.properties;
            assert_eq!(
                p.content_type().as_ref().map(|s| s.as_str()),
                Some("application/cloudevents+json")
            );
            assert_eq!(*p.delivery_mode(), Some(2), "persistent");
            let sequence = p
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("sequence").cloned())
                .and_then(|v| match v {
                    AMQPValue::LongLongInt(n) => Some(n),
                    _ => None,
                })
                .expect("a sequence header");
            into.push(Received {
                id: p.message_id().as_ref().expect("a message id").to_string(),
                sequence,
                key: m.delivery.routing_key.to_string(),
                body: serde_json::from_slice(&m.delivery.data).expect("JSON body"),
            });
        }
    }

    /// Drains until `n` distinct ids arrived (30 s at most).
    async fn receive(&self, into: &mut Vec<Received>, n: usize) {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            self.drain(into).await;
            let distinct: HashSet<_> = into.iter().map(|r| r.id.clone()).collect();
            if distinct.len() >= n {
                return;
            }
            assert!(
                Instant::now() < until,
                "only {} of {n} arrived",
                distinct.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn remove(self) {
        let _ = self
            .channel
            .queue_delete(self.names.queue().into(), QueueDeleteOptions::default())
            .await;
        let _ = self
            .channel
            .exchange_delete(
                self.names.exchange().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
        let _ = self.connection.close(200, "done".into()).await;
    }
}

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

async fn amqp_delivers_every_event_in_order(backend: Backend) {
    let names = Names::new();
    let settings_names = Names {
        tag: names.tag.clone(),
    };
    let queue = Queue::bind(names, FieldTable::default()).await;
    let Some(app) = TestApp::spawn_with(backend, |s| {
        relay_settings(s, &amqp_url(AMQP), &settings_names)
    })
    .await
    else {
        queue.remove().await;
        return;
    };
    let n = changes(&app, 0, 7).await;
    let mut got = Vec::new();
    queue.receive(&mut got, n).await;
    let expected = stored(&open_store(&app).await).await;
    app.stop().await;
    queue.drain(&mut got).await;
    assert_eq!(got.len(), n, "no repeats without a failure");
    check_delivery(&got, &expected, true);
    assert!(got.iter().all(|r| r.key.starts_with("order.")));
    queue.remove().await;
}

async fn amqp_connection_cut_loses_nothing(backend: Backend) {
    let names = Names::new();
    let settings_names = Names {
        tag: names.tag.clone(),
    };
    let queue = Queue::bind(names, FieldTable::default()).await;
    let mut proxy = Proxy::start(AMQP.into()).await;
    let url = amqp_url(&proxy.addr.to_string());
    let Some(app) =
        TestApp::spawn_with(backend, |s| relay_settings(s, &url, &settings_names)).await
    else {
        queue.remove().await;
        return;
    };
    let first = changes(&app, 0, 4).await;
    let mut got = Vec::new();
    queue.receive(&mut got, first).await;
    proxy.cut().await;
    let second = changes(&app, 4, 6).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    queue.drain(&mut got).await;
    assert_eq!(got.len(), first, "nothing passes the cut");
    proxy.restore().await;
    queue.receive(&mut got, first + second).await;
    let expected = stored(&open_store(&app).await).await;
    app.stop().await;
    queue.drain(&mut got).await;
    check_delivery(&got, &expected, true);
    queue.remove().await;
}

async fn amqp_nack_is_retried_not_skipped(backend: Backend) {
    let names = Names::new();
    let settings_names = Names {
        tag: names.tag.clone(),
    };
    // A queue that takes three messages and nacks the publish of more.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(3));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let queue = Queue::bind(names, args).await;
    let Some(app) = TestApp::spawn_with(backend, |s| {
        relay_settings(s, &amqp_url(AMQP), &settings_names)
    })
    .await
    else {
        queue.remove().await;
        return;
    };
    let store = open_store(&app).await;
    for i in 0..6 {
        app.create(&format!("NACK-{i}"), "c1", "1.00", "pending")
            .await;
    }
    let expected = stored(&store).await;
    let third = expected[2].1;
    eventually("the relay at the third event", || async {
        store.relay_position("default").await.unwrap() == Some(third)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        store.relay_position("default").await.unwrap(),
        Some(third),
        "never past a nack"
    );
    let mut got = Vec::new();
    queue.receive(&mut got, 6).await;
    check_delivery(&got, &expected, false);
    let last = expected[5].1;
    eventually("the position at the end", || async {
        store.relay_position("default").await.unwrap() == Some(last)
    })
    .await;
    app.stop().await;
    queue.remove().await;
}

/// Two instances on one database: one relays, the other takes over when
/// it stops; nothing is lost or sent twice.
async fn one_instance_relays_at_a_time(backend: Backend) {
    let names = Names::new();
    let settings_names = Names {
        tag: names.tag.clone(),
    };
    let queue = Queue::bind(names, FieldTable::default()).await;
    let url = amqp_url(AMQP);
    // The database outlives both instances.
    let dir = tempfile::tempdir().expect("temp dir");
    let (database, _pg) = match backend {
        Backend::Sqlite => (
            format!("sqlite://{}", dir.path().join("shared.db").display()),
            None,
        ),
        Backend::Postgres => match crate::support::TestDatabase::create().await {
            Some(db) => (db.url.clone(), Some(db)),
            None => {
                queue.remove().await;
                return;
            }
        },
        Backend::Pooler => unreachable!("the relay tests run on SQLite and PostgreSQL"),
    };
    let instance = |database: String| {
        let url = url.clone();
        let names = Names {
            tag: settings_names.tag.clone(),
        };
        async move {
            TestApp::spawn_with(backend, |s| {
                relay_settings(s, &url, &names);
                s.database.url = database.parse().unwrap();
            })
            .await
            .expect("an instance starts")
        }
    };
    let first = instance(database.clone()).await;
    let store = commandes::storage::open(&database.parse().unwrap(), &Default::default())
        .await
        .expect("open the shared database");
    eventually("the first instance holds the lease", || async {
        store.relay_position("default").await.unwrap().is_some()
    })
    .await;
    let second = instance(database.clone()).await;
    let mut n = changes(&first, 0, 4).await;
    n += changes(&second, 4, 4).await;
    let mut got = Vec::new();
    queue.receive(&mut got, n).await;
    first.stop().await;
    n += changes(&second, 8, 4).await;
    queue.receive(&mut got, n).await;
    let expected = stored(&store).await;
    second.stop().await;
    queue.drain(&mut got).await;
    assert_eq!(got.len(), n, "never two relays at once: no repeats");
    check_delivery(&got, &expected, true);
    queue.remove().await;
}

/// The lease rules, on the store itself.
async fn the_lease_is_exclusive_and_expires(backend: Backend) {
    let Some(app) = TestApp::spawn(backend).await else {
        return;
    };
    let store = open_store(&app).await;
    let ttl = Duration::from_millis(800);
    assert_eq!(store.relay_position("x").await.unwrap(), None);
    assert_eq!(store.relay_claim("x", "a", ttl).await.unwrap(), Some(0));
    assert_eq!(store.relay_claim("x", "b", ttl).await.unwrap(), None);
    assert!(!store.relay_advance("x", "b", 5, ttl).await.unwrap());
    assert!(store.relay_advance("x", "a", 5, ttl).await.unwrap());
    assert!(store.relay_advance("x", "a", 3, ttl).await.unwrap());
    assert_eq!(
        store.relay_position("x").await.unwrap(),
        Some(5),
        "never back"
    );
    assert_eq!(store.relay_claim("x", "a", ttl).await.unwrap(), Some(5));
    // Another relay name is another lease.
    assert_eq!(store.relay_claim("y", "b", ttl).await.unwrap(), Some(0));
    // A holder that stops renewing loses it.
    tokio::time::sleep(ttl + Duration::from_millis(400)).await;
    assert_eq!(store.relay_claim("x", "b", ttl).await.unwrap(), Some(5));
    assert!(!store.relay_advance("x", "a", 9, ttl).await.unwrap());
    store.relay_release("x", "b").await.unwrap();
    assert_eq!(store.relay_claim("x", "a", ttl).await.unwrap(), Some(5));
    app.stop().await;
}

/// Whether both brokers answer. This machine's kind runs them; elsewhere
/// the relay tests are skipped with a notice, unless
/// `COMMANDES_REQUIRE_BROKERS=1` (CI sets it) makes that a failure.
pub(crate) async fn brokers_up() -> bool {
    let mut down = Vec::new();
    for addr in [NATS, AMQP] {
        let reached = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        if !matches!(reached, Ok(Ok(_))) {
            down.push(addr);
        }
    }
    if down.is_empty() {
        return true;
    }
    if std::env::var("COMMANDES_REQUIRE_BROKERS").as_deref() == Ok("1") {
        panic!("no broker answers at {down:?} (COMMANDES_REQUIRE_BROKERS=1)");
    }
    eprintln!("SKIPPED: the relay tests did not run: no broker answers at {down:?}");
    false
}

macro_rules! relay_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::brokers_up().await {
                        return;
                    }
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !super::brokers_up().await {
                        return;
                    }
                    super::$name($crate::support::Backend::Postgres).await;
                }
            )*
        }
    };
}

relay_tests!(
    nats_delivers_every_event_in_order,
    nats_connection_cut_loses_nothing,
    nats_refusal_is_retried_not_skipped,
    amqp_delivers_every_event_in_order,
    amqp_connection_cut_loses_nothing,
    amqp_nack_is_retried_not_skipped,
    one_instance_relays_at_a_time,
    the_lease_is_exclusive_and_expires,
);
