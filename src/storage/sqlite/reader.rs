//! The reader threads: each owns a read-only connection and takes jobs from
//! one shared, bounded queue. In WAL mode they never wait for the writer.
//!
//! Point reads by key go through them too. Running those inline on the
//! async worker instead (a read-only connection per worker, tried without
//! waiting) was measured and was 5–10 % slower on two cores than the hop
//! here: the worker then does the SQLite work too, while the readers run
//! beside it (BENCHMARKS.md, "SQLite point reads: inline or on a reader").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::interrupt::JobDeadline;
use super::queue::enqueue;
use crate::storage::StoreError;

enum ReadJob {
    Run(Box<dyn FnOnce(&Connection) + Send>),
    Exit,
}

/// The way to the reader threads: their shared queue and how many of them
/// are running a job.
#[derive(Clone)]
pub(super) struct Readers {
    jobs: Sender<ReadJob>,
    count: usize,
    busy: Arc<AtomicUsize>,
    /// Disconnected once every thread has ended and closed its connection
    /// (the threads hold the only senders).
    ended: crossbeam_channel::Receiver<()>,
}

impl Readers {
    /// Starts one reader thread per connection, with room for `queue`
    /// waiting jobs (at least one).
    pub(super) fn spawn(conns: Vec<Connection>, queue: usize) -> std::io::Result<Readers> {
        let (jobs, read_jobs) = crossbeam_channel::bounded(queue.max(1));
        let busy = Arc::new(AtomicUsize::new(0));
        let count = conns.len();
        let (ending, ended) = crossbeam_channel::bounded::<()>(0);
        for (i, conn) in conns.into_iter().enumerate() {
            let (jobs, busy, ending) = (read_jobs.clone(), busy.clone(), ending.clone());
            std::thread::Builder::new()
                .name(format!("sqlite-reader-{i}"))
                .spawn(move || {
                    reader_loop(conn, jobs, busy);
                    // The connection is closed by now.
                    drop(ending);
                })?;
        }
        Ok(Readers {
            jobs,
            count,
            busy,
            ended,
        })
    }

    /// Runs `f` on a reader thread, interrupted past `until` if set.
    pub(super) async fn read<T, F>(&self, until: Option<Instant>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job = ReadJob::Run(Box::new(move |conn| {
            if tx.is_closed() {
                // The caller has gone: its request ended, or its deadline
                // passed and it was answered. Skipped unrun.
                return;
            }
            let _deadline = JobDeadline::set(until);
            let _ = tx.send(f(conn));
        }));
        enqueue(&self.jobs, job, "the SQLite read queue is full")?;
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::backend(std::io::Error::other(
                "a read job failed",
            )))
        })
    }

    /// How many reader threads there are.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// How many of them are running a job now.
    pub(super) fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }

    /// Jobs waiting for a reader.
    pub(super) fn queued(&self) -> usize {
        self.jobs.len()
    }

    /// Ends every reader thread once the jobs queued before have run, which
    /// closes their connections, and waits until they have ended. Blocks
    /// while the queue is full.
    pub(super) fn stop(&self) {
        for _ in 0..self.count {
            let _ = self.jobs.send(ReadJob::Exit);
        }
        let _ = self.ended.recv();
    }
}

/// A reader thread: one read-only connection, jobs from a shared queue.
fn reader_loop(conn: Connection, jobs: Receiver<ReadJob>, busy: Arc<AtomicUsize>) {
    while let Ok(ReadJob::Run(job)) = jobs.recv() {
        busy.fetch_add(1, Ordering::Relaxed);
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn)));
        busy.fetch_sub(1, Ordering::Relaxed);
    }
}
