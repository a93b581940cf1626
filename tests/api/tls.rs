//! TLS to PostgreSQL, against a private cluster that accepts only TLS
//! (`hostssl` lines alone in `pg_hba.conf`), with a CA and a certificate for
//! `localhost` made with `openssl` at test time: the way Supabase is reached.
//! Everything goes through the real binary, so the start-up errors are the
//! ones an operator reads.
//!
//! Skipped, saying so, without `openssl` or the PostgreSQL server binaries
//! (a failure with `COMMANDES_REQUIRE_POSTGRES=1`).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::json;

use crate::process::{commandes, serve, terminate};
use crate::standin::{TlsCluster, PASSWORD};
use crate::support::TOKEN;

/// The shared TLS-only cluster of the stand-in (see `standin.rs`).
fn tls_server() -> Option<&'static TlsCluster> {
    crate::standin::tls_cluster()
}

impl TlsCluster {
    /// How many of the service's connections to `db` the server sees
    /// encrypted, and how many in all.
    async fn service_connections(&self, db: &str) -> (i64, i64) {
        let (client, conn) =
            tokio_postgres::connect(&self.admin_url("postgres"), tokio_postgres::NoTls)
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
    assert!(
        last.starts_with("commandes: cannot connect to the database"),
        "{stderr}"
    );
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
