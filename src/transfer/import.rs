//! `commandes import`: files (or stdin) into the store, in one transaction.
//!
//! A blocking reader thread parses and checks the rows and sends them in
//! batches down a bounded channel; the store stages them as they come
//! ([`Store::import`]), so memory stays flat whatever the file size. The
//! reader decides the verdict: by default one bad row means nothing is
//! written (every problem is listed, up to a cap); with `skip_invalid` the
//! bad rows go to the rejects file and the rest is written.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

use super::format::{self, Fatal, Format, Item, Rejected};
use super::progress::{CountingReader, Progress, Summary};
use crate::domain::now;
use crate::storage::{ImportBatch, ImportOptions, ImportRow, OnConflict, RowProblem, Store};

/// Rows per message on the channel to the store.
pub const BATCH: usize = 1000;
/// Messages the channel holds (so at most this many batches in memory).
const CHANNEL: usize = 8;

/// Where rows come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn parse(text: &str) -> Input {
        if text == "-" {
            Input::Stdin
        } else {
            Input::File(text.into())
        }
    }

    /// How reports name it.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "stdin".into(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct ImportArgs {
    pub inputs: Vec<Input>,
    /// Overrides the extension (and the sniffing of stdin).
    pub format: Option<Format>,
    pub on_conflict: OnConflict,
    pub skip_invalid: bool,
    /// Where rejected rows go (NDJSON, one per line, with the reasons).
    pub rejects: Option<PathBuf>,
    /// The most problems listed.
    pub max_problems: usize,
    /// Ignore the files' `id`s: every row gets a new one.
    pub new_ids: bool,
    pub progress: bool,
    /// Read and check everything, conflicts with the stored orders
    /// included, and write nothing.
    pub dry_run: bool,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub summary: Summary,
    /// Whether anything was written.
    pub committed: bool,
    /// Every problem, one line each: `FILE:LINE: field: message` (a row
    /// with several bad fields has a line for each).
    pub problems: Vec<String>,
    /// Problems found beyond the listed ones (the list is capped).
    pub more_problems: bool,
}

/// Renders a row position as `FILE:LINE`.
fn at(names: &[String], file: u32, line: u64) -> String {
    let name = names.get(file as usize).map_or("?", String::as_str);
    format!("{name}:{line}")
}

/// Renders a problem the store reported.
pub fn render_store_problem(names: &[String], p: &RowProblem) -> String {
    let mut text = match p.at {
        Some((file, line)) => format!("{}: {}: {}", at(names, file, line), p.field, p.message),
        None => format!("{}: {}", p.field, p.message),
    };
    if let Some((file, line)) = p.related {
        text.push_str(&format!(" (at {})", at(names, file, line)));
    }
    text
}

/// One line per bad field of a rejected row.
fn render_rejected<'a>(name: &'a str, r: &'a Rejected) -> impl Iterator<Item = String> + 'a {
    r.errors
        .iter()
        .map(move |e| format!("{name}:{}: {}: {}", r.line, e.field, e.message))
}

/// What the reader thread found.
struct ReadOutcome {
    read: u64,
    rejected: u64,
    problems: Vec<String>,
    more_problems: bool,
    fatal: bool,
}

/// Each input with its open file (`None`: stdin).
type Opened = Vec<(Input, Option<File>)>;

/// Checks that every input can be opened and its format told, without
/// reading any: `import` calls this before it creates or migrates a
/// database, so a missing file leaves none behind.
pub fn check_inputs(args: &ImportArgs) -> anyhow::Result<()> {
    open_inputs(args).map(drop)
}

/// Opens every input first, so a missing file fails before any work; also
/// gives their total size (unknown with stdin).
fn open_inputs(args: &ImportArgs) -> anyhow::Result<(Opened, Option<u64>)> {
    let mut opened = Vec::new();
    let mut total = Some(0u64);
    for input in &args.inputs {
        match input {
            Input::Stdin => {
                total = None;
                opened.push((input.clone(), None));
            }
            Input::File(path) => {
                let file =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                if args.format.is_none() && Format::from_path(path).is_none() {
                    anyhow::bail!(
                        "cannot tell the format of {} from its name: give --format csv|json|ndjson",
                        path.display()
                    );
                }
                let len = file.metadata().map(|m| m.len()).unwrap_or(0);
                total = total.map(|t| t + len);
                opened.push((input.clone(), Some(file)));
            }
        }
    }
    if args.inputs.iter().filter(|i| **i == Input::Stdin).count() > 1 {
        anyhow::bail!("stdin (-) can be read only once");
    }
    Ok((opened, total))
}

/// Imports `args.inputs` into `store`.
pub async fn import(store: &dyn Store, args: &ImportArgs) -> anyhow::Result<ImportReport> {
    let started = Instant::now();
    let (inputs, total) = open_inputs(args)?;
    let names: Vec<String> = args.inputs.iter().map(Input::name).collect();
    let mut rejects = match &args.rejects {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create the rejects file {}", path.display())
        })?)),
        None => None,
    };
    let progress = Progress::start("import", total, args.progress);
    let counters = progress.counters();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let reader_args = args.clone();
    let reader_names = names.clone();
    let reader = tokio::task::spawn_blocking(move || -> anyhow::Result<ReadOutcome> {
        let mut out = ReadOutcome {
            read: 0,
            rejected: 0,
            problems: Vec::new(),
            more_problems: false,
            fatal: false,
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut gone = false;
        for (index, (input, file)) in inputs.into_iter().enumerate() {
            let name = &reader_names[index];
            let mut reader: Box<dyn BufRead> = match file {
                Some(file) => Box::new(BufReader::with_capacity(
                    256 * 1024,
                    CountingReader {
                        inner: file,
                        counters: counters.clone(),
                    },
                )),
                None => Box::new(BufReader::with_capacity(256 * 1024, std::io::stdin())),
            };
            let format = match (reader_args.format, &input) {
                (Some(f), _) => f,
                (None, Input::File(path)) => Format::from_path(path).expect("checked"),
                (None, Input::Stdin) => Format::sniff(&mut reader).context("cannot read stdin")?,
            };
            let mut each = |item: Item| -> bool {
                out.read += 1;
                counters.rows.fetch_add(1, Ordering::Relaxed);
                match item {
                    Item::Record { line, mut record } => {
                        if !out.problems.is_empty() && !reader_args.skip_invalid {
                            return true; // nothing will be written: only check
                        }
                        if reader_args.new_ids {
                            record.id = None;
                        }
                        batch.push(ImportRow {
                            file: index as u32,
                            line,
                            record,
                        });
                        if batch.len() == BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            if tx.blocking_send(ImportBatch::Rows(full)).is_err() {
                                gone = true;
                                return false;
                            }
                        }
                        true
                    }
                    Item::Rejected(r) => {
                        out.rejected += 1;
                        if reader_args.skip_invalid {
                            if let Some(w) = rejects.as_mut() {
                                if write_reject(w, name, &r).is_err() {
                                    out.problems.push("cannot write the rejects file".into());
                                    out.fatal = true;
                                    return false;
                                }
                                return true;
                            }
                        }
                        if out.problems.len() < reader_args.max_problems {
                            out.problems.extend(render_rejected(name, &r));
                            true
                        } else {
                            out.more_problems = true;
                            // The list is full: an atomic import stops here.
                            reader_args.skip_invalid
                        }
                    }
                }
            };
            if let Err(Fatal { line, message }) = format::read(format, reader, &mut each) {
                out.problems.push(format!("{name}:{line}: {message}"));
                out.fatal = true;
                break;
            }
            if gone {
                break;
            }
        }
        if let Some(w) = rejects.as_mut() {
            if w.flush().is_err() {
                out.problems.push("cannot write the rejects file".into());
                out.fatal = true;
            }
        }
        counters.read_all.store(true, Ordering::Relaxed);
        let good = !out.fatal && (reader_args.skip_invalid || out.problems.is_empty());
        if good && !batch.is_empty() {
            let _ = tx.blocking_send(ImportBatch::Rows(batch));
        }
        let _ = tx.blocking_send(match (good, reader_args.dry_run) {
            (true, false) => ImportBatch::Commit,
            (true, true) => ImportBatch::Check,
            (false, _) => ImportBatch::Abort,
        });
        Ok(out)
    });
    let options = ImportOptions {
        on_conflict: args.on_conflict,
        // One more than listed, to know whether there are more.
        max_problems: args.max_problems + 1,
        now: now(),
    };
    let stored = store.import(rx, &options).await;
    let read = reader.await.context("the reader thread failed")??;
    progress.finish();
    let stored = stored.map_err(|e| {
        anyhow::anyhow!(
            "the import failed, nothing was written: {}",
            crate::error_chain::error_chain(&e)
        )
    })?;
    let mut problems = read.problems;
    let mut more_problems = read.more_problems;
    for p in &stored.problems {
        if problems.len() < args.max_problems {
            problems.push(render_store_problem(&names, p));
        } else {
            more_problems = true;
        }
    }
    Ok(ImportReport {
        summary: Summary {
            read: read.read,
            inserted: stored.inserted,
            updated: stored.updated,
            skipped: stored.skipped(),
            rejected: read.rejected,
            elapsed: started.elapsed(),
        },
        committed: stored.committed,
        problems,
        more_problems,
    })
}

/// One line of the rejects file: where, why, and the record as it was.
fn write_reject(w: &mut impl Write, name: &str, r: &Rejected) -> std::io::Result<()> {
    let errors: Vec<serde_json::Value> = r
        .errors
        .iter()
        .map(|e| serde_json::json!({"field": e.field, "message": e.message}))
        .collect();
    let line = serde_json::json!({
        "file": name,
        "line": r.line,
        "errors": errors,
        "record": r.raw,
    });
    serde_json::to_writer(&mut *w, &line)?;
    w.write_all(b"\n")
}

/// Shares the import machinery with `copy` and `generate --to`: sends
/// `rows` (already valid) to the store and commits.
pub async fn import_rows(
    store: &dyn Store,
    rows: impl Iterator<Item = ImportRow> + Send + 'static,
    on_conflict: OnConflict,
    max_problems: usize,
    progress: &Progress,
) -> anyhow::Result<crate::storage::ImportOutcome> {
    let counters = progress.counters();
    let (tx, rx) = mpsc::channel(CHANNEL);
    let feeder = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(BATCH);
        for row in rows {
            batch.push(row);
            counters.rows.fetch_add(1, Ordering::Relaxed);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                if tx.blocking_send(ImportBatch::Rows(full)).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.blocking_send(ImportBatch::Rows(batch));
        }
        counters.read_all.store(true, Ordering::Relaxed);
        let _ = tx.blocking_send(ImportBatch::Commit);
    });
    let options = ImportOptions {
        on_conflict,
        max_problems,
        now: now(),
    };
    let outcome = store.import(rx, &options).await;
    feeder.await.context("the feeder thread failed")?;
    outcome.map_err(|e| {
        anyhow::anyhow!(
            "the import failed, nothing was written: {}",
            crate::error_chain::error_chain(&e)
        )
    })
}
