//! Traces: the binary as a child process exports its spans to a small
//! OTLP/HTTP receiver started here (protobuf decoded with
//! opentelemetry-proto), and a request's `traceparent` reaches the spans,
//! the event in `/events`, and the relay's message headers on the real
//! NATS and RabbitMQ. With no endpoint set, nothing is sent at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::options::BasicGetOptions;
use lapin::types::{AMQPValue, FieldTable};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message as _;
use serde_json::{json, Value};

use crate::process::{commandes, serve, Served};
use crate::relay::{brokers_up, nats, Names, Queue, AMQP, NATS};
use crate::support::{Backend, TestDatabase};

const TOKEN: &str = "traces-token-0123456789";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// One span as the receiver got it (ids in hex).
#[derive(Debug, Clone)]
struct Received {
    service: String,
    trace_id: String,
    span_id: String,
    parent: String,
    name: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP receiver on a free port: every request counted, the spans
/// of `POST /v1/traces` kept.
struct Collector {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    spans: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(n)) => n.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

impl Collector {
    async fn start() -> Collector {
        use poem::listener::TcpAcceptor;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let (count, kept) = (requests.clone(), spans.clone());
        let endpoint = poem::endpoint::make(move |mut req: poem::Request| {
            let (count, kept) = (count.clone(), kept.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let path = req.uri().path().to_string();
                let body = req.take_body().into_vec().await.unwrap_or_default();
                if path == "/v1/traces" {
                    let export = ExportTraceServiceRequest::decode(body.as_slice())
                        .expect("an OTLP protobuf export");
                    let mut kept = kept.lock().unwrap();
                    for rs in export.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|a| a.key == "service.name")
                            .map(|a| text(a.value.as_ref()))
                            .unwrap_or_default();
                        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                            kept.push(Received {
                                service: service.clone(),
                                trace_id: commandes::hex::encode(&span.trace_id),
                                span_id: commandes::hex::encode(&span.span_id),
                                parent: commandes::hex::encode(&span.parent_span_id),
                                name: span.name,
                                kind: span.kind,
                                attributes: span
                                    .attributes
                                    .iter()
                                    .map(|a| (a.key.clone(), text(a.value.as_ref())))
                                    .collect(),
                            });
                        }
                    }
                }
                poem::Response::builder()
                    .content_type("application/x-protobuf")
                    .body(Vec::<u8>::new())
            }
        });
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await;
        });
        Collector {
            endpoint: format!("http://{addr}"),
            requests,
            spans,
            task,
        }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (10 s at most) until `found` picks something out of the spans.
    async fn wait_for<T>(&self, what: &str, found: impl Fn(&[Received]) -> Option<T>) -> T {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(t) = found(&self.spans()) {
                return t;
            }
            assert!(
                Instant::now() < until,
                "no {what} at the collector: {:#?}",
                self.spans()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which broker the relay of a test publishes to.
#[derive(Debug, Clone, Copy)]
enum Broker {
    Nats,
    Amqp,
}

/// The database of a test: a SQLite file in `dir`, or a new PostgreSQL
/// database (`None`: PostgreSQL is not available and not required).
async fn database(
    backend: Backend,
    dir: &std::path::Path,
) -> Option<(String, Option<TestDatabase>)> {
    match backend {
        Backend::Sqlite => Some((format!("sqlite://{}/traces.db", dir.display()), None)),
        _ => {
            let db = TestDatabase::create().await?;
            Some((db.url.clone(), Some(db)))
        }
    }
}

/// `serve` with a token, the database, and the given extra environment.
fn start(dir: &std::path::Path, url: &str, env: &[(&str, String)]) -> Served {
    let mut cmd = commandes(dir);
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("COMMANDES_OTLP_ENDPOINT")
        .env_remove("OTEL_SERVICE_NAME")
        .env("COMMANDES_DATABASE_URL", url)
        .env("COMMANDES_API_TOKENS", TOKEN)
        .env("COMMANDES_DEMO_DATA", "never")
        .env("COMMANDES_LOG_FORMAT", "json");
    for (k, v) in env {
        cmd.env(k, v);
    }
    serve(&mut cmd, false)
}

/// Creates an order with `traceparent` (if any): the response.
async fn create(served: &Served, order_id: &str, traceparent: Option<&str>) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{}/commandes", served.base()))
        .bearer_auth(TOKEN)
        .json(&json!({"order_id": order_id, "customer_id": "c-traces", "total_amount": "12.50"}));
    if let Some(t) = traceparent {
        r = r.header("traceparent", t);
    }
    let r = r.send().await.unwrap();
    assert_eq!(r.status(), 201, "{order_id}");
    r
}

/// The `order.created` event of `order_id`, from `GET /events`.
async fn created_event(served: &Served, order_id: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Value = reqwest::Client::new()
            .get(format!("{}/events?after=0&limit=1000", served.base()))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let found = events
            .as_array()
            .and_then(|a| a.iter().find(|e| e["data"]["order_id"] == order_id))
            .cloned();
        if let Some(e) = found {
            return e;
        }
        assert!(Instant::now() < until, "no event for {order_id}: {events}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `traceparent` header of the relayed message of event `id`.
async fn relayed_traceparent(
    broker: Broker,
    names: &Names,
    queue: Option<&Queue>,
    id: &str,
) -> Option<String> {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        match broker {
            Broker::Nats => {
                let js = nats().await;
                if let Ok(mut stream) = js.get_stream(names.stream()).await {
                    let last = stream.info().await.unwrap().state.last_sequence;
                    for seq in 1..=last {
                        let m = stream.get_raw_message(seq).await.unwrap();
                        let header = |n: &str| m.headers.get(n).map(|v| v.as_str().to_string());
                        if header("Nats-Msg-Id").as_deref() == Some(id) {
                            return header("traceparent");
                        }
                    }
                }
            }
            Broker::Amqp => {
                let queue = queue.expect("a queue");
                while let Some(m) = queue
                    .channel
                    .basic_get(names.queue().into(), BasicGetOptions { no_ack: true })
                    .await
                    .unwrap()
                {
                    let p = &m.delivery.properties;
                    if p.message_id().as_ref().map(|s| s.as_str()) == Some(id) {
                        return p
                            .headers()
                            .as_ref()
                            .and_then(|h| h.inner().get("traceparent").cloned())
                            .map(|v| match v {
                                AMQPValue::LongString(s) => s.to_string(),
                                other => panic!("traceparent as {other:?}"),
                            });
                    }
                }
            }
        }
        assert!(Instant::now() < until, "event {id} was not relayed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A request with a `traceparent`: its server span and its database span
/// reach the collector in the caller's trace, with the right parents; the
/// event it caused names the server span in `/events` and in the broker's
/// message headers.
async fn a_traced_request_is_followed_to_the_broker(backend: Backend, broker: Broker) {
    if !brokers_up().await {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _db)) = database(backend, dir.path()).await else {
        return;
    };
    let names = Names::new();
    let queue_names = Names {
        tag: names.tag.clone(),
    };
    let queue = match broker {
        Broker::Amqp => Some(Queue::bind(queue_names, FieldTable::default()).await),
        Broker::Nats => None,
    };
    let relay_url = match broker {
        Broker::Nats => format!("nats://{NATS}"),
        Broker::Amqp => format!("amqp://guest:guest@{AMQP}/%2f"),
    };
    let collector = Collector::start().await;
    let served = start(
        dir.path(),
        &url,
        &[
            ("COMMANDES_OTLP_ENDPOINT", collector.endpoint.clone()),
            ("OTEL_SERVICE_NAME", "orders-under-test".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("COMMANDES_EVENTS__RELAY_URL", relay_url),
            ("COMMANDES_EVENTS__NATS_STREAM", names.stream()),
            ("COMMANDES_EVENTS__NATS_SUBJECT_PREFIX", names.prefix()),
            ("COMMANDES_EVENTS__AMQP_EXCHANGE", names.exchange()),
            ("COMMANDES_EVENTS__RELAY_POLL_MS", "50".into()),
        ],
    );

    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let order_id = format!("CMD-TRACE-{}", names.tag);
    let r = create(&served, &order_id, Some(&caller)).await;
    let answered = r.headers()["traceparent"].to_str().unwrap().to_string();
    assert!(
        answered.starts_with(&format!("00-{TRACE_ID}-")),
        "{answered}"
    );
    let server_span_id = answered[36..52].to_string();
    assert_ne!(server_span_id, CALLER_SPAN);

    // The spans, in the caller's trace.
    let server = collector
        .wait_for("server span", |spans| {
            spans
                .iter()
                .find(|s| s.trace_id == TRACE_ID && s.name == "POST /commandes")
                .cloned()
        })
        .await;
    assert_eq!(server.service, "orders-under-test");
    assert_eq!(server.kind, 2, "SERVER");
    assert_eq!(server.parent, CALLER_SPAN);
    assert_eq!(server.span_id, server_span_id);
    assert_eq!(server.attribute("http.route"), Some("/commandes"));
    assert_eq!(server.attribute("http.response.status_code"), Some("201"));
    let db = collector
        .wait_for("database span", |spans| {
            spans
                .iter()
                .find(|s| s.trace_id == TRACE_ID && s.name == "create")
                .cloned()
        })
        .await;
    assert_eq!(db.kind, 3, "CLIENT");
    assert_eq!(db.parent, server.span_id);
    let system = match backend {
        Backend::Sqlite => "sqlite",
        _ => "postgresql",
    };
    assert_eq!(db.attribute("db.system.name"), Some(system));
    assert_eq!(db.attribute("db.operation.name"), Some("create"));
    // Never the statement's values.
    for span in collector.spans() {
        for (k, v) in &span.attributes {
            assert!(
                !v.contains("CMD-TRACE") && !v.contains("c-traces"),
                "{k}={v}"
            );
        }
    }

    // The event names the server span, in the feed and on the broker.
    let event = created_event(&served, &order_id).await;
    assert_eq!(event["traceparent"], answered.as_str(), "{event}");
    let id = event["id"].as_str().unwrap().to_string();
    let relayed = relayed_traceparent(broker, &names, queue.as_ref(), &id).await;
    assert_eq!(relayed.as_deref(), Some(answered.as_str()));

    // A malformed traceparent is ignored: a new trace, never an error.
    let other = format!("CMD-TRACE-BAD-{}", names.tag);
    let r = create(&served, &other, Some("00-not-a-trace-01")).await;
    let fresh = r.headers()["traceparent"].to_str().unwrap().to_string();
    assert!(!fresh.contains(TRACE_ID));
    let started = collector
        .wait_for("new trace", |spans| {
            spans
                .iter()
                .find(|s| fresh.contains(&s.trace_id) && s.name == "POST /commandes")
                .cloned()
        })
        .await;
    assert_eq!(started.parent, "", "a root span");
    assert_eq!(
        created_event(&served, &other).await["traceparent"],
        fresh.as_str()
    );

    served.sigterm();
    let (status, _) = served.wait();
    assert!(status.success());
    match (broker, queue) {
        (Broker::Amqp, Some(q)) => q.remove().await,
        _ => {
            let _ = nats().await.delete_stream(names.stream()).await;
        }
    }
}

/// With no endpoint, no request reaches a collector (none is attempted),
/// the response carries no `traceparent`, and an event carries the
/// caller's valid `traceparent` as it came (a malformed one: none).
async fn without_an_endpoint_nothing_is_exported(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some((url, _db)) = database(backend, dir.path()).await else {
        return;
    };
    let collector = Collector::start().await;
    // The variable the OpenTelemetry SDK reads by itself (the service reads
    // only its own setting and OTEL_EXPORTER_OTLP_ENDPOINT): any exporter
    // built at all would send here.
    let served = start(
        dir.path(),
        &url,
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", collector.endpoint),
            ),
        ],
    );
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let r = create(&served, "CMD-UNTRACED-1", Some(&caller)).await;
    assert!(r.headers().get("traceparent").is_none());
    assert_eq!(
        created_event(&served, "CMD-UNTRACED-1").await["traceparent"],
        caller.as_str()
    );
    create(&served, "CMD-UNTRACED-2", Some(&"f".repeat(4000))).await;
    create(&served, "CMD-UNTRACED-3", None).await;
    for id in ["CMD-UNTRACED-2", "CMD-UNTRACED-3"] {
        assert!(created_event(&served, id)
            .await
            .get("traceparent")
            .is_none());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    served.sigterm();
    let (status, logs) = served.wait();
    assert!(status.success());
    assert_eq!(collector.requests.load(Ordering::SeqCst), 0);
    assert!(!logs.contains("otel"), "{logs}");
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_traced_request_is_followed_to_nats() {
        a_traced_request_is_followed_to_the_broker(Backend::Sqlite, Broker::Nats).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_traced_request_is_followed_to_rabbitmq() {
        a_traced_request_is_followed_to_the_broker(Backend::Sqlite, Broker::Amqp).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_endpoint_nothing_is_exported() {
        super::without_an_endpoint_nothing_is_exported(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_traced_request_is_followed_to_nats() {
        a_traced_request_is_followed_to_the_broker(Backend::Postgres, Broker::Nats).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_traced_request_is_followed_to_rabbitmq() {
        a_traced_request_is_followed_to_the_broker(Backend::Postgres, Broker::Amqp).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_an_endpoint_nothing_is_exported() {
        super::without_an_endpoint_nothing_is_exported(Backend::Postgres).await;
    }
}
