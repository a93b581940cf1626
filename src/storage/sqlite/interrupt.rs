//! Interrupting a statement that runs past its operation's deadline
//! ([`crate::storage::deadline`]). Each connection gets a progress handler
//! that looks at the deadline of the job running on its thread; a job sets
//! that deadline for as long as it runs ([`JobDeadline`]).

use std::cell::Cell;
use std::time::Instant;

use rusqlite::Connection;

thread_local! {
    /// The deadline of the job running on this thread's connection, if it
    /// has one: the connection's progress handler interrupts a statement
    /// past it.
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Virtual machine steps between two looks at the clock: a point read takes
/// fewer and never looks; a scan looks every few tens of microseconds.
const STEPS_BETWEEN_LOOKS: std::os::raw::c_int = 1000;

/// Makes `conn` interrupt a statement once the deadline of the job running
/// it has passed (`SQLITE_INTERRUPT`: the statement ends, the connection
/// stays usable, and the caller gets [`crate::storage::StoreError::Unavailable`]).
pub(super) fn interrupt_past_deadline(conn: &Connection) {
    conn.progress_handler(
        STEPS_BETWEEN_LOOKS,
        Some(|| DEADLINE.with(|d| d.get().is_some_and(|t| Instant::now() >= t))),
    );
}

/// The deadline of the job running on this thread, until dropped.
pub(super) struct JobDeadline;

impl JobDeadline {
    pub(super) fn set(until: Option<Instant>) -> JobDeadline {
        DEADLINE.with(|d| d.set(until));
        JobDeadline
    }
}

impl Drop for JobDeadline {
    fn drop(&mut self) {
        DEADLINE.with(|d| d.set(None));
    }
}
