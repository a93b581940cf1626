//! TLS to PostgreSQL, against a private cluster that accepts only TLS
//! (`hostssl` lines alone in `pg_hba.conf`), with a CA and a certificate for
//! `localhost` made with `openssl` at test time: the way Supabase is reached.
//! Everything goes through the real binary, so the start-up errors are the
//! ones an operator reads.
//!
//! Skipped, saying so, without `openssl` or the PostgreSQL server binaries
//! (a failure with `COMMANDES_REQUIRE_POSTGRES=1`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::json;

use crate::process::{commandes, serve, terminate};
use crate::support::{server_binaries, TOKEN};

/// The password every URL here carries (the server trusts, so never asks
/// for it); it must never be printed.
const PASSWORD: &str = "tls-s3cret-pw";

/// The TLS-only cluster, its CA and a CA it does not use.
struct TlsServer {
    port: u16,
    /// Where the cluster's Unix socket is (plaintext, for the test's own
    /// administration).
    socket_dir: PathBuf,
    /// The CA that signed the server's certificate (for `localhost` only).
    ca: PathBuf,
    /// Another CA, that signed nothing the server shows.
    other_ca: PathBuf,
}

impl TlsServer {
    /// A new database on the cluster; returns its name.
    async fn database(&self) -> String {
        let name = format!(
            "tls_{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let conninfo = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("the admin socket connection");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = task.await;
        name
    }

    /// `postgres://postgres:PASSWORD@{host}:{port}/{db}?{params}`.
    fn url(&self, host: &str, db: &str, params: &str) -> String {
        let url = format!("postgres://postgres:{PASSWORD}@{host}:{}/{db}", self.port);
        if params.is_empty() {
            url
        } else {
            format!("{url}?{params}")
        }
    }

    /// How many of the service's connections to `db` the server sees
    /// encrypted, and how many in all.
    async fn service_connections(&self, db: &str) -> (i64, i64) {
        let conninfo = format!(
            "host={} port={} user=postgres dbname=postgres",
            self.socket_dir.display(),
            self.port
        );
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap();
        let task = tokio::spawn(conn);
        let row = client
            .query_one(
                "select count(*) filter (where s.ssl), count(*)
                 from pg_stat_activity a join pg_stat_ssl s using (pid)
                 where a.datname = $1 and a.application_name = 'commandes'",
                &[&db],
            )
            .await
            .unwrap();
        drop(client);
        let _ = task.await;
        (row.get(0), row.get(1))
    }
}

/// The cluster, started once per test process; `None` (said once) when it
/// cannot be.
fn tls_server() -> Option<&'static TlsServer> {
    static SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();
    match SERVER.get_or_init(start_tls_cluster) {
        Ok(server) => Some(server),
        Err(why) => {
            if std::env::var("COMMANDES_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("COMMANDES_REQUIRE_POSTGRES=1 but the TLS cluster cannot start: {why}");
            }
            eprintln!(
                "SKIPPED: this TLS test did not run ({why}); install openssl and the PostgreSQL \
                 server binaries"
            );
            None
        }
    }
}

/// Runs a command; its stderr is the error.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
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
";

/// A P-256 CA (`{name}.pem`, `{name}.key`) in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) -> Result<PathBuf, String> {
    let pem = dir.join(format!("{name}.pem"));
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
    Ok(pem)
}

/// Makes the certificates and starts the cluster; it stops and is removed
/// when this process ends.
fn start_tls_cluster() -> Result<TlsServer, String> {
    run(Command::new("openssl").arg("version")).map_err(|_| "no openssl command".to_string())?;
    let bin = server_binaries().ok_or("no PostgreSQL server binaries found")?;
    let dir = std::env::temp_dir().join(format!("commandes-pgtls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    // The CAs and the server's certificate, for `localhost` and no other name.
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CONFIG).map_err(|e| e.to_string())?;
    let ca = make_ca(&dir, "ca", "commandes test CA")?;
    let other_ca = make_ca(&dir, "other-ca", "some other CA")?;
    run(Command::new("openssl")
        .current_dir(&dir)
        .args(["req", "-new", "-nodes", "-newkey", "ec"])
        .args([
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-config",
            "openssl.cnf",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]))?;
    run(Command::new("openssl")
        .current_dir(&dir)
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
        ])
        .args(["-set_serial", "2", "-days", "2", "-extfile", "openssl.cnf"])
        .args(["-extensions", "server", "-out", "server.crt"]))?;

    // PostgreSQL refuses to run as root, and wants its key private to it.
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let as_postgres = |program: &Path| {
        if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        }
    };
    if is_root {
        run(Command::new("chown").args(["-R", "postgres:", &dir.display().to_string()]))?;
    }
    run(Command::new("chmod").args(["600", &dir.join("server.key").display().to_string()]))?;

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let data = dir.join("data");
    let data_s = data.display().to_string();
    run(as_postgres(&bin.join("initdb")).args([
        "-D",
        &data_s,
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
    ]))?;
    // TLS or nothing over TCP; the socket stays for the test's own use.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 trust\n\
         hostssl all all ::1/128 trust\n",
    )
    .map_err(|e| e.to_string())?;
    let opts = format!(
        "-p {port} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on \
         -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key",
        dir = dir.display()
    );
    run(as_postgres(&bin.join("pg_ctl")).args([
        "-D",
        &data_s,
        "-o",
        &opts,
        "-l",
        &dir.join("log").display().to_string(),
        "-w",
        "start",
    ]))?;
    // A watchdog stops the cluster and removes it once this process is gone.
    let pg_ctl = bin.join("pg_ctl").display().to_string();
    let stop = if is_root {
        format!("runuser -u postgres -- {pg_ctl} -D {data_s} -m immediate stop")
    } else {
        format!("{pg_ctl} -D {data_s} -m immediate stop")
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    Ok(TlsServer {
        port,
        socket_dir: dir,
        ca,
        other_ca,
    })
}

/// The binary with `url` and no CA file setting from the environment.
fn with_url(dir: &Path, url: &str) -> Command {
    let mut cmd = commandes(dir);
    cmd.env("COMMANDES_DATABASE_URL", url)
        .env("COMMANDES_API_TOKENS", TOKEN)
        .env_remove("COMMANDES_DATABASE_CA_FILE");
    cmd
}

/// Runs `check` (which connects, as every start-up does), expects it to fail
/// with one line on stderr, and returns that line.
fn check_fails(mut cmd: Command) -> String {
    let out: Output = cmd.arg("check").output().expect("the binary runs");
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(out.status.code(), Some(1), "check must fail: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("commandes: "), "{err}");
    assert!(!err.contains(PASSWORD), "the password leaked: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_sslrootcert_migrates_and_serves_over_tls() {
    let Some(server) = tls_server() else { return };
    let db = server.database().await;
    let url = server.url(
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={}", server.ca.display()),
    );
    let dir = tempfile::tempdir().unwrap();

    let served = serve(&mut with_url(dir.path(), &url), false);
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/commandes", served.base()))
        .bearer_auth(TOKEN)
        .json(&json!({"order_id": "TLS1", "customer_id": "C1", "total_amount": "12.50"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let list: serde_json::Value = client
        .get(format!("{}/commandes", served.base()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["order_id"], "TLS1", "{list}");
    let (encrypted, all) = server.service_connections(&db).await;
    assert!(
        all > 0 && encrypted == all,
        "{encrypted} of {all} connections encrypted"
    );

    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    assert!(!logs.contains(PASSWORD), "the password leaked: {logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_file_setting_works_instead_of_sslrootcert() {
    let Some(server) = tls_server() else { return };
    let db = server.database().await;
    // No sslmode: a CA file is set, so TLS is required even to localhost.
    let url = server.url("localhost", &db, "");
    let dir = tempfile::tempdir().unwrap();
    for command in ["migrate", "check"] {
        let out = with_url(dir.path(), &url)
            .env("COMMANDES_DATABASE_CA_FILE", &server.ca)
            .arg(command)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{command}: {err}");
        if command == "check" {
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(report.contains("backend:        postgres"), "{report}");
            assert!(!report.contains(PASSWORD), "{report}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_to_the_tls_only_server_fails_in_one_line() {
    let Some(server) = tls_server() else { return };
    let db = server.database().await;
    let dir = tempfile::tempdir().unwrap();
    // Asked for, and the default for a local host without a CA file.
    for params in ["sslmode=disable", ""] {
        let err = check_fails(with_url(dir.path(), &server.url("127.0.0.1", &db, params)));
        assert!(err.contains("no encryption"), "{params}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tls_is_refused_even_with_prefer() {
    let Some(server) = tls_server() else { return };
    // A server that answers the TLS request with "no", as a PostgreSQL
    // without `ssl = on` does, then waits.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 8];
            if stream.read_exact(&mut request).is_ok() {
                let _ = stream.write_all(b"N");
                let _ = stream.read(&mut [0u8; 64]);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    for mode in ["require", "prefer", "verify-full"] {
        let url = format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/x?sslmode={mode}&sslrootcert={}",
            server.ca.display()
        );
        let err = check_fails(with_url(dir.path(), &url));
        assert!(err.contains("server does not support TLS"), "{mode}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_ca_fails_at_start_up_in_one_line() {
    let Some(server) = tls_server() else { return };
    let db = server.database().await;
    let dir = tempfile::tempdir().unwrap();
    let url = server.url(
        "localhost",
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            server.other_ca.display()
        ),
    );
    let err = check_fails(with_url(dir.path(), &url));
    assert!(
        err.contains("certificate is not signed by a CA trusted here (the CA file"),
        "{err}"
    );
    assert!(err.contains("other-ca.pem"), "{err}");

    // `serve` stops at start-up with the same line, its last.
    let out = with_url(dir.path(), &url).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("commandes: cannot migrate"), "{stderr}");
    assert!(last.contains("certificate is not signed"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "the password leaked: {stderr}");

    // The system's roots do not hold a CA made a moment ago either.
    let url = server.url("localhost", &db, "sslmode=require");
    let err = check_fails(with_url(dir.path(), &url));
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_host_name_fails_in_one_line() {
    let Some(server) = tls_server() else { return };
    let db = server.database().await;
    let dir = tempfile::tempdir().unwrap();
    // The certificate names `localhost` only; every mode checks the name.
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = server.url(
            "127.0.0.1",
            &db,
            &format!("sslmode={mode}&sslrootcert={}", server.ca.display()),
        );
        let err = check_fails(with_url(dir.path(), &url));
        assert!(
            err.contains("certificate is not valid for the host name \"127.0.0.1\""),
            "{mode}: {err}"
        );
    }
}

#[test]
fn a_missing_ca_file_is_a_one_line_start_up_error() {
    // Read before connecting, so no server is needed.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("prod-ca-2021.crt");
    let url = format!("postgres://postgres:{PASSWORD}@db.example.invalid:5432/postgres");
    let mut cmd = with_url(dir.path(), &url);
    cmd.env("COMMANDES_DATABASE_CA_FILE", &missing);
    let err = check_fails(cmd);
    assert!(
        err.contains(&format!(
            "cannot use the database CA file {}",
            missing.display()
        )),
        "{err}"
    );

    let err = check_fails(with_url(dir.path(), &format!("{url}?sslmode=verify")));
    assert!(err.contains("sslmode must be"), "{err}");
    let err = check_fails(with_url(dir.path(), &format!("{url}?sslcert=/c.pem")));
    assert!(err.contains("sslcert"), "{err}");
}
