//! The orders domain: values, rules and parsing, with no I/O.
//!
//! Everything the contract says about a field or a transition is decided
//! here once; the API parses into these types and the stores only ever see
//! valid values.

pub mod actor;
pub mod amount;
pub mod demo;
pub mod event;
pub mod filter;
pub mod generate;
pub mod idempotency;
pub mod order;
pub mod precondition;
pub mod record;
pub mod stats;
pub mod status;
pub mod timeseries;
pub mod validation;

pub use actor::Actor;
pub use amount::{Amount, AmountError};
pub use filter::{ListFilter, ListScope, Sort, SortKey};
pub use idempotency::IdempotencyKey;
pub use order::{
    format_time, now, HistoricalOrder, IllegalTransition, NewOrder, Order, OrderPatch,
};
pub use precondition::Precondition;
pub use record::OrderRecord;
pub use stats::Stats;
pub use status::Status;
pub use validation::{check_text, FieldError, ValidationErrors};
