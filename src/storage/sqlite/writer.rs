//! The writer thread, which owns the only writing connection, and its
//! group commit: it takes the jobs waiting at that moment (up to
//! [`MAX_BATCH`]) and commits them in one transaction, so that one `fsync`
//! serves many requests. Each job runs under its own savepoint, so one that
//! fails (or panics) takes only its own changes back; every job is answered
//! only after the commit, with the commit's failure if it failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::errors::describe;
use super::queue::enqueue;
use crate::storage::StoreError;

/// Most writes committed together.
const MAX_BATCH: usize = 128;

/// Work for the writer thread.
enum WriteJob {
    /// Runs inside the current batch's transaction, under its own
    /// savepoint, and is answered once that transaction has committed.
    Batched(Box<dyn FnOnce(&Connection) -> Delivery + Send>),
    /// Runs alone with the connection (migrations manage their own
    /// transaction).
    Exclusive(Box<dyn FnOnce(&mut Connection) + Send>),
    Exit,
}

/// What a batched job leaves behind: whether its changes are kept, and how
/// to answer it once the commit's outcome is known.
struct Delivery {
    keep: bool,
    answer: Answer,
}

/// Answers a job with the commit's failure, if it failed.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

type BatchedJob = Box<dyn FnOnce(&Connection) -> Delivery + Send>;

/// The way to the writer thread: a bounded queue of jobs.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: Sender<WriteJob>,
    /// Disconnected once the thread has ended and closed its connection
    /// (the thread holds the only sender).
    ended: crossbeam_channel::Receiver<()>,
    /// Whether the thread is running a job now (for the pool metrics).
    busy: Arc<AtomicBool>,
}

impl Writer {
    /// Starts the writer thread on `conn`, with room for `queue` waiting
    /// jobs (at least one).
    pub(super) fn spawn(conn: Connection, queue: usize) -> std::io::Result<Writer> {
        let (jobs, queued) = crossbeam_channel::bounded(queue.max(1));
        let (ending, ended) = crossbeam_channel::bounded::<()>(0);
        let busy = Arc::new(AtomicBool::new(false));
        let working = busy.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer_loop(conn, queued, &working);
                // The connection is closed by now.
                drop(ending);
            })?;
        Ok(Writer { jobs, ended, busy })
    }

    /// Runs `f` on the writer thread inside a group-committed transaction;
    /// the answer comes once that transaction has committed (or with the
    /// reason it could not).
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = WriteJob::Batched(Box::new(move |conn| {
            if tx.is_closed() {
                // The caller has gone (its request ended, or its deadline
                // passed and it was answered 503): nobody is told of this
                // write, so it is not made.
                return Delivery {
                    keep: false,
                    answer: Box::new(|_| {}),
                };
            }
            let result = f(conn);
            Delivery {
                keep: result.is_ok(),
                answer: Box::new(move |failure| {
                    let _ = tx.send(match failure {
                        Some(reason) => {
                            result.and(Err(StoreError::Unavailable(reason.to_string())))
                        }
                        None => result,
                    });
                }),
            }
        }));
        enqueue(&self.jobs, job, "the SQLite write queue is full")?;
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the write could not be started".into(),
            ))
        })
    }

    /// Runs `f` alone on the writer thread, outside any batch.
    pub(super) async fn write_exclusive<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = WriteJob::Exclusive(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        enqueue(&self.jobs, job, "the SQLite write queue is full")?;
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the write failed".into())))
    }

    /// Jobs waiting for the writer.
    pub(super) fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the writer is running a job now.
    pub(super) fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Ends the thread once the jobs queued before have run, which closes
    /// its connection, and waits until it has ended (so that, once this
    /// returns, nothing of this store has the file open: a restore may
    /// begin). Blocks while the queue is full.
    pub(super) fn stop(&self) {
        let _ = self.jobs.send(WriteJob::Exit);
        let _ = self.ended.recv();
    }
}

/// The writer thread: batches the jobs waiting at that moment, and runs an
/// exclusive job alone between two batches.
fn writer_loop(mut conn: Connection, jobs: Receiver<WriteJob>, busy: &AtomicBool) {
    let mut next: Option<WriteJob> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => {
                busy.store(false, Ordering::Relaxed);
                match jobs.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            }
        };
        busy.store(true, Ordering::Relaxed);
        match job {
            WriteJob::Exit => return,
            WriteJob::Exclusive(f) => f(&mut conn),
            WriteJob::Batched(first) => {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(WriteJob::Batched(job)) => batch.push(job),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                run_batch(&conn, batch);
            }
        }
    }
}

fn run_batch(conn: &Connection, batch: Vec<BatchedJob>) {
    if let Err(e) = conn.execute_batch("begin immediate") {
        // The jobs are dropped unrun: each request then learns that its
        // write could not be started (503), and nothing was written.
        tracing::warn!(reason = %describe(&e), "cannot start a SQLite write transaction");
        drop(batch);
        return;
    }
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        let savepoint = conn.execute_batch("savepoint job");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn)));
        let keep = matches!(&outcome, Ok(d) if d.keep) && savepoint.is_ok();
        let _ = if keep {
            conn.execute_batch("release job")
        } else {
            conn.execute_batch("rollback to job; release job")
        };
        match outcome {
            Ok(delivery) => answers.push(delivery.answer),
            Err(_) => tracing::error!("a SQLite write job panicked; its changes were rolled back"),
        }
    }
    let failure = conn.execute_batch("commit").err().map(|e| {
        let _ = conn.execute_batch("rollback");
        describe(&e)
    });
    for answer in answers {
        answer(failure.as_deref());
    }
}

/// Occupies `writer`'s thread with a job that ends when the returned sender
/// sends (or is dropped), so that a test can queue jobs behind it; the
/// handle answers that job.
#[cfg(test)]
pub(super) async fn hold(
    writer: &Writer,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<Result<(), StoreError>>,
) {
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = oneshot::channel::<()>();
    let holding = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .write_exclusive(move |_| {
                    let _ = started.send(());
                    let _ = held.recv();
                    Ok(())
                })
                .await
        }
    });
    running.await.expect("the writer thread runs");
    (release, holding)
}

#[cfg(test)]
mod tests {
    //! The writer driven directly: batches are made by holding the writer
    //! with an exclusive job until every job of the batch is queued, and
    //! what was committed is read through a second connection.

    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::domain::{event, now, Actor, Amount, NewOrder, Status};
    use crate::storage::migrations;
    use crate::storage::sqlite::connection::open_writer;
    use crate::storage::sqlite::errors::map_error;
    use crate::storage::sqlite::events::insert_events;
    use crate::storage::sqlite::migrate::apply_migrations;
    use crate::storage::sqlite::queries::insert;
    use crate::storage::StoreOptions;

    type Job = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

    /// A writer on a new, migrated file; the file's path.
    fn writer(dir: &tempfile::TempDir) -> (Writer, PathBuf) {
        let path = dir.path().join("writer.db");
        let mut conn = open_writer(&path, &StoreOptions::default()).unwrap();
        apply_migrations(&mut conn, migrations::SQLITE).unwrap();
        (Writer::spawn(conn, 16).unwrap(), path)
    }

    async fn until(mut done: impl FnMut() -> bool) {
        while !done() {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Runs `jobs`, in this order, in one batch, and returns what each
    /// caller was answered.
    async fn in_one_batch(writer: &Writer, jobs: Vec<Job>) -> Vec<Result<(), StoreError>> {
        let (release, holding) = hold(writer).await;
        let mut callers = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            let caller = writer.clone();
            callers.push(tokio::spawn(async move { caller.write(job).await }));
            // One at a time, so that the queue holds them in order.
            until(|| writer.queued() == i + 1).await;
        }
        // The writer takes the first waiting job and every one queued
        // behind it (up to MAX_BATCH) into one transaction.
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        let mut answers = Vec::new();
        for caller in callers {
            answers.push(caller.await.unwrap());
        }
        answers
    }

    /// Creates the order `order_id` and its event, as `Store::create` does.
    fn create(conn: &Connection, order_id: &str) -> Result<(), StoreError> {
        let order = NewOrder {
            order_id: order_id.into(),
            customer_id: "C".into(),
            status: Status::Pending,
            total_amount: Amount::from_cents(100).unwrap(),
        };
        let t = now();
        let order = insert(conn, &order, &t, &t)?;
        insert_events(conn, &[event::created(&order, &Actor::system())])
    }

    /// The committed orders and the events' (sequence, order id), as
    /// another connection sees them.
    fn committed(path: &Path) -> (Vec<String>, Vec<(i64, String)>) {
        let conn = Connection::open(path).unwrap();
        let orders = conn
            .prepare("select order_id from commandes order by id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let events = conn
            .prepare("select sequence, order_id from commandes_events order by sequence")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        (orders, events)
    }

    /// Orders "A" and "C" around a job "B" that creates its order and event
    /// and then breaks a unique constraint: B's savepoint is rolled back,
    /// and A and C are committed with the same transaction and answered Ok.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_only_its_own_savepoint() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(&dir);
        // What another connection sees while the last job runs: nothing
        // yet, if the three jobs share one transaction.
        let seen_by_last = Arc::new(Mutex::new(None));
        let seen = seen_by_last.clone();
        let observed = path.clone();
        let answers = in_one_batch(
            &writer,
            vec![
                Box::new(|conn: &Connection| create(conn, "A")),
                Box::new(|conn: &Connection| {
                    create(conn, "B")?;
                    conn.execute(
                        "update commandes set order_id = 'A' where order_id = 'B'",
                        [],
                    )
                    .map_err(map_error)?;
                    Ok(())
                }),
                Box::new(move |conn: &Connection| {
                    *seen.lock().unwrap() = Some(committed(&observed));
                    create(conn, "C")
                }),
            ],
        )
        .await;

        assert!(answers[0].is_ok(), "{:?}", answers[0]);
        assert!(
            matches!(&answers[1], Err(StoreError::Backend(e)) if e.to_string().contains("UNIQUE")),
            "{:?}",
            answers[1]
        );
        assert!(answers[2].is_ok(), "{:?}", answers[2]);
        assert_eq!(
            seen_by_last.lock().unwrap().take(),
            Some((vec![], vec![])),
            "the jobs did not run in one transaction"
        );
        let (orders, events) = committed(&path);
        assert_eq!(orders, ["A", "C"]);
        assert_eq!(events, [(1, "A".into()), (2, "C".into())]);
    }

    /// A job that returns an error after writing, and one that panics after
    /// writing, leave no row and no event; their sequence numbers are given
    /// again to the next event, so the committed numbers have no gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_leaves_no_row_and_no_event() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(&dir);
        let answers = in_one_batch(
            &writer,
            vec![
                Box::new(|conn: &Connection| create(conn, "A")),
                Box::new(|conn: &Connection| {
                    create(conn, "FAILS")?;
                    Err(StoreError::IdempotencyMismatch)
                }),
                Box::new(|conn: &Connection| {
                    create(conn, "PANICS")?;
                    panic!("a job that panics after writing");
                }),
                Box::new(|conn: &Connection| create(conn, "C")),
            ],
        )
        .await;

        assert!(answers[0].is_ok(), "{:?}", answers[0]);
        assert!(
            matches!(answers[1], Err(StoreError::IdempotencyMismatch)),
            "{:?}",
            answers[1]
        );
        assert!(
            matches!(&answers[2], Err(StoreError::Unavailable(_))),
            "{:?}",
            answers[2]
        );
        assert!(answers[3].is_ok(), "{:?}", answers[3]);
        let (orders, events) = committed(&path);
        assert_eq!(orders, ["A", "C"]);
        assert_eq!(events, [(1, "A".into()), (2, "C".into())]);
    }

    /// A deferred foreign key is checked only by COMMIT, so a job that
    /// breaks one succeeds and the commit of its batch fails: every caller
    /// is told so, nothing of the batch is kept, and the writer goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_the_commit_fails_every_caller_gets_an_error_and_nothing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, path) = writer(&dir);
        writer
            .write_exclusive(|conn| {
                conn.execute_batch(
                    "create table parents (id integer primary key);
                     create table children (
                         parent integer not null
                             references parents (id) deferrable initially deferred
                     );",
                )
                .map_err(map_error)
            })
            .await
            .unwrap();

        let answers = in_one_batch(
            &writer,
            vec![
                Box::new(|conn: &Connection| create(conn, "A")),
                Box::new(|conn: &Connection| {
                    conn.execute("insert into children (parent) values (42)", [])
                        .map_err(map_error)?;
                    Ok(())
                }),
                Box::new(|conn: &Connection| create(conn, "C")),
            ],
        )
        .await;

        for answer in &answers {
            assert!(
                matches!(answer, Err(StoreError::Unavailable(reason)) if reason.contains("FOREIGN KEY")),
                "{answers:?}"
            );
        }
        assert_eq!(committed(&path), (vec![], vec![]));
        let children: i64 = Connection::open(&path)
            .unwrap()
            .query_row("select count(*) from children", [], |r| r.get(0))
            .unwrap();
        assert_eq!(children, 0);
        // The failed transaction was rolled back: the next batch commits.
        writer.write(|conn| create(conn, "D")).await.unwrap();
        assert_eq!(committed(&path).0, ["D"]);
    }
}
