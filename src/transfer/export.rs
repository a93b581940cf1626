//! `commandes export`: orders out of the store as CSV, JSON or NDJSON.
//!
//! The store streams batches from one snapshot ([`Store::export`]) down a
//! bounded channel while a blocking thread formats them, so fetching and
//! writing overlap and memory stays flat. A file is written under a
//! temporary name and renamed when complete: a failed export never leaves
//! a half file that looks whole.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::format::{Format, OrderWriter};
use super::progress::{Counters, Progress};
use crate::domain::Order;
use crate::storage::{ExportFilter, Store};

/// Batches the channel holds.
const CHANNEL: usize = 4;

/// What to export, and where.
#[derive(Debug, Clone)]
pub struct ExportArgs {
    pub format: Format,
    /// `None`: stdout.
    pub output: Option<PathBuf>,
    pub filter: ExportFilter,
    pub progress: bool,
}

/// What an export did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub rows: u64,
    pub elapsed: Duration,
}

/// Streams `store`'s orders through `each` on a blocking thread, a batch
/// at a time, then `finish`es the state; returns how many the store sent
/// and what `finish` gave.
pub async fn stream<S: Send + 'static, T: Send + 'static>(
    store: &dyn Store,
    filter: &ExportFilter,
    mut state: S,
    mut each: impl FnMut(&mut S, &[Order]) -> std::io::Result<()> + Send + 'static,
    finish: impl FnOnce(S) -> std::io::Result<T> + Send + 'static,
) -> anyhow::Result<(u64, T)> {
    let (tx, mut rx) = mpsc::channel::<Vec<Order>>(CHANNEL);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<T> {
        while let Some(batch) = rx.blocking_recv() {
            each(&mut state, &batch)?;
        }
        finish(state)
    });
    let exported = store.export(filter, tx).await;
    let written = writer.await.context("the writer thread failed")?;
    let rows = exported.map_err(|e| {
        anyhow::anyhow!(
            "cannot read the orders: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    let out = written.context("cannot write the export")?;
    Ok((rows, out))
}

/// The temporary name a file is written under.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Exports `store`'s orders as `args` says.
pub async fn export(store: &dyn Store, args: &ExportArgs) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    let progress = Progress::start("export", None, args.progress);
    let counters = progress.counters();
    let out: Box<dyn Write + Send> = match &args.output {
        Some(path) => Box::new(
            File::create(partial(path))
                .with_context(|| format!("cannot create {}", partial(path).display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let writer = OrderWriter::new(args.format, BufWriter::with_capacity(256 * 1024, out))
        .context("cannot write the export")?;
    let result = stream(
        store,
        &args.filter,
        (writer, counters),
        |(writer, counters): &mut (_, std::sync::Arc<Counters>), batch| {
            for o in batch {
                writer.write(o)?;
            }
            counters
                .rows
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            Ok(())
        },
        |(writer, _)| writer.finish()?.flush(),
    )
    .await;
    progress.finish();
    match (&result, &args.output) {
        (Ok(_), Some(path)) => std::fs::rename(partial(path), path)
            .with_context(|| format!("cannot rename the export to {}", path.display()))?,
        (Err(_), Some(path)) => {
            let _ = std::fs::remove_file(partial(path));
        }
        _ => {}
    }
    let (rows, ()) = result?;
    Ok(ExportReport {
        rows,
        elapsed: started.elapsed(),
    })
}

/// The count and SHA-256 of a store's canonical export: NDJSON, every
/// order, by id. The same digest as `commandes export --format ndjson |
/// sha256sum`.
pub async fn checksum(store: &dyn Store) -> anyhow::Result<(u64, String)> {
    let writer = OrderWriter::new(Format::Ndjson, Hashed::default()).expect("in memory");
    let (rows, digest) = stream(
        store,
        &ExportFilter::default(),
        writer,
        |writer, batch| batch.iter().try_for_each(|o| writer.write(o)),
        |writer| Ok(writer.finish()?.hex()),
    )
    .await?;
    Ok((rows, digest))
}

/// A `Write` that only hashes.
#[derive(Default)]
pub struct Hashed(Sha256);

impl Hashed {
    pub fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Write for Hashed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
