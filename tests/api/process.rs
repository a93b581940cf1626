//! The binary as a child process: a clean environment, `serve` on a free
//! port read back from its JSON logs, and SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// The binary under test: `COMMANDES_TEST_BINARY` when set (e.g.
/// `target/release/commandes`, to run the tests against the release
/// build), else the one cargo built for the tests.
pub fn binary() -> std::path::PathBuf {
    std::env::var_os("COMMANDES_TEST_BINARY")
        .filter(|p| !p.is_empty())
        .map_or_else(|| env!("CARGO_BIN_EXE_commandes").into(), Into::into)
}

/// The binary, run in `dir` with a clean environment of our own settings.
pub fn commandes(dir: &Path) -> Command {
    let mut cmd = Command::new(binary());
    cmd.current_dir(dir);
    for var in [
        "DATABASE_URL",
        "COMMANDES_DATABASE_URL",
        "COMMANDES_API_TOKENS",
        "COMMANDES_PORT",
        "COMMANDES_HOST",
        "RUST_LOG",
        "COMMANDES_LOG_FORMAT",
        "COMMANDES_DEMO_DATA",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A served process: its port, the token it printed (if asked to expect
/// one), and its log lines, collected until it exits. Dropped while still
/// running (a test that panicked), it is killed rather than left behind.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub token: Option<String>,
    logs: Option<JoinHandle<Vec<String>>>,
    shutdown_started: Option<oneshot::Receiver<()>>,
}

/// What the server logs once it has stopped accepting connections and is
/// letting the in-flight requests finish (poem's own line).
const SHUTDOWN_STARTED: &str = "initiate graceful shutdown";

/// Starts `serve` on a free port; the bound address is read from its logs
/// (JSON on a pipe), the generated token from its stdout notice.
pub fn serve(cmd: &mut Command, expect_token: bool) -> Served {
    let mut child = cmd
        .args(["--host", "127.0.0.1", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let out = child.stdout.take().unwrap();
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (shutdown_tx, shutdown_rx) = oneshot::channel();
    let logs = std::thread::spawn(move || {
        let mut shutdown_tx = Some(shutdown_tx);
        let mut all = Vec::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let marker = "\"addr\":\"127.0.0.1:";
            if let Some(at) = line.find(marker) {
                if let Some(port) = line[at + marker.len()..]
                    .split('"')
                    .next()
                    .and_then(|p| p.parse::<u16>().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
            if line.contains(SHUTDOWN_STARTED) {
                if let Some(tx) = shutdown_tx.take() {
                    let _ = tx.send(());
                }
            }
            all.push(line);
        }
        all
    });
    let (token_tx, token_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(t) = line.trim().strip_prefix("token:") {
                let _ = token_tx.send(t.trim().to_string());
            }
        }
    });
    let port = port_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the service starts");
    let token = expect_token.then(|| {
        token_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a printed token")
    });
    Served {
        child,
        port,
        token,
        logs: Some(logs),
        shutdown_started: Some(shutdown_rx),
    }
}

/// `commandes serve` of this build on `url`, on a free port, with the
/// tests' token and a small pool: a replica as the multi-process tests run
/// it.
pub fn serve_database(dir: &Path, url: &str) -> Served {
    serve(
        commandes(dir)
            .env("COMMANDES_DATABASE_URL", url)
            .env("COMMANDES_API_TOKENS", crate::support::TOKEN)
            .env("COMMANDES_POOL_SIZE", "4")
            .args(["serve", "--no-demo-data"]),
        false,
    )
}

impl Served {
    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sends SIGTERM (what an orchestrator sends).
    pub fn sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits until the server logs that its graceful shutdown has begun;
    /// false if it exited without saying so (or this was asked before).
    pub async fn shutdown_started(&mut self) -> bool {
        match self.shutdown_started.take() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        }
    }

    /// Waits for the process to exit: its exit status and its logs.
    pub fn wait(mut self) -> (ExitStatus, String) {
        let status = self.child.wait().unwrap();
        let logs = self
            .logs
            .take()
            .map(|logs| logs.join().unwrap().join("\n"))
            .unwrap_or_default();
        (status, logs)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends SIGTERM and waits; returns whether it exited cleanly, and its logs.
pub fn terminate(served: Served) -> (bool, String) {
    served.sigterm();
    let (status, logs) = served.wait();
    (status.success(), logs)
}
