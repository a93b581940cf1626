//! A local stand-in for Supabase, made by the tests from Debian packages:
//!
//! - a PostgreSQL cluster that accepts only TLS over TCP (`hostssl` lines
//!   alone in `pg_hba.conf`), with a CA and a certificate for `localhost`
//!   made with `openssl` at test time (the way Supabase's server
//!   certificate chains to its own CA, not to a public root);
//! - PgBouncer 1.18 in front of it in transaction mode (Supabase's port
//!   6543): TLS to clients (a certificate for `localhost` and `127.0.0.1`
//!   from the same CA), `verify-full` to the server, SCRAM passwords, and
//!   no support for prepared statements, so it is the strictest pooler;
//! - its session-mode twin (Supabase's pooler port 5432), for migrations:
//!   a second PgBouncer with the same settings, since a wildcard database
//!   entry (one per test database) cannot have a twin entry.
//!
//! Each piece is started once per test process and stopped (and removed)
//! by a watchdog when the process ends; a test that stops PostgreSQL starts
//! a private stand-in of its own. Without `openssl`, the PostgreSQL server
//! binaries or `pgbouncer`, the tests that need them say they are skipped
//! (a failure with `COMMANDES_REQUIRE_POSTGRES=1`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::support::server_binaries;

/// The password every URL carries: PgBouncer checks it (SCRAM); the
/// cluster trusts. It must never be printed.
pub const PASSWORD: &str = "tls-s3cret-pw";

/// The TLS-only cluster.
pub struct TlsCluster {
    pub port: u16,
    /// Where its files are, and its Unix socket (plaintext, for the tests'
    /// own administration).
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca: PathBuf,
    /// Another CA, that signed nothing the server shows.
    pub other_ca: PathBuf,
    bin: PathBuf,
    is_root: bool,
}

/// The two PgBouncers in front of a cluster.
pub struct Pooler {
    pub cluster: TlsCluster,
    /// Transaction mode (Supabase's 6543).
    pub transaction_port: u16,
    /// Session mode (Supabase's pooler 5432).
    pub session_port: u16,
}

/// Whether a missing piece fails the run instead of skipping.
fn required() -> bool {
    std::env::var("COMMANDES_REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// Skips (saying why) or, when required, fails.
fn unavailable<T>(what: &str, why: &str) -> Option<T> {
    if required() {
        panic!("COMMANDES_REQUIRE_POSTGRES=1 but {what} cannot start: {why}");
    }
    eprintln!(
        "SKIPPED: this test did not run ({what}: {why}); install openssl, pgbouncer and the \
         PostgreSQL server binaries"
    );
    None
}

/// The process's shared TLS cluster.
pub fn tls_cluster() -> Option<&'static TlsCluster> {
    if let Some(pooler) = pooler() {
        return Some(&pooler.cluster);
    }
    static CLUSTER: OnceLock<Result<TlsCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| TlsCluster::start("shared")) {
        Ok(c) => Some(c),
        Err(why) => unavailable("the TLS cluster", why),
    }
}

/// The process's shared stand-in (cluster and poolers); `None` (said) when
/// it cannot start and is not required.
pub fn pooler() -> Option<&'static Pooler> {
    static POOLER: OnceLock<Result<Pooler, String>> = OnceLock::new();
    match POOLER.get_or_init(|| Pooler::start("shared")) {
        Ok(p) => Some(p),
        Err(why) => {
            if required() {
                panic!("COMMANDES_REQUIRE_POSTGRES=1 but the pooler stand-in cannot start: {why}");
            }
            None
        }
    }
}

/// The shared stand-in, or a skip message.
pub fn pooler_or_skip() -> Option<&'static Pooler> {
    match pooler() {
        Some(p) => Some(p),
        None => unavailable("the pooler stand-in", "see the first error"),
    }
}

/// Runs a command; its stderr is the error.
pub fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}{}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[pooler]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A P-256 CA (`{name}.pem`, `{name}.key`) in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) -> Result<PathBuf, String> {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-new", "-nodes", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-config", "openssl.cnf", "-extensions", "ca", "-days", "2"])
        .args(["-subj", &format!("/CN={cn}")])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ]))?;
    Ok(dir.join(format!("{name}.pem")))
}

/// A certificate `{name}.crt` (key `{name}.key`) signed by `ca`, with the
/// names of the `extensions` section.
fn make_cert(dir: &Path, name: &str, extensions: &str, serial: u32) -> Result<(), String> {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-config",
            "openssl.cnf",
        ])
        .args(["-subj", "/CN=localhost"])
        .args([
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]))?;
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-req", "-in", &format!("{name}.csr")])
        .args(["-CA", "ca.pem", "-CAkey", "ca.key"])
        .args(["-set_serial", &serial.to_string(), "-days", "2"])
        .args(["-extfile", "openssl.cnf", "-extensions", extensions])
        .args(["-out", &format!("{name}.crt")]))
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Runs `stop` once this process is gone, then removes `dir` if given.
fn watchdog(stop: &str, dir: Option<&Path>) -> Result<(), String> {
    let remove = dir.map_or(String::new(), |d| format!("; rm -rf {}", d.display()));
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}{remove}",
        pid = std::process::id(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| e.to_string())
}

impl TlsCluster {
    /// Makes the certificates and starts the cluster.
    pub fn start(label: &str) -> Result<TlsCluster, String> {
        run(Command::new("openssl").arg("version"))
            .map_err(|_| "no openssl command".to_string())?;
        let bin = server_binaries().ok_or("no PostgreSQL server binaries found")?;
        let dir = std::env::temp_dir().join(format!(
            "commandes-standin-{label}-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

        std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONFIG).map_err(|e| e.to_string())?;
        let ca = make_ca(&dir, "ca", "commandes test CA")?;
        let other_ca = make_ca(&dir, "other-ca", "some other CA")?;
        make_cert(&dir, "server", "server", 2)?;
        make_cert(&dir, "pooler", "pooler", 3)?;

        // PostgreSQL refuses to run as root, and wants its key private to it.
        let is_root = is_root();
        if is_root {
            run(Command::new("chown").args(["-R", "postgres:", &dir.display().to_string()]))?;
        }
        for key in ["server.key", "pooler.key"] {
            run(Command::new("chmod").args(["600", &dir.join(key).display().to_string()]))?;
        }
        let mut cluster = TlsCluster {
            port: free_port()?,
            dir,
            ca,
            other_ca,
            bin,
            is_root,
        };
        let data = cluster.data();
        run(cluster.as_postgres(&cluster.bin.join("initdb")).args([
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]))?;
        // TLS or nothing over TCP; the socket stays for the tests' own use.
        std::fs::write(
            cluster.dir.join("data/pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostssl all all ::1/128 trust\n",
        )
        .map_err(|e| e.to_string())?;
        // A free port may be taken (by any test's client socket) before
        // PostgreSQL binds it: then try another.
        let mut tries = 0;
        while let Err(e) = cluster.pg_ctl(&["-w", "start"]) {
            let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
            tries += 1;
            if tries == 5 || !log.contains("Address already in use") {
                return Err(e);
            }
            cluster.port = free_port()?;
        }
        watchdog(
            &format!(
                "{} >/dev/null 2>&1",
                cluster.pg_ctl_line("-m immediate stop")
            ),
            Some(&cluster.dir),
        )?;
        Ok(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn as_postgres(&self, program: &Path) -> Command {
        if self.is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    }

    fn options(&self) -> String {
        format!(
            "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
             -c max_connections=300 -c ssl_cert_file={dir}/server.crt \
             -c ssl_key_file={dir}/server.key",
            port = self.port,
            dir = self.dir.display()
        )
    }

    fn pg_ctl_line(&self, action: &str) -> String {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let prefix = if self.is_root {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!("{prefix}{pg_ctl} -D {} {action}", self.data())
    }

    /// `pg_ctl` on this cluster (`start` gets the options and the log).
    pub fn pg_ctl(&self, args: &[&str]) -> Result<(), String> {
        let mut cmd = self.as_postgres(&self.bin.join("pg_ctl"));
        cmd.args(["-D", &self.data()]);
        if args.contains(&"start") || args.contains(&"restart") {
            let log = self.dir.join("log").display().to_string();
            cmd.args(["-o", &self.options(), "-l", &log]);
        }
        run(cmd.args(args))
    }

    /// Stops PostgreSQL now (its connections are cut).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"])
            .expect("pg_ctl stop");
    }

    /// Starts it again, waiting until it accepts connections.
    pub fn start_again(&self) {
        self.pg_ctl(&["-w", "start"]).expect("pg_ctl start");
    }

    /// The administrator's URL, over the Unix socket.
    pub fn admin_url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@{}:{}/{db}",
            percent_encoding::utf8_percent_encode(
                &self.dir.display().to_string(),
                percent_encoding::NON_ALPHANUMERIC
            ),
            self.port
        )
    }

    /// A new database on the cluster; returns its name.
    pub async fn database(&self) -> String {
        let name = format!(
            "standin_{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        crate::support::admin(
            &self.admin_url("postgres"),
            &format!("create database {name}"),
        )
        .await;
        name
    }

    /// `postgres://postgres:PASSWORD@{host}:{port}/{db}?{params}`, direct.
    pub fn url(&self, host: &str, db: &str, params: &str) -> String {
        let url = format!("postgres://postgres:{PASSWORD}@{host}:{}/{db}", self.port);
        if params.is_empty() {
            url
        } else {
            format!("{url}?{params}")
        }
    }

    /// The `sslmode=verify-full&sslrootcert=…` parameters for this CA.
    pub fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", self.ca.display())
    }
}

impl Pooler {
    /// A cluster and its two PgBouncers.
    pub fn start(label: &str) -> Result<Pooler, String> {
        let program = Path::new("/usr/sbin/pgbouncer");
        let program = if program.exists() {
            program.to_path_buf()
        } else {
            PathBuf::from("pgbouncer")
        };
        run(Command::new(&program).arg("--version"))
            .map_err(|e| format!("no pgbouncer ({e}): apt-get install -y pgbouncer"))?;
        let cluster = TlsCluster::start(label)?;
        let pooler = Pooler {
            transaction_port: free_port()?,
            session_port: free_port()?,
            cluster,
        };
        let dir = &pooler.cluster.dir;
        std::fs::write(
            dir.join("userlist.txt"),
            format!("\"postgres\" \"{PASSWORD}\"\n"),
        )
        .map_err(|e| e.to_string())?;
        let mut stops = Vec::new();
        for (mode, port) in [
            ("transaction", pooler.transaction_port),
            ("session", pooler.session_port),
        ] {
            let ini = dir.join(format!("pgbouncer-{mode}.ini"));
            std::fs::write(&ini, pooler.config(mode, port)).map_err(|e| e.to_string())?;
            if pooler.cluster.is_root {
                run(Command::new("chown").args(["-R", "postgres:", &dir.display().to_string()]))?;
            }
            run(pooler.cluster.as_postgres(&program).arg("-d").arg(&ini))?;
            // The pid itself, read now: the cluster's watchdog may remove
            // the directory (and the pid file) first.
            let pid = pooler.pid(mode).ok_or("pgbouncer wrote no pid file")?;
            stops.push(format!("kill {pid} 2>/dev/null"));
        }
        // The cluster's watchdog removes the directory, after its stop.
        watchdog(&stops.join("; "), None)?;
        // Listening once the pid file is there; wait for the ports.
        for port in [pooler.transaction_port, pooler.session_port] {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "pgbouncer did not listen on {port}: {}",
                        pooler.log()
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        Ok(pooler)
    }

    /// The pid of the PgBouncer in `mode`, once its pid file is written.
    fn pid(&self, mode: &str) -> Option<u32> {
        let file = self.cluster.dir.join(format!("pgbouncer-{mode}.pid"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(pid) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
            {
                return Some(pid);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    fn config(&self, mode: &str, port: u16) -> String {
        let dir = self.cluster.dir.display();
        format!(
            "[databases]\n\
             * = host=localhost port={pg}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             pool_mode = {mode}\n\
             auth_type = scram-sha-256\n\
             auth_file = {dir}/userlist.txt\n\
             max_client_conn = 400\n\
             default_pool_size = 20\n\
             server_tls_sslmode = verify-full\n\
             server_tls_ca_file = {dir}/ca.pem\n\
             client_tls_sslmode = require\n\
             client_tls_key_file = {dir}/pooler.key\n\
             client_tls_cert_file = {dir}/pooler.crt\n\
             server_login_retry = 1\n\
             query_wait_timeout = 30\n\
             server_idle_timeout = 30\n\
             autodb_idle_timeout = 60\n\
             logfile = {dir}/pgbouncer-{mode}.log\n\
             pidfile = {dir}/pgbouncer-{mode}.pid\n",
            pg = self.cluster.port,
        )
    }

    /// Both PgBouncers' logs.
    pub fn log(&self) -> String {
        ["transaction", "session"]
            .iter()
            .map(|mode| {
                std::fs::read_to_string(self.cluster.dir.join(format!("pgbouncer-{mode}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn url(&self, port: u16, db: &str) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@localhost:{port}/{db}?{}",
            self.cluster.verify_full()
        )
    }

    /// Transaction mode over TLS, `verify-full`: what the service serves
    /// through.
    pub fn transaction_url(&self, db: &str) -> String {
        self.url(self.transaction_port, db)
    }

    /// Session mode: where migrations go.
    pub fn session_url(&self, db: &str) -> String {
        self.url(self.session_port, db)
    }
}

// A private stand-in (the drill's, the start-up test's) stops when its test
// is done; the shared ones live in statics and are stopped by their
// watchdogs when the process ends.
impl Drop for Pooler {
    fn drop(&mut self) {
        for mode in ["transaction", "session"] {
            let file = self.cluster.dir.join(format!("pgbouncer-{mode}.pid"));
            if let Ok(pid) = std::fs::read_to_string(file) {
                let _ = Command::new("kill")
                    .arg(pid.trim())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}
