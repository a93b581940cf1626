//! `commandes generate`: the synthetic data set of [`crate::domain::generate`],
//! written as a file (or stdout) or straight into a database.

use std::io::Write;

use super::format::{Format, OrderWriter};
use super::import::import_rows;
use super::progress::Progress;
use crate::domain::generate::{Generator, Spec};
use crate::domain::OrderRecord;
use crate::storage::{ImportOutcome, ImportRow, OnConflict, Store};

/// Writes the orders of `spec` to `out` in `format`; returns how many.
pub fn write(spec: Spec, format: Format, out: impl Write) -> std::io::Result<u64> {
    let mut writer = OrderWriter::new(format, out)?;
    for order in Generator::new(spec) {
        writer.write(&order)?;
    }
    let written = writer.written();
    writer.finish()?.flush()?;
    Ok(written)
}

/// Imports the orders of `spec` into `store`, in one transaction.
pub async fn into_store(
    store: &dyn Store,
    spec: Spec,
    on_conflict: OnConflict,
    progress: bool,
) -> anyhow::Result<ImportOutcome> {
    let progress = Progress::start("generate", None, progress);
    let rows = Generator::new(spec).enumerate().map(|(i, o)| ImportRow {
        file: 0,
        line: i as u64 + 1,
        record: OrderRecord::from_order(&o),
    });
    let outcome = import_rows(store, rows, on_conflict, 20, &progress).await;
    progress.finish();
    outcome
}
