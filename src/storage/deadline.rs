//! The statement timeout: a client-side deadline on each store operation.
//!
//! A server-side `statement_timeout` would have to be set per session
//! (which a transaction pooler shares between clients, so `SET` leaks and
//! the startup `options` parameter is refused) or with `SET LOCAL` in every
//! transaction (one more statement each time, and none for the statements
//! that run outside one). A deadline here costs a timer, and it also covers
//! what the server's timeout cannot: a query stuck in a pooler's queue
//! while the database is down, or a connection that went silent.
//!
//! [`bounded`] runs an operation as a [`TimedOperation`]; a backend's connection
//! signs up with the current one ([`current`]) and says what to do on
//! expiry (PostgreSQL: send a cancel request, then close the connection
//! instead of reusing it), or reads its deadline and enforces it
//! where the statement runs (SQLite: a progress handler interrupts it). The
//! caller gets [`StoreError::Unavailable`], a 503.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::StoreError;

tokio::task_local! {
    static CURRENT: Arc<TimedOperation>;
}

/// What an expired operation's connections must do.
type Hook = Box<dyn FnOnce() + Send>;

/// One operation under a deadline.
pub struct TimedOperation {
    until: Instant,
    expired: AtomicBool,
    hooks: Mutex<Vec<Hook>>,
}

impl TimedOperation {
    fn until(until: Instant) -> TimedOperation {
        TimedOperation {
            until,
            expired: AtomicBool::new(false),
            hooks: Mutex::default(),
        }
    }

    /// When the operation's time is up.
    pub fn deadline(&self) -> Instant {
        self.until
    }

    /// Runs `hook` if the deadline passes while the operation runs.
    pub fn on_expiry(&self, hook: Hook) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// Whether the deadline passed (a connection then is not reused).
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::Acquire)
    }

    fn expire(&self) {
        self.expired.store(true, Ordering::Release);
        let hooks = std::mem::take(&mut *self.hooks.lock().unwrap_or_else(|e| e.into_inner()));
        for hook in hooks {
            hook();
        }
    }
}

/// The timed operation running on this task, if any.
pub fn current() -> Option<Arc<TimedOperation>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// Runs `operation`, giving up after `limit` (`None`: no limit).
pub async fn bounded<T>(
    limit: Option<Duration>,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let Some(limit) = limit else {
        return operation.await;
    };
    let timed = Arc::new(TimedOperation::until(Instant::now() + limit));
    let operation = std::pin::pin!(CURRENT.scope(timed.clone(), operation));
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => result,
        Err(_) => {
            // Marked before the operation (and the connections it holds)
            // is dropped, so they see it when they are.
            timed.expire();
            Err(StoreError::Unavailable(format!(
                "no answer within the statement timeout ({} s); cancelled",
                limit.as_secs_f32()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_operation_past_its_deadline_is_unavailable_and_its_hooks_run() {
        let ran = Arc::new(AtomicBool::new(false));
        let seen = ran.clone();
        let r: Result<(), _> = bounded(Some(Duration::from_millis(20)), async move {
            let scope = current().expect("a scope");
            scope.on_expiry(Box::new(move || seen.store(true, Ordering::SeqCst)));
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn an_operation_in_time_is_untouched() {
        let r = bounded(Some(Duration::from_secs(5)), async { Ok(7) }).await;
        assert_eq!(r.unwrap(), 7);
        assert!(current().is_none());
        assert_eq!(bounded(None, async { Ok(1) }).await.unwrap(), 1);
    }
}
