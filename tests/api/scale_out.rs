//! Scale-out: three `serve` processes share one PostgreSQL database under a
//! concurrent mixed workload, and all three are replaced one after the
//! other with SIGTERM in the middle of it (a rolling restart), with an
//! expand migration applied to the schema after the first replacement (a
//! rolling upgrade: replicas that started before it and after it serve
//! side by side). Every answer is recorded with the times it was asked
//! and answered; afterwards the answers are checked against each other,
//! against the contract's rules, and against the table itself.
//!
//! What the test's load balancer hides, and nothing else: a replica is
//! taken out of rotation, and the requests already routed to it answered,
//! before it gets SIGTERM (as a Service drops a terminating pod's
//! endpoint); a new one is put in once `/health/ready` answers 200. Every
//! other request counts: a transport error or any status the contract
//! does not allow for the operation (a 5xx included) is a violation. So is
//! any answer but 200 from `/health/ready` of a replica in rotation, polled
//! throughout (a real load balancer would have dropped that replica).
//!
//! The workload is random but seeded: the seed is printed, and
//! `SCALE_OUT_SEED=<n>` replays the same choices (not the same
//! interleaving).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use tokio_postgres::NoTls;

use crate::process::{commandes, serve_database, Served};
use crate::support::{TestDatabase, TOKEN};

/// Concurrent clients.
const TASKS: usize = 16;
/// The most requests one client sends.
const MAX_REQUESTS_PER_TASK: usize = 1000;
/// `order_id`s are drawn from this few, so that duplicates are frequent.
const ORDER_IDS: usize = 48;
const CUSTOMERS: usize = 8;
const REPLICAS: usize = 3;
/// Requests answered before the first restart begins.
const BEFORE_RESTART: usize = 1200;
/// Requests each new replica must have answered before the next restart
/// (or, after the last, before the workload stops).
const ON_NEW_REPLICA: usize = 400;
/// How often each replica in rotation is asked whether it is ready.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// The longest any phase may take before the test gives up on it.
const PHASE_DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_keep_every_rule_through_a_rolling_upgrade() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let began = Instant::now();
    let seed = std::env::var("SCALE_OUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    println!("scale_out: seed {seed} (SCALE_OUT_SEED={seed} replays the choices)");
    let dir = tempfile::tempdir().unwrap();
    let mut violations = Vec::new();

    let out = commandes(dir.path())
        .env("COMMANDES_DATABASE_URL", &db.url)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut starting = Vec::new();
    for _ in 0..REPLICAS {
        let (dir, url) = (dir.path().to_path_buf(), db.url.clone());
        starting.push(tokio::task::spawn_blocking(move || {
            serve_database(&dir, &url)
        }));
    }
    let mut processes = Vec::new();
    for s in starting {
        processes.push(Some(s.await.unwrap()));
    }
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        routing: Routing {
            slots: Mutex::new(
                processes
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let base = p.as_ref().unwrap().base();
                        Some(Arc::new(Replica::new(format!("replica-{i}"), base)))
                    })
                    .collect(),
            ),
            next: AtomicUsize::new(0),
        },
        ids: Mutex::new(Ids::default()),
        answered: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });

    // Three orders per restart outside the workload's pool: the requests
    // kept in flight across each restart wait for their rows.
    let mut events = Vec::new();
    let mut sentinels = [[0i64; 3]; REPLICAS];
    let first = shared.routing.replica(0);
    for (k, sentinel) in sentinels.iter_mut().flatten().enumerate() {
        let order_id = format!("SENTINEL-{k}");
        let body =
            json!({"order_id": order_id, "customer_id": "SENTINEL", "total_amount": "10.00"});
        let op = Op::Create {
            order_id,
            customer_id: "SENTINEL".into(),
            amount: "10.00".into(),
            status: None,
        };
        let event = shared
            .exchange(
                Planned::new(op, Method::POST, "/commandes".into(), Some(body)),
                &first,
            )
            .await;
        *sentinel = created_id(&event).unwrap_or_else(|| panic!("sentinel: {event}"));
        events.push(event);
    }

    let workers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(worker(shared.clone(), seed.wrapping_add(task as u64))))
        .collect();
    let prober = tokio::spawn(probe_readiness(shared.clone()));

    if !wait_for(&shared, || {
        shared.answered.load(Ordering::SeqCst) >= BEFORE_RESTART
    })
    .await
    {
        violations.push(format!(
            "the workload did not reach {BEFORE_RESTART} requests before the restart"
        ));
    }
    let mut restarts = Vec::new();
    for (slot, sentinels) in sentinels.into_iter().enumerate() {
        let old = processes[slot].take().unwrap();
        let (new, report) = restart(
            &shared,
            slot,
            old,
            sentinels,
            dir.path(),
            &db.url,
            &mut violations,
        )
        .await;
        processes[slot] = Some(new);
        if slot == 0 {
            // The rolling upgrade's schema change, with one replica
            // replaced and two still from before: a later release's expand
            // step (a nullable column this build does not know), declaring
            // that builds of this version still work with it.
            expand_schema(&db.url).await;
        }
        let new_replica = shared.routing.replica(slot);
        if !wait_for(&shared, || {
            new_replica.answered.load(Ordering::SeqCst) >= ON_NEW_REPLICA
        })
        .await
        {
            violations.push(format!(
                "the replica restarted in slot {slot} answered only {} requests (wanted {ON_NEW_REPLICA})",
                new_replica.answered.load(Ordering::SeqCst)
            ));
        }
        restarts.push(report);
    }
    shared.stop.store(true, Ordering::SeqCst);
    for w in workers {
        events.extend(w.await.unwrap());
    }
    let probes = prober.await.unwrap();
    for report in &restarts {
        events.extend(report.in_flight.iter().cloned());
    }
    let workload_time = shared.t0.elapsed();

    summarise(&events, workload_time);
    check_probes(&probes, &mut violations);
    for report in &restarts {
        check_restart_window(&events, report, &mut violations);
    }
    let history = check_history(&events, &mut violations);

    // The end state, through every replica's API and in the table itself.
    let bases: Vec<String> = processes
        .iter()
        .map(|p| p.as_ref().unwrap().base())
        .collect();
    check_end_state(&shared.client, &bases, &db.url, &history, &mut violations).await;

    for (slot, process) in processes.iter_mut().enumerate() {
        let process = process.take().unwrap();
        process.sigterm();
        let (status, logs) = tokio::task::spawn_blocking(move || process.wait())
            .await
            .unwrap();
        if status.code() != Some(0) {
            violations.push(format!(
                "replica in slot {slot} exited with {status} on SIGTERM"
            ));
        }
        check_logs(&format!("replica in slot {slot}"), &logs, &mut violations);
    }
    drop(db);
    println!(
        "scale_out: {} requests in {:.1} s, whole test {:.1} s, {} violations",
        events.len(),
        workload_time.as_secs_f64(),
        began.elapsed().as_secs_f64(),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "{} violations (seed {seed}):\n  {}",
        violations.len(),
        violations
            .iter()
            .take(60)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

// ---------------------------------------------------------------------------
// The workload

/// One served process as the clients see it.
struct Replica {
    label: String,
    base: String,
    /// Held (shared) by every request routed here, so that taking it
    /// exclusively waits for them all.
    gate: Arc<RwLock<()>>,
    answered: AtomicUsize,
}

impl Replica {
    fn new(label: String, base: String) -> Replica {
        Replica {
            label,
            base,
            gate: Arc::new(RwLock::new(())),
            answered: AtomicUsize::new(0),
        }
    }
}

/// Round-robin over the replicas in rotation.
struct Routing {
    slots: Mutex<Vec<Option<Arc<Replica>>>>,
    next: AtomicUsize,
}

impl Routing {
    /// The next replica in rotation, and a guard that keeps it from being
    /// drained while the request runs.
    fn pick(&self) -> (Arc<Replica>, OwnedRwLockReadGuard<()>) {
        let slots = self.slots.lock().unwrap();
        for _ in 0..slots.len() {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % slots.len();
            if let Some(replica) = &slots[i] {
                if let Ok(guard) = replica.gate.clone().try_read_owned() {
                    return (replica.clone(), guard);
                }
            }
        }
        panic!("no replica in rotation");
    }

    fn replica(&self, slot: usize) -> Arc<Replica> {
        self.slots.lock().unwrap()[slot]
            .clone()
            .expect("in rotation")
    }

    /// Takes a replica out of rotation: no request is routed to it after this.
    fn take(&self, slot: usize) -> Arc<Replica> {
        self.slots.lock().unwrap()[slot]
            .take()
            .expect("in rotation")
    }

    fn put(&self, slot: usize, replica: Arc<Replica>) {
        self.slots.lock().unwrap()[slot] = Some(replica);
    }
}

struct Shared {
    t0: Instant,
    client: reqwest::Client,
    routing: Routing,
    /// The ids creates were answered 201 with.
    ids: Mutex<Ids>,
    answered: AtomicUsize,
    finished: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    /// Sends one request and records it.
    async fn exchange(&self, planned: Planned, replica: &Replica) -> Event {
        let what = match &planned.body {
            Some(body) => format!("{} {} {body}", planned.method, planned.path),
            None => format!("{} {}", planned.method, planned.path),
        };
        let sent = self.t0.elapsed();
        let outcome = send(
            &self.client,
            &replica.base,
            planned.method,
            &planned.path,
            planned.body.as_ref(),
        )
        .await;
        let answered = self.t0.elapsed();
        replica.answered.fetch_add(1, Ordering::SeqCst);
        self.answered.fetch_add(1, Ordering::SeqCst);
        Event {
            op: planned.op,
            what,
            replica: replica.label.clone(),
            sent,
            answered,
            outcome,
        }
    }
}

/// Polls `done` until it holds, the workers have all finished, or the
/// phase deadline passes; whether it held.
async fn wait_for(shared: &Shared, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + PHASE_DEADLINE;
    while !done() {
        if shared.finished.load(Ordering::SeqCst) == TASKS || Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// One client: random requests to the replicas in rotation.
async fn worker(shared: Arc<Shared>, seed: u64) -> Vec<Event> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut events = Vec::new();
    for _ in 0..MAX_REQUESTS_PER_TASK {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let planned = plan(&mut rng, &shared.ids);
        let (replica, guard) = shared.routing.pick();
        let event = shared.exchange(planned, &replica).await;
        drop(guard);
        shared.ids.lock().unwrap().record(&event);
        events.push(event);
    }
    shared.finished.fetch_add(1, Ordering::SeqCst);
    events
}

const STATUSES: [&str; 4] = ["pending", "processing", "completed", "cancelled"];

/// The contract's transitions, written out here rather than taken from the
/// crate, so that the service is checked against the contract and not
/// against itself.
fn allowed_from(status: &str) -> &'static [&'static str] {
    match status {
        "pending" => &["processing", "cancelled"],
        "processing" => &["completed", "cancelled"],
        _ => &[],
    }
}

/// Whether one change may take an order from `from` to `to` (staying put
/// is a no-op, always allowed).
fn legal(from: &str, to: &str) -> bool {
    from == to || allowed_from(from).contains(&to)
}

/// Whether any number of changes may.
fn reachable(from: &str, to: &str) -> bool {
    legal(from, to) || allowed_from(from).iter().any(|via| legal(via, to))
}

/// What a request asks, kept for the checks.
#[derive(Debug, Clone)]
enum Op {
    Create {
        order_id: String,
        customer_id: String,
        amount: String,
        status: Option<&'static str>,
    },
    SetStatus {
        id: i64,
        to: &'static str,
    },
    Update {
        id: i64,
        customer_id: Option<String>,
        amount: Option<String>,
        status: Option<&'static str>,
    },
    Delete {
        id: i64,
    },
    Get {
        id: i64,
    },
    GetByOrderId {
        order_id: String,
    },
    List,
    Stats,
}

impl Op {
    /// The order a request on `/commandes/{id}…` names.
    fn target(&self) -> Option<i64> {
        match self {
            Op::SetStatus { id, .. }
            | Op::Update { id, .. }
            | Op::Delete { id }
            | Op::Get { id } => Some(*id),
            _ => None,
        }
    }

    /// The statuses the contract allows as an answer.
    fn expected(&self) -> &'static [u16] {
        match self {
            Op::Create { .. } => &[201, 409],
            Op::SetStatus { .. }
            | Op::Update {
                status: Some(_), ..
            } => &[200, 404, 409],
            Op::Update { .. } | Op::Get { .. } | Op::GetByOrderId { .. } => &[200, 404],
            Op::Delete { .. } => &[204, 404],
            Op::List | Op::Stats => &[200],
        }
    }
}

struct Planned {
    op: Op,
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Planned {
    fn new(op: Op, method: Method, path: String, body: Option<Value>) -> Planned {
        Planned {
            op,
            method,
            path,
            body,
        }
    }
}

fn money(cents: i128) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn cents(text: &str) -> Option<i128> {
    let (units, fraction) = text.split_once('.')?;
    if fraction.len() != 2 {
        return None;
    }
    Some(units.parse::<i128>().ok()? * 100 + fraction.parse::<i128>().ok()?)
}

/// An amount as a JSON string or number, both accepted.
fn amount_json(rng: &mut StdRng, amount: &str) -> Value {
    if rng.random_bool(0.5) {
        Value::String(amount.to_string())
    } else {
        serde_json::from_str(amount).unwrap()
    }
}

/// The orders the clients know of.
#[derive(Default)]
struct Ids {
    all: Vec<i64>,
    /// Not yet answered 204 to a deletion.
    live: Vec<i64>,
}

impl Ids {
    fn record(&mut self, event: &Event) {
        if let Some(id) = created_id(event) {
            self.all.push(id);
            self.live.push(id);
        }
        if let (Op::Delete { id }, Some(204)) = (&event.op, event.status()) {
            self.live.retain(|live| live != id);
        }
    }

    /// Mostly a live order, at times a deleted one (which must be 404).
    fn pick(&self, rng: &mut StdRng) -> Option<i64> {
        let from = if self.live.is_empty() || rng.random_bool(0.1) {
            &self.all
        } else {
            &self.live
        };
        (!from.is_empty()).then(|| from[rng.random_range(0..from.len())])
    }
}

/// The next request of a client: creates (order ids from a small pool),
/// status changes (legal or not), updates, deletes and reads.
fn plan(rng: &mut StdRng, ids: &Mutex<Ids>) -> Planned {
    let id = ids.lock().unwrap().pick(rng);
    let roll = rng.random_range(0..100);
    let Some(id) = id.filter(|_| roll >= 24) else {
        let order_id = format!("SO-{:02}", rng.random_range(0..ORDER_IDS));
        let customer_id = format!("CU-{}", rng.random_range(0..CUSTOMERS));
        let amount = money(rng.random_range(0..1_000_000));
        let status = rng
            .random_bool(0.2)
            .then(|| STATUSES[rng.random_range(0..4)]);
        let mut body = json!({
            "order_id": order_id,
            "customer_id": customer_id,
            "total_amount": amount_json(rng, &amount),
        });
        if let Some(status) = status {
            body["status"] = json!(status);
        }
        let op = Op::Create {
            order_id,
            customer_id,
            amount,
            status,
        };
        return Planned::new(op, Method::POST, "/commandes".into(), Some(body));
    };
    match roll {
        24..50 => {
            let to = STATUSES[rng.random_range(0..4)];
            let body = if rng.random_bool(0.5) {
                json!(to)
            } else {
                json!({ "status": to })
            };
            let path = format!("/commandes/{id}/status");
            Planned::new(Op::SetStatus { id, to }, Method::PUT, path, Some(body))
        }
        50..64 => {
            let mut amount = rng
                .random_bool(0.6)
                .then(|| money(rng.random_range(0..1_000_000)));
            let customer_id = rng
                .random_bool(0.6)
                .then(|| format!("CU-{}", rng.random_range(0..CUSTOMERS)));
            let status = rng
                .random_bool(0.25)
                .then(|| STATUSES[rng.random_range(0..4)]);
            if amount.is_none() && customer_id.is_none() {
                amount = Some(money(rng.random_range(0..1_000_000)));
            }
            let mut body = json!({});
            if let Some(a) = &amount {
                body["total_amount"] = amount_json(rng, a);
            }
            if let Some(c) = &customer_id {
                body["customer_id"] = json!(c);
            }
            if let Some(s) = status {
                body["status"] = json!(s);
            }
            let op = Op::Update {
                id,
                customer_id,
                amount,
                status,
            };
            Planned::new(op, Method::PUT, format!("/commandes/{id}"), Some(body))
        }
        64..72 => Planned::new(
            Op::Delete { id },
            Method::DELETE,
            format!("/commandes/{id}"),
            None,
        ),
        72..84 => Planned::new(
            Op::Get { id },
            Method::GET,
            format!("/commandes/{id}"),
            None,
        ),
        84..90 => {
            let order_id = format!("SO-{:02}", rng.random_range(0..ORDER_IDS));
            let path = format!("/commandes/order/{order_id}");
            Planned::new(Op::GetByOrderId { order_id }, Method::GET, path, None)
        }
        90..95 => Planned::new(
            Op::List,
            Method::GET,
            "/commandes?sort=-updated_at&limit=20".into(),
            None,
        ),
        _ => Planned::new(Op::Stats, Method::GET, "/stats".into(), None),
    }
}

/// An answer: its status, media type and body (`Null` when empty, a JSON
/// string when not JSON).
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

/// One request and what came of it; `Err` is a transport failure.
#[derive(Debug, Clone)]
struct Event {
    op: Op,
    what: String,
    replica: String,
    sent: Duration,
    answered: Duration,
    outcome: Result<Answer, String>,
}

impl Event {
    fn status(&self) -> Option<u16> {
        self.outcome.as_ref().ok().map(|a| a.status)
    }

    fn body(&self) -> &Value {
        self.outcome.as_ref().map_or(&Value::Null, |a| &a.body)
    }

    /// No answer, or a 5xx: whatever it asked may or may not have happened.
    fn failed(&self) -> bool {
        self.status().is_none_or(|s| s >= 500)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} to {} at {:.3}–{:.3} s → ",
            self.what,
            self.replica,
            self.sent.as_secs_f64(),
            self.answered.as_secs_f64()
        )?;
        match &self.outcome {
            Ok(a) => {
                let body = a.body.to_string();
                match body.char_indices().nth(400) {
                    Some((cut, _)) => write!(f, "{} {}…]", a.status, &body[..cut]),
                    None => write!(f, "{} {body}]", a.status),
                }
            }
            Err(e) => write!(f, "transport error: {e}]"),
        }
    }
}

/// The id of a 201 answer to a create.
fn created_id(event: &Event) -> Option<i64> {
    match (&event.op, event.status()) {
        (Op::Create { .. }, Some(201)) => event.body()["id"].as_i64(),
        _ => None,
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Answer, String> {
    let mut request = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = response.text().await.map_err(|e| error_chain(&e))?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Answer {
        status,
        content_type,
        body,
    })
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------
// The restart

/// What happened while one replica was replaced.
struct Restart {
    old: String,
    /// From taking the old replica out of rotation to putting the new one in.
    window: (Duration, Duration),
    /// The requests in flight to the old replica when it got SIGTERM.
    in_flight: Vec<Event>,
}

/// Replaces the replica in `slot`: out of rotation, drained,
/// three requests held in flight (each waits for a row this function has
/// locked), SIGTERM, the locks released once the graceful shutdown has
/// begun, exit 0 awaited; then a new process, in rotation once ready.
async fn restart(
    shared: &Arc<Shared>,
    slot: usize,
    mut old: Served,
    sentinels: [i64; 3],
    dir: &Path,
    url: &str,
    violations: &mut Vec<String>,
) -> (Served, Restart) {
    let begin = shared.t0.elapsed();
    let replica = shared.routing.take(slot);
    let label = replica.label.clone();
    // Every request routed there holds the gate: this waits for them.
    let drained = replica.gate.clone().write_owned().await;

    let (mut locker, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let (watcher, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let tx = locker.transaction().await.unwrap();
    let pid: i32 = tx
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    tx.query(
        "select id from commandes where id = any($1) for update",
        &[&sentinels.to_vec()],
    )
    .await
    .unwrap();
    let [s0, s1, s2] = sentinels;
    let requests = [
        Planned::new(
            Op::SetStatus {
                id: s0,
                to: "processing",
            },
            Method::PUT,
            format!("/commandes/{s0}/status"),
            Some(json!("processing")),
        ),
        Planned::new(
            Op::Update {
                id: s1,
                customer_id: None,
                amount: Some("7.77".into()),
                status: None,
            },
            Method::PUT,
            format!("/commandes/{s1}"),
            Some(json!({"total_amount": "7.77"})),
        ),
        Planned::new(
            Op::Delete { id: s2 },
            Method::DELETE,
            format!("/commandes/{s2}"),
            None,
        ),
    ];
    let held: Vec<_> = requests
        .into_iter()
        .map(|planned| {
            let (shared, replica) = (shared.clone(), replica.clone());
            tokio::spawn(async move { shared.exchange(planned, &replica).await })
        })
        .collect();
    // In flight for sure: their transactions wait for our locks.
    let deadline = Instant::now() + PHASE_DEADLINE;
    loop {
        let waiting: i64 = watcher
            .query_one(
                "select count(*) from pg_stat_activity where $1 = any(pg_blocking_pids(pid))",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 3 {
            break;
        }
        if Instant::now() > deadline {
            violations.push(format!(
                "only {waiting} of the 3 held requests reached the database"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    old.sigterm();
    let sigterm = shared.t0.elapsed();
    if !matches!(
        tokio::time::timeout(PHASE_DEADLINE, old.shutdown_started()).await,
        Ok(true)
    ) {
        violations.push(format!(
            "{label} never logged the start of its graceful shutdown"
        ));
    }
    tx.commit().await.unwrap();
    let mut in_flight = Vec::new();
    for (h, expected) in held.into_iter().zip([200, 200, 204]) {
        let event = h.await.unwrap();
        if event.status() != Some(expected) {
            violations.push(format!(
                "a request in flight to {label} when it got SIGTERM did not complete (wanted {expected}): {event}"
            ));
        } else if !(event.sent < sigterm && event.answered > sigterm) {
            violations.push(format!(
                "a held request was not in flight at SIGTERM: {event}"
            ));
        }
        in_flight.push(event);
    }
    let (status, logs) = tokio::task::spawn_blocking(move || old.wait())
        .await
        .unwrap();
    if status.code() != Some(0) {
        violations.push(format!("{label} exited with {status} on SIGTERM"));
    }
    check_logs(&label, &logs, violations);
    drop(drained);

    let (dir, url) = (dir.to_path_buf(), url.to_string());
    let new = tokio::task::spawn_blocking(move || serve_database(&dir, &url))
        .await
        .unwrap();
    if let Err(e) = wait_ready(&shared.client, &new.base()).await {
        violations.push(format!("the new replica never became ready: {e}"));
    }
    shared.routing.put(
        slot,
        Arc::new(Replica::new(format!("{label}-restarted"), new.base())),
    );
    let end = shared.t0.elapsed();
    println!(
        "scale_out: {label} out of rotation at {:.3} s, SIGTERM at {:.3} s, replacement in rotation at {:.3} s",
        begin.as_secs_f64(),
        sigterm.as_secs_f64(),
        end.as_secs_f64()
    );
    let restart = Restart {
        old: label,
        window: (begin, end),
        in_flight,
    };
    (new, restart)
}

/// A later release's expand migration: a nullable column this build does
/// not know, recorded with the next version and declaring that builds of
/// the current one still work with it.
async fn expand_schema(url: &str) {
    let latest = commandes::storage::migrations::latest(commandes::storage::migrations::POSTGRES);
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "begin;
             alter table commandes add column gift_note text;
             insert into commandes_schema_migrations (version, name, compatible_from)
                 values ({}, 'rolling_expand', {latest});
             commit;",
            latest + 1
        ))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
}

/// What the readiness probes of the replicas in rotation answered.
#[derive(Default)]
struct Probes {
    asked: usize,
    /// Every answer but 200, with the replica and when.
    not_ready: Vec<String>,
}

/// Asks `/health/ready` of every replica in rotation every
/// [`PROBE_EVERY`] until the workload stops. Each probe holds the
/// replica's gate like a request, so a replica being drained for its
/// restart is not asked (it is out of rotation, as the load balancer
/// would have it).
async fn probe_readiness(shared: Arc<Shared>) -> Probes {
    let mut probes = Probes::default();
    while !shared.stop.load(Ordering::SeqCst) {
        let replicas: Vec<Arc<Replica>> = shared
            .routing
            .slots
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect();
        for replica in replicas {
            let Ok(_guard) = replica.gate.clone().try_read_owned() else {
                continue;
            };
            let at = shared.t0.elapsed();
            let answer = shared
                .client
                .get(format!("{}/health/ready", replica.base))
                .send()
                .await;
            probes.asked += 1;
            let failure = match answer {
                Ok(r) if r.status() == 200 => continue,
                Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => error_chain(&e),
            };
            probes.not_ready.push(format!(
                "{} not ready at {:.3} s: {failure}",
                replica.label,
                at.as_secs_f64()
            ));
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    probes
}

/// Every replica in rotation stayed ready throughout, the schema change
/// included.
fn check_probes(probes: &Probes, violations: &mut Vec<String>) {
    println!(
        "scale_out: {} readiness probes, {} not 200",
        probes.asked,
        probes.not_ready.len()
    );
    if probes.asked == 0 {
        violations.push("no readiness probe was answered".into());
    }
    violations.extend(probes.not_ready.iter().take(10).cloned());
}

/// Polls `/health/ready` with a short backoff until it answers 200.
async fn wait_ready(client: &reqwest::Client, base: &str) -> Result<(), String> {
    let deadline = Instant::now() + PHASE_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        let last = match client.get(format!("{base}/health/ready")).send().await {
            Ok(r) if r.status() == 200 => return Ok(()),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => error_chain(&e),
        };
        if Instant::now() > deadline {
            return Err(last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A server that logged an error has hidden a failure somewhere.
fn check_logs(who: &str, logs: &str, violations: &mut Vec<String>) {
    for line in logs
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .take(5)
    {
        violations.push(format!("{who} logged an error: {line}"));
    }
}

/// The replicas that stayed up answered every request during the restart.
fn check_restart_window(events: &[Event], restart: &Restart, violations: &mut Vec<String>) {
    let (begin, end) = restart.window;
    let during: Vec<&Event> = events
        .iter()
        .filter(|e| e.replica != restart.old && e.sent < end && e.answered > begin)
        .collect();
    println!(
        "scale_out: {} requests to the other replicas during the restart ({:.3} s)",
        during.len(),
        (end - begin).as_secs_f64()
    );
    if during.is_empty() {
        violations.push("no request reached the other replicas during the restart".into());
    }
    for e in during.iter().filter(|e| e.failed()) {
        violations.push(format!("failed during the restart: {e}"));
    }
}

fn summarise(events: &[Event], took: Duration) {
    let mut per: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut replicas: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        let kind = format!("{:?}", e.op)
            .split([' ', '{'])
            .next()
            .unwrap_or("")
            .to_string();
        let status = e.status().map_or("error".into(), |s| s.to_string());
        *per.entry(kind).or_default().entry(status).or_default() += 1;
        *replicas.entry(e.replica.as_str()).or_default() += 1;
    }
    println!(
        "scale_out: {} requests in {:.2} s ({:.0}/s)",
        events.len(),
        took.as_secs_f64(),
        events.len() as f64 / took.as_secs_f64()
    );
    println!("scale_out: per replica {replicas:?}");
    for (kind, statuses) in per {
        println!("scale_out:   {kind:<12} {statuses:?}");
    }
}

// ---------------------------------------------------------------------------
// The checks

/// An order as one answer showed it.
#[derive(Debug, Clone, PartialEq)]
struct Snap {
    id: i64,
    order_id: String,
    customer_id: String,
    status: String,
    amount: String,
    created_at: String,
    updated_at: DateTime<Utc>,
}

impl Snap {
    fn from_json(v: &Value) -> Option<Snap> {
        Some(Snap {
            id: v["id"].as_i64()?,
            order_id: v["order_id"].as_str()?.into(),
            customer_id: v["customer_id"].as_str()?.into(),
            status: v["status"].as_str()?.into(),
            amount: v["total_amount"].as_str()?.into(),
            created_at: v["created_at"].as_str()?.into(),
            updated_at: DateTime::parse_from_rfc3339(v["updated_at"].as_str()?)
                .ok()?
                .with_timezone(&Utc),
        })
    }

    /// The fields a change may change.
    fn same_content(&self, other: &Snap) -> bool {
        (&self.customer_id, &self.status, &self.amount)
            == (&other.customer_id, &other.status, &other.amount)
    }
}

impl fmt::Display for Snap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {} {} {} {} @{}",
            self.id,
            self.order_id,
            self.status,
            self.amount,
            self.customer_id,
            self.updated_at.format("%H:%M:%S%.6f")
        )
    }
}

/// One state of an order seen in an answer (to event `event`).
struct Seen {
    snap: Snap,
    event: usize,
}

/// What the end state must be, as the acknowledged answers tell it.
struct History {
    /// Each 201's order, by id.
    created: BTreeMap<i64, Snap>,
    /// The ids acknowledged deleted (204).
    deleted: HashSet<i64>,
    /// The latest state of each order the answers showed.
    last: HashMap<i64, Snap>,
}

/// Every check that needs only the recorded answers.
fn check_history(events: &[Event], violations: &mut Vec<String>) -> History {
    let mut seen: HashMap<i64, Vec<Seen>> = HashMap::new();
    let mut created: BTreeMap<i64, (Snap, usize)> = BTreeMap::new();
    let mut deletes: HashMap<i64, Vec<usize>> = HashMap::new();
    let mut uncertain: HashSet<i64> = HashSet::new();

    for (i, e) in events.iter().enumerate() {
        let Some(answer) = e.outcome.as_ref().ok() else {
            violations.push(format!("transport error: {e}"));
            uncertain.extend(e.op.target());
            continue;
        };
        let (status, body) = (answer.status, &answer.body);
        if !e.op.expected().contains(&status) {
            violations.push(format!("unexpected status: {e}"));
            uncertain.extend(e.op.target());
            continue;
        }
        let want_type = match status {
            204 => "",
            200..=299 => "application/json",
            _ => "application/problem+json",
        };
        if !answer.content_type.starts_with(want_type) || (status == 204 && !body.is_null()) {
            violations.push(format!("content type {:?}: {e}", answer.content_type));
        }
        // Every order an answer shows is a state that order had.
        let shown: Vec<&Value> = match (&e.op, status) {
            (Op::Stats, _) => Vec::new(),
            (Op::List, 200) => body.as_array().map_or_else(
                || {
                    violations.push(format!("a list that is not an array: {e}"));
                    Vec::new()
                },
                |list| list.iter().collect(),
            ),
            (_, 200 | 201) => vec![body],
            _ => Vec::new(),
        };
        for v in shown {
            match Snap::from_json(v) {
                Some(snap) => seen
                    .entry(snap.id)
                    .or_default()
                    .push(Seen { snap, event: i }),
                None => violations.push(format!("not an order: {v} in {e}")),
            }
        }
        let differs =
            |field: &str, want: Option<&str>| want.is_some_and(|w| body[field].as_str() != Some(w));
        match (&e.op, status) {
            (
                Op::Create {
                    order_id,
                    customer_id,
                    amount,
                    status: wanted,
                },
                201,
            ) => {
                let Some(snap) = Snap::from_json(body) else {
                    continue;
                };
                if differs("order_id", Some(order_id))
                    || differs("customer_id", Some(customer_id))
                    || differs("total_amount", Some(amount))
                    || differs("status", Some(wanted.unwrap_or("pending")))
                    || body["created_at"] != body["updated_at"]
                {
                    violations.push(format!("a created order is not what was asked: {e}"));
                }
                created.insert(snap.id, (snap, i));
            }
            (Op::Create { order_id, .. }, 409)
                if !body["current_status"].is_null()
                    || !body["detail"]
                        .as_str()
                        .is_some_and(|d| d.contains(order_id.as_str())) =>
            {
                violations.push(format!(
                    "a 409 to a create that is not about its order_id: {e}"
                ));
            }
            (Op::SetStatus { id, to }, 200)
                if body["id"].as_i64() != Some(*id) || differs("status", Some(to)) =>
            {
                violations.push(format!("a status change answered another state: {e}"));
            }
            (
                Op::Update {
                    id,
                    customer_id,
                    amount,
                    status: to,
                },
                200,
            ) if body["id"].as_i64() != Some(*id)
                || differs("customer_id", customer_id.as_deref())
                || differs("total_amount", amount.as_deref())
                || differs("status", *to) =>
            {
                violations.push(format!("an update answered another state: {e}"));
            }
            (Op::SetStatus { to, .. }, 409)
            | (
                Op::Update {
                    status: Some(to), ..
                },
                409,
            ) => {
                let current = body["current_status"].as_str().unwrap_or("");
                let allowed: Vec<&str> = body["allowed_transitions"]
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                if !STATUSES.contains(&current)
                    || legal(current, to)
                    || allowed != allowed_from(current)
                {
                    violations.push(format!("a 409 that the transitions do not explain: {e}"));
                }
            }
            (Op::Delete { id }, 204) => deletes.entry(*id).or_default().push(i),
            (Op::Get { id }, 200) if body["id"].as_i64() != Some(*id) => {
                violations.push(format!("a read answered another order: {e}"));
            }
            (Op::GetByOrderId { order_id }, 200) if differs("order_id", Some(order_id)) => {
                violations.push(format!("a read by order_id answered another order: {e}"));
            }
            (Op::List, 200) => {
                let times: Vec<&str> = body
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o["updated_at"].as_str())
                    .collect();
                if times.windows(2).any(|w| w[0] < w[1]) {
                    violations.push(format!("a list not sorted by -updated_at: {e}"));
                }
            }
            (Op::Stats, 200) => {
                if let Err(why) = stats_consistent(body) {
                    violations.push(format!("inconsistent stats ({why}): {e}"));
                }
            }
            _ => {}
        }
    }

    let mut last = HashMap::new();
    for (id, states) in seen.iter_mut() {
        let uncertain = uncertain.contains(id);
        let Some((first, _)) = created.get(id) else {
            let e = &events[states[0].event];
            violations.push(format!("an order no create was answered 201 for: {e}"));
            continue;
        };
        check_real_time(events, states, violations);
        states.sort_by_key(|s| (s.snap.updated_at, s.event));
        // Two answers with the same updated_at must show the same state.
        for w in states.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if a.snap.updated_at == b.snap.updated_at && a.snap != b.snap {
                violations.push(format!(
                    "two states with one updated_at: {} in {} and {} in {}",
                    a.snap, events[a.event], b.snap, events[b.event]
                ));
            }
        }
        if states[0].snap.updated_at != first.updated_at {
            violations.push(format!(
                "a state older than the order's creation: {} in {}",
                states[0].snap, events[states[0].event]
            ));
        }
        // The distinct states in updated_at order are the order's history:
        // each one a legal step from the one before, and a real change
        // (every change was answered, so none is missing unless a request
        // failed).
        let mut distinct: Vec<&Seen> = states.iter().collect();
        distinct.dedup_by_key(|s| s.snap.updated_at);
        for w in distinct.windows(2) {
            let (a, b) = (w[0], w[1]);
            let step_ok = if uncertain {
                reachable(&a.snap.status, &b.snap.status)
            } else {
                legal(&a.snap.status, &b.snap.status)
            };
            let what = if (&a.snap.order_id, &a.snap.created_at)
                != (&b.snap.order_id, &b.snap.created_at)
            {
                Some("order_id or created_at changed")
            } else if !step_ok {
                Some("an illegal status change")
            } else if !uncertain && a.snap.same_content(&b.snap) {
                Some("a change that changed nothing (a lost update?)")
            } else {
                None
            };
            if let Some(what) = what {
                violations.push(format!(
                    "{what}: {} (from {}) then {} (from {})",
                    a.snap, events[a.event], b.snap, events[b.event]
                ));
            }
        }
        last.insert(*id, distinct.last().unwrap().snap.clone());
    }

    check_deletes(events, &created, &deletes, &seen, violations);
    check_order_ids(events, &created, &deletes, violations);

    History {
        deleted: deletes.keys().copied().collect(),
        created: created
            .into_iter()
            .map(|(id, (snap, _))| (id, snap))
            .collect(),
        last,
    }
}

/// An answer to a request sent after another was answered never shows an
/// older state of the order, whichever replicas gave them.
fn check_real_time(events: &[Event], states: &[Seen], violations: &mut Vec<String>) {
    let mut by_answer: Vec<&Seen> = states.iter().collect();
    by_answer.sort_by_key(|s| events[s.event].answered);
    let mut by_sending: Vec<&Seen> = states.iter().collect();
    by_sending.sort_by_key(|s| events[s.event].sent);
    let mut answered = by_answer.into_iter().peekable();
    // The newest state among the answers received so far.
    let mut newest: Option<&Seen> = None;
    for b in by_sending {
        let sent = events[b.event].sent;
        while let Some(a) = answered.next_if(|a| events[a.event].answered < sent) {
            if newest.is_none_or(|n| a.snap.updated_at > n.snap.updated_at) {
                newest = Some(a);
            }
        }
        if let Some(n) = newest.filter(|n| b.snap.updated_at < n.snap.updated_at) {
            violations.push(format!(
                "a stale state: {} was sent after {} was answered",
                events[b.event], events[n.event]
            ));
        }
    }
}

/// Each order is deleted at most once; after its deletion is answered,
/// every request naming it is 404 and no answer shows it; and a 404 for an
/// order that was created means a deletion had been asked.
fn check_deletes(
    events: &[Event],
    created: &BTreeMap<i64, (Snap, usize)>,
    deletes: &HashMap<i64, Vec<usize>>,
    seen: &HashMap<i64, Vec<Seen>>,
    violations: &mut Vec<String>,
) {
    for (id, list) in deletes {
        if list.len() > 1 {
            violations.push(format!(
                "two deletions of #{id} answered 204: {} and {}",
                events[list[0]], events[list[1]]
            ));
        }
    }
    let delete = |id: i64| deletes.get(&id).map(|l| &events[l[0]]);
    for e in events.iter().filter(|e| !e.failed()) {
        let Some(id) = e.op.target() else { continue };
        if e.status() == Some(404) {
            if created.contains_key(&id) && delete(id).is_none_or(|d| d.sent > e.answered) {
                violations.push(format!("404 for an order that was not deleted: {e}"));
            }
        } else if delete(id).is_some_and(|d| e.sent > d.answered) {
            violations.push(format!("an order answered after its deletion: {e}"));
        }
    }
    for (id, states) in seen {
        let Some(d) = delete(*id) else { continue };
        for s in states.iter().filter(|s| events[s.event].sent > d.answered) {
            violations.push(format!(
                "#{id} shown after its deletion: {}",
                events[s.event]
            ));
        }
    }
}

/// No two orders live at once with one `order_id`; every 409 to a create
/// had a live order with its `order_id` to collide with; a read by
/// `order_id` finds the order that surely lived all along.
fn check_order_ids(
    events: &[Event],
    created: &BTreeMap<i64, (Snap, usize)>,
    deletes: &HashMap<i64, Vec<usize>>,
    violations: &mut Vec<String>,
) {
    // For each order: surely alive from its 201 to its deletion's sending,
    // possibly alive from its create's sending to its 204.
    struct Life {
        id: i64,
        sure: (Duration, Duration),
        maybe: (Duration, Duration),
        create: usize,
    }
    let mut lives: HashMap<&str, Vec<Life>> = HashMap::new();
    for (id, (snap, create)) in created {
        let delete = deletes.get(id).map(|l| &events[l[0]]);
        lives.entry(snap.order_id.as_str()).or_default().push(Life {
            id: *id,
            sure: (
                events[*create].answered,
                delete.map_or(Duration::MAX, |d| d.sent),
            ),
            maybe: (
                events[*create].sent,
                delete.map_or(Duration::MAX, |d| d.answered),
            ),
            create: *create,
        });
    }
    for list in lives.values_mut() {
        list.sort_by_key(|l| l.sure.0);
        let mut longest: Option<&Life> = None;
        for l in list.iter() {
            if let Some(p) = longest.filter(|p| l.sure.0 < p.sure.1) {
                violations.push(format!(
                    "two live orders #{} and #{} share an order_id: {} and {}",
                    p.id, l.id, events[p.create], events[l.create]
                ));
            }
            if longest.is_none_or(|p| l.sure.1 > p.sure.1) {
                longest = Some(l);
            }
        }
    }
    for e in events.iter().filter(|e| !e.failed()) {
        match (&e.op, e.status()) {
            (Op::Create { order_id, .. }, Some(409)) => {
                let collided = lives.get(order_id.as_str()).is_some_and(|l| {
                    l.iter()
                        .any(|l| l.maybe.0 < e.answered && l.maybe.1 > e.sent)
                });
                if !collided {
                    violations.push(format!("a 409 with no live order to collide with: {e}"));
                }
            }
            (Op::GetByOrderId { order_id }, Some(404)) => {
                let alive = lives.get(order_id.as_str()).and_then(|l| {
                    l.iter()
                        .find(|l| l.sure.0 < e.sent && l.sure.1 > e.answered)
                });
                if let Some(l) = alive {
                    violations.push(format!("404 while #{} surely had that order_id: {e}", l.id));
                }
            }
            _ => {}
        }
    }
}

/// A `/stats` body agrees with itself.
fn stats_consistent(s: &Value) -> Result<(), String> {
    let count = |status: &str| s["by_status"][status].as_i64();
    let amount = |status: &str| s["amount_by_status"][status].as_str().and_then(cents);
    let counts: Option<Vec<i64>> = STATUSES.iter().map(|st| count(st)).collect();
    let sums: Option<Vec<i128>> = STATUSES.iter().map(|st| amount(st)).collect();
    let (Some(counts), Some(sums)) = (counts, sums) else {
        return Err("a status is missing".into());
    };
    let total: i64 = counts.iter().sum();
    let sum: i128 = sums.iter().sum();
    if s["total_orders"].as_i64() != Some(total) {
        return Err("total_orders is not the sum of the counts".into());
    }
    if s["total_amount"].as_str() != Some(money(sum).as_str()) {
        return Err("total_amount is not the sum of the amounts".into());
    }
    if s["average_amount"].as_str() != Some(average(sum, total).as_str()) {
        return Err("average_amount is not total_amount / total_orders".into());
    }
    Ok(())
}

/// The mean of non-negative amounts, rounded half away from zero.
fn average(sum: i128, count: i64) -> String {
    if count == 0 {
        return money(0);
    }
    let count = i128::from(count);
    money((2 * sum + count) / (2 * count))
}

/// The end state: every replica's `/stats` is the table's true figures;
/// every acknowledged order that was not deleted is there as its last
/// acknowledged state, every deleted one is gone, and nothing else is.
async fn check_end_state(
    client: &reqwest::Client,
    bases: &[String],
    url: &str,
    history: &History,
    violations: &mut Vec<String>,
) {
    let (db, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);

    let mut truth = json!({
        "total_orders": 0,
        "by_status": {},
        "amount_by_status": {},
    });
    let (mut total, mut sum) = (0i64, 0i128);
    for status in STATUSES {
        truth["by_status"][status] = json!(0);
        truth["amount_by_status"][status] = json!("0.00");
    }
    let rows = db
        .query(
            "select status::text, count(*), sum(total_amount)::text from commandes group by status",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (status, count, amount): (String, i64, String) = (row.get(0), row.get(1), row.get(2));
        truth["by_status"][&status] = json!(count);
        truth["amount_by_status"][&status] = json!(amount);
        total += count;
        sum += cents(&amount).unwrap();
    }
    truth["total_orders"] = json!(total);
    truth["total_amount"] = json!(money(sum));
    truth["average_amount"] = json!(average(sum, total));
    println!("scale_out: the table's figures: {truth}");
    for base in bases {
        let answer = send(client, base, Method::GET, "/stats", None).await;
        // The contract's figures, whatever else the body may carry.
        let figures = |body: &Value| -> Value {
            [
                "total_orders",
                "by_status",
                "amount_by_status",
                "total_amount",
                "average_amount",
            ]
            .iter()
            .map(|k| (k.to_string(), body[k].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
        };
        match answer {
            Ok(a) if a.status == 200 && figures(&a.body) == truth => {}
            Ok(a) => violations.push(format!(
                "/stats on {base} is {} {}, the table says {truth}",
                a.status, a.body
            )),
            Err(e) => violations.push(format!("/stats on {base}: {e}")),
        }
    }

    let rows = db
        .query(
            "select order_id, count(*) from commandes group by order_id having count(*) > 1",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let (order_id, n): (String, i64) = (row.get(0), row.get(1));
        violations.push(format!("{n} rows share order_id {order_id}"));
    }

    let rows = db
        .query(
            "select id, order_id, customer_id, status, total_amount::text, created_at, updated_at
             from commandes order by id",
            &[],
        )
        .await
        .unwrap();
    let mut table = BTreeMap::new();
    for row in rows {
        let created_at: DateTime<Utc> = row.get(5);
        let snap = Snap {
            id: row.get(0),
            order_id: row.get(1),
            customer_id: row.get(2),
            status: row.get(3),
            amount: row.get(4),
            created_at: created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            updated_at: row.get(6),
        };
        table.insert(snap.id, snap);
    }
    for (id, row) in &table {
        if !history.created.contains_key(id) {
            violations.push(format!("a row no create was answered 201 for: {row}"));
        } else if history.deleted.contains(id) {
            violations.push(format!("a row whose deletion was answered 204: {row}"));
        } else if history.last.get(id) != Some(row) {
            let last = history
                .last
                .get(id)
                .map_or("nothing".into(), Snap::to_string);
            violations.push(format!(
                "the row is not the last acknowledged state: {row} in the table, {last} answered"
            ));
        }
    }
    for (i, (id, snap)) in history.created.iter().enumerate() {
        let alive = !history.deleted.contains(id);
        if alive && !table.contains_key(id) {
            violations.push(format!(
                "an acknowledged order is missing from the table: {snap}"
            ));
        }
        // And through the API, spread over the replicas.
        let base = &bases[i % bases.len()];
        let path = format!("/commandes/{id}");
        match send(client, base, Method::GET, &path, None).await {
            Ok(a) if alive && a.status == 200 => {
                if Snap::from_json(&a.body).as_ref() != table.get(id) {
                    violations.push(format!(
                        "GET {path} on {base} is {}, not the table's row",
                        a.body
                    ));
                }
            }
            Ok(a) if !alive && a.status == 404 => {}
            Ok(a) => violations.push(format!(
                "GET {path} on {base} (deleted: {}) is {} {}",
                !alive, a.status, a.body
            )),
            Err(e) => violations.push(format!("GET {path} on {base}: {e}")),
        }
    }
    println!(
        "scale_out: {} orders acknowledged, {} deleted, {} rows left",
        history.created.len(),
        history.deleted.len(),
        table.len()
    );
}
