//! The standard `process_*` metrics, named and described as Prometheus's
//! client libraries write them (so the usual dashboards and alerts work):
//! CPU time, resident and virtual memory, open and allowed file
//! descriptors, start time. Read from `/proc/self` at each scrape, on
//! Linux only; elsewhere, or if `/proc` cannot be read, they are absent
//! rather than zero.
//!
//! They are written as text after the recorder's output rather than
//! through the `metrics` crate, whose counters are integers: CPU time is
//! fractional seconds.

use std::fmt::Write;

/// The kernel's clock tick as `/proc` reports times (`USER_HZ`): 100 on
/// every architecture Linux exposes to user space but Alpha (as
/// Prometheus's own procfs library assumes; asking `sysconf` would need
/// unsafe code).
const TICKS_PER_SECOND: f64 = 100.0;

/// One scrape's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft limit; `None` when unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
}

/// The metrics in Prometheus text format, with HELP and TYPE; empty where
/// they cannot be read.
pub fn render() -> String {
    read().map(|f| text(&f)).unwrap_or_default()
}

/// The figures of this process, from `/proc/self`.
#[cfg(target_os = "linux")]
pub fn read() -> Option<Figures> {
    let proc = |path: &str| std::fs::read_to_string(path).ok();
    let stat = parse_stat(&proc("/proc/self/stat")?)?;
    let boot = boot_time(&proc("/proc/stat")?)?;
    Some(Figures {
        cpu_seconds: stat.cpu_ticks as f64 / TICKS_PER_SECOND,
        resident_bytes: resident_bytes(&proc("/proc/self/status")?)?,
        virtual_bytes: stat.virtual_bytes,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        max_fds: proc("/proc/self/limits").and_then(|l| max_open_files(&l)),
        start_time_seconds: boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND,
    })
}

/// Not Linux: no `/proc` to read.
#[cfg(not(target_os = "linux"))]
pub fn read() -> Option<Figures> {
    None
}

fn text(f: &Figures) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        f.cpu_seconds.to_string(),
    );
    metric(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        f.resident_bytes.to_string(),
    );
    metric(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        f.virtual_bytes.to_string(),
    );
    metric(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        f.open_fds.to_string(),
    );
    if let Some(max) = f.max_fds {
        metric(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            max.to_string(),
        );
    }
    metric(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        f.start_time_seconds.to_string(),
    );
    out
}

/// What `/proc/self/stat` says: CPU ticks (user and system), the start
/// time in ticks after boot, the virtual memory size.
#[derive(Debug, PartialEq)]
struct Stat {
    cpu_ticks: u64,
    start_ticks: u64,
    virtual_bytes: u64,
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: count fields from the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        cpu_ticks: field(14)? + field(15)?,
        start_ticks: field(22)?,
        virtual_bytes: field(23)?,
    })
}

/// `btime` of `/proc/stat`: when the machine booted, in Unix seconds.
fn boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status` (in kB there), in bytes.
fn resident_bytes(text: &str) -> Option<u64> {
    let line = text.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_open_files(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 2466 0 0 0 \
                    153 47 0 0 20 0 9 0 98765 1234567168 2345 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                cpu_ticks: 200,
                start_ticks: 98765,
                virtual_bytes: 1_234_567_168
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1765000000\n"),
            Some(1_765_000_000)
        );
        assert_eq!(
            resident_bytes("Name:\tcommandes\nVmRSS:\t   10240 kB\n"),
            Some(10_485_760)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let f = read().expect("/proc is readable");
        assert!(f.resident_bytes > 0 && f.virtual_bytes >= f.resident_bytes);
        assert!(f.open_fds >= 3);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(f.start_time_seconds <= now + 1.0 && f.start_time_seconds > now - 86_400.0);
        let text = render();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(text.contains("\nprocess_open_fds "));
    }
}
