//! `commandes copy`: every order from one database to another, ids and
//! timestamps included, then a check that both sides hold the same.
//!
//! The source is read from one snapshot and fed straight into the target's
//! import (one transaction: all or nothing), hashing the canonical NDJSON
//! form on the way. The target is then exported and hashed the same way;
//! the counts and SHA-256 digests of both sides must agree.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::export::{checksum, Hashed};
use super::format::{Format, OrderWriter};
use super::import::render_store_problem;
use super::progress::Progress;
use crate::domain::{now, OrderRecord};
use crate::storage::{ExportFilter, ImportBatch, ImportOptions, ImportRow, OnConflict, Store};

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    pub copied: u64,
    /// Count and SHA-256 of the source's snapshot.
    pub source: (u64, String),
    /// Count and SHA-256 of the target after the copy.
    pub target: (u64, String),
    pub elapsed: Duration,
}

impl CopyReport {
    pub fn verified(&self) -> bool {
        self.source == self.target && self.copied == self.source.0
    }
}

/// Copies every order of `source` into `target`, which is migrated first
/// and must hold no orders.
pub async fn copy(
    source: &dyn Store,
    target: &dyn Store,
    progress: bool,
) -> anyhow::Result<CopyReport> {
    let started = Instant::now();
    let info = source.info().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot query the source: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    if info.schema.version == 0 {
        anyhow::bail!("the source has no orders table (it was never migrated)");
    }
    target.migrate().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot migrate the target: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    let held = target
        .info()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot query the target: {}",
                crate::error_chain::error_chain(&e)
            )
        })?
        .order_count;
    if held > 0 {
        anyhow::bail!(
            "the target already holds {held} orders; copy needs an empty target \
             (to merge, use export and import --on-conflict)"
        );
    }
    let progress = Progress::start("copy", None, progress);
    let counters = progress.counters();
    let (orders_tx, mut orders_rx) = mpsc::channel(4);
    let (rows_tx, rows_rx) = mpsc::channel(8);
    let feed = async move {
        let tee = async move {
            let mut hash = OrderWriter::new(Format::Ndjson, Hashed::default()).expect("in memory");
            let mut line = 0u64;
            while let Some(batch) = orders_rx.recv().await {
                let batch: Vec<crate::domain::Order> = batch;
                let mut rows = Vec::with_capacity(batch.len());
                for o in &batch {
                    hash.write(o).expect("in memory");
                    line += 1;
                    rows.push(ImportRow {
                        file: 0,
                        line,
                        record: OrderRecord::from_order(o),
                    });
                }
                counters
                    .rows
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if rows_tx.send(ImportBatch::Rows(rows)).await.is_err() {
                    break;
                }
            }
            (hash, rows_tx)
        };
        let all = ExportFilter::default();
        let (exported, (hash, rows_tx)) = tokio::join!(source.export(&all, orders_tx), tee);
        let verdict = if exported.is_ok() {
            ImportBatch::Commit
        } else {
            ImportBatch::Abort
        };
        let _ = rows_tx.send(verdict).await;
        (exported, hash.finish().expect("in memory").hex())
    };
    let options = ImportOptions {
        on_conflict: OnConflict::Fail,
        max_problems: 20,
        now: now(),
    };
    let ((exported, source_digest), imported) =
        tokio::join!(feed, target.import(rows_rx, &options));
    progress.finish();
    let exported = exported.map_err(|e| {
        anyhow::anyhow!(
            "cannot read the source: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    let imported = imported.map_err(|e| {
        anyhow::anyhow!(
            "cannot write the target, nothing was written: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    if !imported.committed {
        let names = ["source row".to_string()];
        let problems: Vec<String> = imported
            .problems
            .iter()
            .map(|p| render_store_problem(&names, p))
            .collect();
        anyhow::bail!(
            "the target refused the copy, nothing was written: {}",
            problems.join("; ")
        );
    }
    let target_side = checksum(target).await?;
    Ok(CopyReport {
        copied: imported.inserted,
        source: (exported, source_digest),
        target: target_side,
        elapsed: started.elapsed(),
    })
}
