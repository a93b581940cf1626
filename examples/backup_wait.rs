//! How long do writers wait while a backup of a big SQLite file is taken?
//!
//! Opens the store on DB (made once by `bench/backup.sh`, e.g. 1,000,000
//! generated orders), starts writers that create orders without pause
//! through the library's store (as the server does), and takes backups
//! one after the other: [`commandes::backup::snapshot`] (the online
//! backup API in one step, then sync and `integrity_check`), then, for
//! comparison, `VACUUM INTO`, and the backup API in small steps with
//! pauses. For a quiet window before them and for each method it prints
//! how long it took, and the writes that were in flight meanwhile: how
//! many per second, their median, 99th percentile and longest wait.
//!
//! Usage: cargo run --release --example backup_wait -- DB [WRITERS]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commandes::backup;
use commandes::domain::{Actor, Amount, NewOrder, Status};
use commandes::storage::sqlite::SqliteStore;
use commandes::storage::{Store, StoreOptions};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

/// One write: when it started and how long it took.
type Sample = (Instant, Duration);

/// A way to back up: the database and a scratch folder in, a note out.
type Method = fn(&Path, &Path) -> String;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let db = PathBuf::from(args.next().expect("usage: backup_wait DB [WRITERS]"));
    let writers: usize = args.next().map_or(Ok(4), |w| w.parse())?;
    let out = db.with_extension("backups");
    std::fs::create_dir_all(&out)?;
    // Start from a folded WAL, as a server that has run a while would.
    Connection::open(&db)?.query_row("pragma wal_checkpoint(truncate)", [], |_| Ok(()))?;
    let size = std::fs::metadata(&db)?.len();

    let store = Arc::new(SqliteStore::open_file(&db, &StoreOptions::default()).await?);
    store.migrate().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut samples: Vec<Sample> = Vec::new();
                let run = std::process::id();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let order = NewOrder {
                        order_id: format!("BW{run}-{w}-{n}"),
                        customer_id: format!("BWC{w}"),
                        status: Status::Pending,
                        total_amount: Amount::from_cents(1234).unwrap(),
                    };
                    let started = Instant::now();
                    store.create(&order, None, &Actor::system()).await.unwrap();
                    samples.push((started, started.elapsed()));
                }
                samples
            })
        })
        .collect();

    let mut windows: Vec<(String, Instant, Instant, String)> = Vec::new();
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    windows.push((
        "no backup (10 s)".into(),
        quiet,
        Instant::now(),
        String::new(),
    ));

    let methods: [(&str, Method); 6] = [
        ("backup::snapshot: copy, sync, verify", snapshot),
        ("backup::verify alone", verify_last),
        (
            "copy in 16 MiB steps of one read transaction, each synced",
            flushed_steps,
        ),
        ("copy in one step, then one sync", one_step),
        ("VACUUM INTO, then one sync", vacuum_into),
        ("backup API, 1,000 pages a step, 1 ms pauses", stepped),
    ];
    for (name, method) in methods {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (db, out) = (db.clone(), out.clone());
        let started = Instant::now();
        let note = tokio::task::spawn_blocking(move || method(&db, &out)).await?;
        windows.push((name.into(), started, Instant::now(), note));
    }

    stop.store(true, Ordering::Relaxed);
    let mut samples = Vec::new();
    for t in tasks {
        samples.extend(t.await?);
    }
    store.close().await;

    println!(
        "database: {} ({} MiB), {writers} writers",
        db.display(),
        size / (1024 * 1024)
    );
    println!("| what | took | writes/s | median wait | p99 wait | longest wait | note |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (name, from, to, note) in windows {
        let mut waits: Vec<Duration> = samples
            .iter()
            .filter(|(s, d)| *s < to && *s + *d > from)
            .map(|(_, d)| *d)
            .collect();
        waits.sort();
        let pick = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
        let took = to - from;
        println!(
            "| {name} | {:.1} s | {:.0} | {:.1} ms | {:.1} ms | {:.1} ms | {note} |",
            took.as_secs_f64(),
            waits.len() as f64 / took.as_secs_f64(),
            ms(pick(0.5)),
            ms(pick(0.99)),
            ms(*waits.last().unwrap()),
        );
    }
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn snapshot(db: &Path, out: &Path) -> String {
    let file = backup::snapshot(db, out).unwrap();
    let size = file.info.size / (1024 * 1024);
    format!("{size} MiB, {} orders", file.info.orders)
}

/// Verifies (then removes) the backup `snapshot` left.
fn verify_last(_db: &Path, out: &Path) -> String {
    let last = backup::list(out).unwrap().pop().unwrap();
    let info = backup::verify(&last.path).unwrap();
    std::fs::remove_file(&last.path).unwrap();
    format!("{} orders", info.orders)
}

/// What `backup::snapshot` does before it verifies.
fn flushed_steps(db: &Path, out: &Path) -> String {
    let dest = out.join("steps.db");
    let _ = std::fs::remove_file(&dest);
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut target = Connection::open(&dest).unwrap();
    target.pragma_update(None, "synchronous", "off").unwrap();
    source.execute_batch("begin").unwrap();
    source
        .query_row("select count(*) from sqlite_schema", [], |_| Ok(()))
        .unwrap();
    let backup = Backup::new(&source, &mut target).unwrap();
    let flush = std::fs::File::open(&dest).unwrap();
    while backup.step(4096).unwrap() != StepResult::Done {
        flush.sync_data().unwrap();
    }
    drop(backup);
    source.execute_batch("commit").unwrap();
    drop(target);
    synced(&dest)
}

fn one_step(db: &Path, out: &Path) -> String {
    let dest = out.join("one-step.db");
    let _ = std::fs::remove_file(&dest);
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut target = Connection::open(&dest).unwrap();
    target.pragma_update(None, "synchronous", "off").unwrap();
    let backup = Backup::new(&source, &mut target).unwrap();
    assert_eq!(backup.step(-1).unwrap(), StepResult::Done);
    drop(backup);
    drop(target);
    synced(&dest)
}

/// Syncs, measures and removes the copy at `dest`.
fn synced(dest: &Path) -> String {
    let syncing = Instant::now();
    std::fs::File::open(dest).unwrap().sync_all().unwrap();
    let sync = syncing.elapsed();
    let size = std::fs::metadata(dest).unwrap().len() / (1024 * 1024);
    std::fs::remove_file(dest).unwrap();
    format!("{size} MiB; the last sync took {:.1} s", sync.as_secs_f64())
}

fn vacuum_into(db: &Path, out: &Path) -> String {
    let dest = out.join("vacuum.db");
    let _ = std::fs::remove_file(&dest);
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.execute("vacuum into ?1", [dest.to_str().unwrap()])
        .unwrap();
    synced(&dest)
}

fn stepped(db: &Path, out: &Path) -> String {
    let dest = out.join("stepped.db");
    let _ = std::fs::remove_file(&dest);
    let source = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut target = Connection::open(&dest).unwrap();
    target.pragma_update(None, "synchronous", "off").unwrap();
    let backup = Backup::new(&source, &mut target).unwrap();
    let started = Instant::now();
    let (mut restarts, mut last_remaining) = (0, i32::MAX);
    let note = loop {
        match backup.step(1000).unwrap() {
            StepResult::Done => break "finished".to_string(),
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
        let remaining = backup.progress().remaining;
        if remaining > last_remaining {
            restarts += 1;
        }
        last_remaining = remaining;
        if started.elapsed() > Duration::from_secs(30) {
            break format!(
                "gave up after 30 s: {} of {} pages left",
                remaining,
                backup.progress().pagecount
            );
        }
    };
    drop(backup);
    drop(target);
    let _ = std::fs::remove_file(&dest);
    format!("{note}, restarted {restarts} times by the writers' commits")
}
