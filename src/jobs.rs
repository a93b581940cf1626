//! The server's background jobs, spawned when the app starts serving and
//! aborted when it stops: deleting expired idempotency keys, numbering
//! committed events for the feed, pruning events past their retention,
//! and scheduled backups of a SQLite file. Each runs on its own timer, off
//! the request path, and only logs when a round fails (or, at debug, what
//! it deleted): a failed round is retried at the next tick (a backup,
//! sooner, with a backoff).

use std::sync::Arc;
use std::time::Duration;

use crate::storage::Store;

/// Deletes expired idempotency keys now and then, off the request path: in
/// batches, so no request waits behind one long delete.
pub async fn purge_expired_keys(store: Arc<dyn Store>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        loop {
            match store.purge_expired_keys(crate::domain::now()).await {
                Ok(n) if n >= 1000 => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::debug!(deleted = n, "expired idempotency keys deleted");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete expired idempotency keys");
                    break;
                }
            }
        }
    }
}

/// Gives committed events their sequence numbers in the background
/// (PostgreSQL; the feed's readers also do it before reading), and keeps
/// the pending-events gauge. Finding nothing to do costs one index probe.
pub async fn sequence_events(store: Arc<dyn Store>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let gauge_every = (Duration::from_secs(5).as_millis() / every.as_millis().max(1)).max(1);
    let mut n: u128 = 0;
    loop {
        ticks.tick().await;
        if let Err(e) = store.sequence_events().await {
            tracing::warn!(error = %e, "cannot number the new events");
        }
        if n.is_multiple_of(gauge_every) {
            let _ = store.unsequenced_events().await;
        }
        n += 1;
    }
}

/// Rows one pruning statement deletes at most.
const PURGE_BATCH: u32 = 1000;

/// Deletes events older than the retention, now and then, in small
/// batches with a pause between them, so writers never wait behind it.
/// With a broker relay (`relay` names it), only events it has published go.
pub async fn purge_events(
    store: Arc<dyn Store>,
    retention_days: u64,
    every: Duration,
    relay: Option<String>,
) {
    if retention_days == 0 {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let older_than = crate::domain::now() - chrono::TimeDelta::days(retention_days as i64);
        // An event the relay has not published yet stays (a relay that
        // never ran has published nothing).
        let up_to = match &relay {
            None => None,
            Some(name) => match store.relay_position(name).await {
                Ok(position) => Some(position.unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old events");
                    continue;
                }
            },
        };
        let mut deleted = 0;
        loop {
            match store.purge_events(older_than, up_to, PURGE_BATCH).await {
                Ok(n) => {
                    deleted += n;
                    if n < u64::from(PURGE_BATCH) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot prune old events");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "old events pruned");
        }
    }
}

/// The longest wait before a failed backup is tried again (or the
/// interval, if shorter): a failure is retried sooner than the next
/// scheduled one, backing off from a few seconds.
const BACKUP_RETRY_AT_MOST: Duration = Duration::from_secs(15 * 60);

/// Takes a backup every `every` (the first one `every` after start-up),
/// until `stop` turns true: a backup running then is finished first (so
/// the bucket never holds more than `keep`), within the server's
/// shutdown deadline.
/// A failure is logged (the error names files and the bucket's verdict,
/// never a credential) and counted, and the backup is tried again after a
/// backoff of 5 s, 10 s, 20 s, … (at most the interval, at most 15
/// minutes); it never stops the service. A backup asked for through the
/// API meanwhile makes a tick skip.
pub async fn take_backups(
    backups: Arc<crate::backup::Backups>,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use crate::backup::{Error, TakeError};
    // The counter shows (as 0) before the first failure, so an alert on
    // its rate has a series to watch.
    metrics::counter!(crate::prometheus::BACKUP_FAILURES).increment(0);
    let mut wait = every;
    let mut failures: u32 = 0;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match backups.take().await {
            Ok(taken) => {
                failures = 0;
                tracing::info!(
                    backup = %taken.file.name,
                    size = taken.file.info.size,
                    orders = taken.file.info.orders,
                    uploaded = taken.uploaded.is_some(),
                    deleted = taken.deleted.len() + taken.deleted_remote.len(),
                    "backup taken"
                );
                wait = every;
            }
            Err(TakeError::Backup(Error::Busy(_))) => {
                tracing::info!("a backup is already running; this one is skipped");
                wait = every;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let backoff = Duration::from_secs(5)
                    .saturating_mul(1 << failures.min(12).saturating_sub(1))
                    .min(BACKUP_RETRY_AT_MOST)
                    .min(every);
                tracing::warn!(
                    error = %crate::error_chain::distinct_chain(&e),
                    failures,
                    retry_in_ms = crate::log_text::millis(backoff),
                    "the backup failed"
                );
                wait = backoff;
            }
        }
    }
}
