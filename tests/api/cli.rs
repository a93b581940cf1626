//! The binary itself: its subcommands, the demo start, shutdown on SIGTERM,
//! and that tokens never reach the logs.

use std::process::{Command, Output};

use serde_json::Value;

use crate::process::{commandes, serve, terminate};
use crate::support::{Backend, TestApp};

/// The schema version a migrated database has.
fn latest() -> i64 {
    commandes::storage::migrations::latest(commandes::storage::migrations::SQLITE)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn openapi_prints_the_document_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(commandes(dir.path()).arg("openapi"));
    assert!(out.status.success(), "{}", stderr(&out));
    let spec: Value =
        serde_json::from_slice(&out.stdout).expect("stdout is only the JSON document");
    assert!(spec["paths"]["/commandes/{id}/status"]["put"].is_object());
    assert!(
        !dir.path().join("commandes.db").exists(),
        "openapi must not create a database"
    );
}

#[test]
fn help_explains_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "migrate", "check", "openapi"] {
        let out = run(commandes(dir.path()).args([sub, "--help"]));
        assert!(out.status.success());
        assert!(stdout(&out).contains("Usage: commandes"), "{sub}");
    }
    let out = run(commandes(dir.path()).arg("--help"));
    for sub in ["serve", "migrate", "check", "openapi"] {
        assert!(stdout(&out).contains(sub));
    }
}

/// The variables the flags stand for, as `--help` names them.
const FLAG_VARIABLES: [&str; 4] = [
    "COMMANDES_DATABASE_URL",
    "COMMANDES_HOST",
    "COMMANDES_PORT",
    "COMMANDES_DEMO_DATA",
];

#[test]
fn help_names_each_flags_variable_but_never_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-in-the-environment-5d1c";
    for args in [
        &["--help"][..],
        &["-h"],
        &["serve", "--help"],
        &["import", "--help"],
        &["help", "check"],
    ] {
        let out = run(commandes(dir.path())
            .env(
                "COMMANDES_DATABASE_URL",
                format!("postgres://app:{password}@127.0.0.1:1/orders"),
            )
            .env("DATABASE_URL", format!("postgres://app:{password}@h/db"))
            .env("COMMANDES_HOST", "10.9.8.7")
            // Values the settings would refuse: --help must answer anyway.
            .env("COMMANDES_PORT", "eighty")
            .env("COMMANDES_DEMO_DATA", "sometimes")
            .args(args));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let help = stdout(&out);
        for var in FLAG_VARIABLES {
            assert!(help.contains(&format!("[env: {var}]")), "{args:?}: {help}");
        }
        for value in [password, "10.9.8.7", "eighty", "sometimes"] {
            assert!(!help.contains(value), "{args:?} shows {value}: {help}");
        }
    }
}

#[test]
fn the_settings_read_the_flags_variables_and_the_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = |env: &[(&str, &str)], args: &[&str]| {
        let out = run(commandes(dir.path())
            .envs(env.iter().copied())
            .args(args)
            .arg("migrate"));
        assert!(out.status.success(), "{env:?} {args:?}: {}", stderr(&out));
    };
    let created = |name: &str| dir.path().join(name).exists();

    // DATABASE_URL alone is read; COMMANDES_DATABASE_URL wins over it; the
    // flag wins over both.
    migrate(&[("DATABASE_URL", "sqlite://a.db")], &[]);
    assert!(created("a.db"));
    let both = [
        ("DATABASE_URL", "sqlite://x.db"),
        ("COMMANDES_DATABASE_URL", "sqlite://b.db"),
    ];
    migrate(&both, &[]);
    assert!(created("b.db") && !created("x.db"));
    migrate(&both, &["--database-url", "sqlite://c.db"]);
    assert!(created("c.db") && !created("x.db"));

    // COMMANDES_DEMO_DATA has its own values and is not the --demo-data
    // switch: neither `never` nor a flag that contradicts it is a usage
    // error.
    let db = [("COMMANDES_DATABASE_URL", "sqlite://d.db")];
    migrate(&[db[0], ("COMMANDES_DEMO_DATA", "never")], &[]);
    migrate(
        &[db[0], ("COMMANDES_DEMO_DATA", "always")],
        &["--no-demo-data"],
    );
    migrate(&[db[0], ("COMMANDES_DEMO_DATA", "never")], &["--demo-data"]);

    // A bad value in a variable is refused by the settings, naming the
    // variable; a bad flag by clap, naming the flag.
    for (var, value) in [
        ("COMMANDES_PORT", "eighty"),
        ("COMMANDES_DEMO_DATA", "sometimes"),
    ] {
        let out = run(commandes(dir.path()).env(var, value).arg("check"));
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("commandes: {var} must be")),
            "{err}"
        );
    }
    let out = run(commandes(dir.path()).args(["--port", "eighty", "check"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'eighty' for '--port <PORT>'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_fails_in_one_line_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(commandes(dir.path()).args(["--database-url", "sqlite://missing.db", "check"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no SQLite database"), "{err}");
    assert!(
        !dir.path().join("missing.db").exists(),
        "check must not create the file"
    );

    let out = run(commandes(dir.path()).args([
        "--database-url",
        "postgres://nobody:pw@127.0.0.1:1/x",
        "check",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!err.contains(":pw@"), "the password is redacted: {err}");
}

#[test]
fn a_bad_setting_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(commandes(dir.path())
        .env("COMMANDES_PORT", "eighty")
        .arg("check"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("COMMANDES_PORT"));
    std::fs::write(dir.path().join("config.toml"), "[server]\nprot = 1\n").unwrap();
    let out = run(commandes(dir.path()).arg("check"));
    assert_eq!(
        out.status.code(),
        Some(2),
        "a typo in config.toml is an error"
    );
}

/// `migrate` twice and from two processes at once, then `check`.
async fn migrate_is_idempotent_and_concurrent(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let a = commandes(dir.path())
        .args(["--database-url", &url, "migrate"])
        .spawn()
        .unwrap();
    let b = commandes(dir.path())
        .args(["--database-url", &url, "migrate"])
        .spawn()
        .unwrap();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = run(commandes(dir.path()).args(["--database-url", &url, "migrate"]));
    assert!(
        stdout(&out).contains(&format!("schema already at version {}", latest())),
        "{}",
        stdout(&out)
    );
    let out = run(commandes(dir.path()).args(["--database-url", &url, "check"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains(&format!("schema version: {}", latest())),
        "{report}"
    );
    assert!(report.contains("orders:         0"), "{report}");
}

#[tokio::test]
async fn migrate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    migrate_is_idempotent_and_concurrent(url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_served_postgres_database() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    app.create("CHK1", "C1", "1.00", "pending").await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(commandes(dir.path()).args(["--database-url", &app.database_url, "check"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("backend:        postgres"), "{report}");
    assert!(report.contains("server version: PostgreSQL"), "{report}");
    assert!(
        report.contains(&format!("schema version: {}", latest())),
        "{report}"
    );
    assert!(report.contains("orders:         1"), "{report}");
    // Everything is applied already: a second migration run is a no-op.
    let out = run(commandes(dir.path()).args(["--database-url", &app.database_url, "migrate"]));
    assert!(stdout(&out).contains(&format!("schema already at version {}", latest())));
}

async fn get_json(url: String, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_with_a_printed_token_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&mut commandes(dir.path()), true);
    let (port, token) = (served.port, served.token.clone().unwrap());
    let (status, stats) = get_json(format!("http://127.0.0.1:{port}/stats"), &token).await;
    assert_eq!(status, 200);
    assert_eq!(stats["total_orders"], 300);
    for status in ["pending", "processing", "completed", "cancelled"] {
        assert!(
            stats["by_status"][status].as_i64().unwrap() > 0,
            "{status}: {stats}"
        );
    }
    let docs = reqwest::get(format!("http://127.0.0.1:{port}/docs"))
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let (clean, logs) = terminate(served);
    assert!(clean, "a clean exit on SIGTERM");
    assert!(logs.contains("\"request\""), "requests are logged: {logs}");
    assert!(
        !logs.contains(&token),
        "the generated token is never logged"
    );

    // A second start finds the database and does not load the demo again.
    let served = serve(
        commandes(dir.path()).env("COMMANDES_API_TOKENS", "tok-second-run-0123"),
        false,
    );
    let (_, stats) = get_json(
        format!("http://127.0.0.1:{}/stats", served.port),
        "tok-second-run-0123",
    )
    .await;
    assert_eq!(stats["total_orders"], 300);
    assert!(terminate(served).0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_tokens_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = commandes(dir.path());
    cmd.env(
        "COMMANDES_API_TOKENS",
        "tok-alpha-7f3a-0123,tok-beta-91c2-0123",
    )
    .env("COMMANDES_DATABASE_URL", "sqlite::memory:")
    .env("RUST_LOG", "trace");
    let served = serve(&mut cmd, false);
    let base = format!("http://127.0.0.1:{}", served.port);
    for (token, expected) in [
        ("tok-alpha-7f3a-0123", 200),
        ("tok-beta-91c2-0123", 200),
        ("tok-wrong-0000", 401),
    ] {
        assert_eq!(get_json(format!("{base}/stats"), token).await.0, expected);
    }
    let (clean, logs) = terminate(served);
    assert!(clean);
    assert!(
        logs.contains("token_id"),
        "callers are identified in the request log"
    );
    for secret in [
        "tok-alpha-7f3a-0123",
        "tok-beta-91c2-0123",
        "tok-wrong-0000",
    ] {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
}
