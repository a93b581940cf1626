//! The one reader of new events per process, shared by every open
//! `GET /events/stream`.
//!
//! It asks the store for what follows its cursor with the feed's own query
//! ([`Store::events_after`]: commit order, numbered only once committed),
//! and broadcasts each page as a [`Batch`] that names the cursor it was
//! read after. Consecutive batches chain (`after` of one is the last
//! sequence of the one before), so a subscriber can tell whether a batch
//! follows what it has sent: if it does, it sends the events above its own
//! position; if not (it joined later, fell behind, or the broadcast
//! dropped batches it was too slow to take), it catches up from the store
//! with the same query. Either way every event goes out once, in order.
//!
//! The reader looks when a change commits in this process (the store's
//! write signal, see [`crate::storage::metered`]) and every
//! `events.stream_poll_ms` for changes made through other replicas. It
//! reads nothing while nobody listens.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};

use crate::domain::event::Event;
use crate::storage::Store;

/// Most events one read (and one batch) holds.
pub const PAGE: u32 = 1000;
/// Batches kept for subscribers that have not taken them yet; one that
/// falls further behind catches up from the store instead. With [`PAGE`]
/// this bounds the memory of all the streams of a process together.
const KEPT_BATCHES: usize = 64;

/// Events read after `after`, in sequence order (never empty).
#[derive(Debug)]
pub struct Batch {
    pub after: i64,
    pub events: Vec<Event>,
}

/// The shared reader and its broadcast.
pub struct Hub {
    store: Arc<dyn Store>,
    batches: broadcast::Sender<Arc<Batch>>,
    /// Raised by local commits and by new subscribers.
    wake: Arc<Notify>,
    poll_every: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.batches.receiver_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over `store`, woken by `written` (raised after each local
    /// change that wrote events) and looking every `poll_every` otherwise.
    /// Nothing runs until [`Hub::run`].
    pub fn new(store: Arc<dyn Store>, written: Arc<Notify>, poll_every: Duration) -> Hub {
        Hub {
            store,
            batches: broadcast::channel(KEPT_BATCHES).0,
            wake: written,
            poll_every,
        }
    }

    /// The store the subscribers catch up from.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Receives the batches read from now on. Subscribe before catching
    /// up from the store, so nothing falls between the two.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        let receiver = self.batches.subscribe();
        // An idle reader starts looking at once.
        self.wake.notify_one();
        receiver
    }

    /// Reads and broadcasts new events until aborted (the app aborts it
    /// once the server has stopped).
    pub async fn run(self: Arc<Self>) {
        // `None`: nobody listened at the last look; the cursor is taken
        // again from the store, rather than reading everything written
        // since (a subscriber catches up by itself).
        let mut cursor: Option<i64> = None;
        let mut failing = false;
        loop {
            if self.batches.receiver_count() == 0 {
                cursor = None;
                self.wake.notified().await;
                continue;
            }
            let mut full = false;
            match self.look(&mut cursor).await {
                Ok(n) => {
                    full = n == PAGE as usize;
                    if failing {
                        tracing::info!("the event stream reads events again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "the event stream cannot read new events; retrying");
                        failing = true;
                    }
                }
            }
            if full {
                continue;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll_every) => {}
                () = self.wake.notified() => {}
            }
        }
    }

    /// One read after the cursor; returns how many events it found.
    async fn look(&self, cursor: &mut Option<i64>) -> Result<usize, crate::storage::StoreError> {
        let after = match *cursor {
            Some(after) => after,
            None => *cursor.insert(self.store.last_event_sequence().await?),
        };
        let events = self.store.events_after(after, PAGE).await?;
        let n = events.len();
        if let Some(last) = events.last().map(|e| e.sequence) {
            *cursor = Some(last);
            // No receiver left is not an error: the next look sees it.
            let _ = self.batches.send(Arc::new(Batch { after, events }));
        }
        Ok(n)
    }
}
