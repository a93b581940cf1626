//! Backups of the SQLite database (`commandes::backup`), on real files:
//! snapshots under a steady write load, what a `kill -9` in the middle
//! leaves, rotation, the refusals of restore, a restore served over HTTP
//! by the binary, the copy in an S3-compatible bucket, the `backup` and
//! `restore` commands, the server's schedule and the admin API.

mod admin;
mod bucket;
mod cli;
mod consistency;
mod kill;
mod refuse;
mod schedule;
mod served;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commandes::domain::event::Event;
use commandes::domain::{Actor, Amount, NewOrder, Order, Stats, Status};
use commandes::storage::sqlite::SqliteStore;
use commandes::storage::{ExportFilter, Store, StoreOptions};
use rusqlite::Connection;

/// Opens (and migrates) the SQLite store at `path`.
pub async fn open(path: &Path) -> Arc<SqliteStore> {
    let store = SqliteStore::open_file(path, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

/// Closes `store` and waits until its connections are gone (its threads
/// close them after `close` returns).
pub async fn close(store: Arc<SqliteStore>, path: &Path) {
    store.close().await;
    drop(store);
    for _ in 0..500 {
        if alone(path) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store's connections are still open");
}

/// Whether no connection has the database open (SQLite's exclusive lock
/// can be had).
fn alone(path: &Path) -> bool {
    let conn = Connection::open(path).unwrap();
    conn.busy_timeout(Duration::ZERO).unwrap();
    conn.pragma_update(None, "locking_mode", "exclusive")
        .unwrap();
    conn.execute_batch("begin exclusive; commit").is_ok()
}

pub fn new_order(order_id: &str, customer_id: &str, cents: i64) -> NewOrder {
    NewOrder {
        order_id: order_id.into(),
        customer_id: customer_id.into(),
        status: Status::Pending,
        total_amount: Amount::from_cents(cents).unwrap(),
    }
}

/// Creates `n` orders (every third one then moves to `processing`, so
/// orders have histories of more than one event).
pub async fn fill(store: &dyn Store, prefix: &str, n: usize) {
    for i in 0..n {
        let created = store
            .create(
                &new_order(
                    &format!("{prefix}-{i}"),
                    &format!("C{}", i % 7),
                    100 + i as i64,
                ),
                None,
                &Actor::system(),
            )
            .await
            .unwrap();
        if i % 3 == 0 {
            store
                .set_status(created.order.id, Status::Processing, None, &Actor::system())
                .await
                .unwrap();
        }
    }
}

/// Writers that create orders from several tasks without pause, and the
/// `order_id`s acknowledged so far, in the order they were acknowledged.
pub struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(store: Arc<SqliteStore>, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..writers)
            .map(|w| {
                let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let id = format!("W{w}-{n}");
                        let created = store
                            .create(&new_order(&id, &format!("C{w}"), n), None, &Actor::system())
                            .await
                            .unwrap();
                        if n % 4 == 0 {
                            store
                                .set_status(
                                    created.order.id,
                                    Status::Processing,
                                    None,
                                    &Actor::system(),
                                )
                                .await
                                .unwrap();
                        }
                        acked.lock().unwrap().push(id);
                    }
                })
            })
            .collect();
        Load { stop, acked, tasks }
    }

    /// The `order_id`s acknowledged until now.
    pub fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }

    /// Stops the writers; returns every acknowledged `order_id`.
    pub async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

/// Everything a reader of the store can see: the orders, every order's
/// history, the whole event feed and the figures.
#[derive(Debug, PartialEq)]
pub struct State {
    pub orders: Vec<Order>,
    pub histories: HashMap<i64, Vec<Event>>,
    pub feed: Vec<Event>,
    pub stats: Stats,
    pub last_event_sequence: i64,
}

pub async fn state(store: &dyn Store) -> State {
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let all = ExportFilter::default();
    let exporting = store.export(&all, tx);
    let collecting = async {
        let mut all = Vec::new();
        while let Some(batch) = rx.recv().await {
            all.extend(batch);
        }
        all
    };
    let (exported, orders) = tokio::join!(exporting, collecting);
    exported.unwrap();
    let feed = store.events_after(0, 100_000).await.unwrap();
    let mut histories = HashMap::new();
    for id in feed.iter().map(|e| e.event.order_ref) {
        if let std::collections::hash_map::Entry::Vacant(slot) = histories.entry(id) {
            slot.insert(store.history(id, 0, 1000, &Actor::system()).await.unwrap());
        }
    }
    State {
        orders,
        histories,
        feed,
        stats: store.stats(&Actor::system()).await.unwrap(),
        last_event_sequence: store.last_event_sequence().await.unwrap(),
    }
}

/// The names of the files in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
