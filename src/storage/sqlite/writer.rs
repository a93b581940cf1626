//! The writer thread, which owns the only writing connection, and its
//! group commit: it takes the jobs waiting at that moment (up to
//! [`MAX_BATCH`]) and commits them in one transaction, so that one `fsync`
//! serves many requests. Each job runs under its own savepoint, so one that
//! fails (or panics) takes only its own changes back; every job is answered
//! only after the commit, with the commit's failure if it failed.

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
}

impl Writer {
    /// Starts the writer thread on `conn`, with room for `queue` waiting
    /// jobs (at least one).
    pub(super) fn spawn(conn: Connection, queue: usize) -> std::io::Result<Writer> {
        let (jobs, queued) = crossbeam_channel::bounded(queue.max(1));
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, queued))?;
        Ok(Writer { jobs })
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

    /// Ends the thread once the jobs queued before have run, which closes
    /// its connection. Blocks while the queue is full.
    pub(super) fn stop(&self) {
        let _ = self.jobs.send(WriteJob::Exit);
    }
}

/// The writer thread: batches the jobs waiting at that moment, and runs an
/// exclusive job alone between two batches.
fn writer_loop(mut conn: Connection, jobs: Receiver<WriteJob>) {
    let mut next: Option<WriteJob> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match jobs.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
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
