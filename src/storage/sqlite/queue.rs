//! The bounded queues to the writer and reader threads: a full queue
//! refuses at once ([`StoreError::Overloaded`], a 503) rather than making a
//! request wait behind a flood.

use crossbeam_channel::{Sender, TrySendError};

use crate::storage::StoreError;

/// Queues `job`, or refuses at once when the queue is full.
pub(super) fn enqueue<J>(queue: &Sender<J>, job: J, full: &'static str) -> Result<(), StoreError> {
    queue.try_send(job).map_err(|e| match e {
        TrySendError::Full(_) => StoreError::Overloaded(full),
        TrySendError::Disconnected(_) => closed(),
    })
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}
