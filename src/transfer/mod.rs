//! Data in and out: `import`, `export`, `copy` and `generate`.
//!
//! Everything streams: files are read and written a record at a time, rows
//! travel to and from the store in bounded batches, so memory stays flat at
//! any size. Every row read goes through the domain's one record parser
//! ([`crate::domain::record`]), the same rules as the API. The SQL lives in
//! the backends ([`crate::storage::Store::import`] and
//! [`crate::storage::Store::export`]); this module is formats, plumbing,
//! progress and reports.

pub mod copy;
pub mod export;
pub mod format;
pub mod generate;
pub mod import;
pub mod progress;

pub use format::Format;
