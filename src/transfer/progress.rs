//! Progress of a long transfer: a bar with rows/s and an ETA on a terminal
//! (indicatif, on stderr), plain periodic log lines otherwise, nothing when
//! switched off.
//!
//! Readers and writers only bump two atomic counters (rows and, where the
//! size is known, bytes); a small thread turns them into the display, so
//! the hot loops never wait for the terminal.

use std::io::{IsTerminal, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The counters a transfer bumps.
#[derive(Debug, Default)]
pub struct Counters {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    /// Every row is read; the database is still writing them.
    pub read_all: AtomicBool,
}

/// A running progress display; [`Progress::finish`] stops it.
pub struct Progress {
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// How often the log lines come when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Progress {
    /// Starts showing `label`'s progress; `total_bytes` gives a bar and an
    /// ETA. With `enabled` false, only counts.
    pub fn start(label: &'static str, total_bytes: Option<u64>, enabled: bool) -> Progress {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = enabled.then(|| {
            let (counters, stop) = (counters.clone(), stop.clone());
            let terminal = std::io::stderr().is_terminal();
            std::thread::spawn(move || {
                if terminal {
                    bar(label, total_bytes, &counters, &stop);
                } else {
                    log_lines(label, total_bytes, &counters, &stop);
                }
            })
        });
        Progress {
            counters,
            stop,
            thread,
        }
    }

    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops the display (the bar is cleared; the caller prints a summary).
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn rate(rows: u64, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (rows as f64 / secs) as u64
    } else {
        0
    }
}

fn bar(label: &'static str, total: Option<u64>, counters: &Counters, stop: &AtomicBool) {
    let started = Instant::now();
    let bar = match total {
        Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] [{wide_bar}] {percent:>3}% {msg} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
                .expect("a valid template"),
        ),
    }
    .with_prefix(label);
    while !stop.load(Ordering::Acquire) {
        let rows = counters.rows.load(Ordering::Relaxed);
        if total.is_some() {
            bar.set_position(counters.bytes.load(Ordering::Relaxed));
        } else {
            bar.tick();
        }
        if counters.read_all.load(Ordering::Relaxed) {
            bar.set_message(format!("{rows} rows read; the database is writing them"));
        } else {
            bar.set_message(format!(
                "{rows} rows, {} rows/s",
                rate(rows, started.elapsed())
            ));
        }
        std::thread::park_timeout(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

fn log_lines(label: &'static str, total: Option<u64>, counters: &Counters, stop: &AtomicBool) {
    let started = Instant::now();
    let mut next = started + LOG_EVERY;
    loop {
        std::thread::park_timeout(Duration::from_millis(200));
        if stop.load(Ordering::Acquire) {
            return;
        }
        if Instant::now() < next {
            continue;
        }
        next += LOG_EVERY;
        let rows = counters.rows.load(Ordering::Relaxed);
        if counters.read_all.load(Ordering::Relaxed) {
            tracing::info!(
                rows,
                "{label}: every row read; the database is writing them"
            );
            continue;
        }
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let rows_per_sec = rate(rows, started.elapsed());
        match total {
            Some(total) if total > 0 => {
                let percent = (bytes as f64 * 100.0 / total as f64).min(100.0);
                tracing::info!(
                    rows,
                    rows_per_sec,
                    percent = format!("{percent:.1}"),
                    "{label} in progress"
                );
            }
            _ => tracing::info!(rows, rows_per_sec, "{label} in progress"),
        }
    }
}

/// A reader that adds what it reads to the byte counter.
pub struct CountingReader<R> {
    pub inner: R,
    pub counters: Arc<Counters>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counters.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The end-of-run figures a command prints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: u64,
    pub inserted: u64,
    pub updated: u64,
    pub skipped: u64,
    pub rejected: u64,
    pub elapsed: Duration,
}

impl Summary {
    pub fn rows_per_sec(&self) -> u64 {
        rate(self.read, self.elapsed)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "read:     {}", self.read)?;
        writeln!(f, "inserted: {}", self.inserted)?;
        writeln!(f, "updated:  {}", self.updated)?;
        writeln!(f, "skipped:  {}", self.skipped)?;
        writeln!(f, "rejected: {}", self.rejected)?;
        write!(
            f,
            "elapsed:  {:.2} s ({} rows/s)",
            self.elapsed.as_secs_f64(),
            self.rows_per_sec()
        )
    }
}
