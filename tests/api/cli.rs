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

/// The variables the flags of every subcommand stand for, with the
/// defaults `--help` shows for them.
const GLOBAL_FLAGS: [(&str, &str); 1] = [("COMMANDES_DATABASE_URL", "sqlite://commandes.db")];

/// The same for the flags of `serve` (the demo switch has no value: its
/// default is in its text).
const SERVE_FLAGS: [(&str, &str); 3] = [
    ("COMMANDES_HOST", "0.0.0.0"),
    ("COMMANDES_PORT", "8001"),
    ("COMMANDES_DEMO_DATA", ""),
];

#[test]
fn help_names_each_flags_variable_and_default_but_never_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let password = "pw-in-the-environment-5d1c";
    for (args, serves) in [
        (&["--help"][..], true),
        (&["-h"], true),
        (&["serve", "--help"], true),
        (&["help", "serve"], true),
        (&["import", "--help"], false),
        (&["help", "check"], false),
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
        for (var, default) in GLOBAL_FLAGS
            .iter()
            .chain(if serves { &SERVE_FLAGS[..] } else { &[] })
        {
            assert!(help.contains(&format!("[env: {var}]")), "{args:?}: {help}");
            if !default.is_empty() {
                assert!(
                    help.contains(&format!("[env: {var}] [default: {default}]"))
                        || help.contains(&format!("[env: {var}]\n          [default: {default}]")),
                    "{args:?} shows no default for {var}: {help}"
                );
            }
        }
        if !serves {
            for (var, _) in SERVE_FLAGS {
                assert!(
                    !help.contains(var),
                    "{args:?} offers a flag of serve: {help}"
                );
            }
        }
        for value in [password, "10.9.8.7", "eighty", "sometimes"] {
            assert!(!help.contains(value), "{args:?} shows {value}: {help}");
        }
    }
}

#[test]
fn serve_flags_belong_to_serve_only() {
    let dir = tempfile::tempdir().unwrap();
    let others: [&[&str]; 7] = [
        &["migrate"],
        &["check"],
        &["openapi"],
        &["import", "orders.csv"],
        &["export"],
        &["copy", "--to", "sqlite://t.db"],
        &["generate", "--count", "1"],
    ];
    for sub in others {
        for flag in [
            &["--port", "9000"][..],
            &["--host", "::1"],
            &["--demo-data"],
            &["--no-demo-data"],
        ] {
            // After the subcommand: clap does not know the flag there.
            let out = run(commandes(dir.path()).args(sub).args(flag));
            assert_eq!(
                out.status.code(),
                Some(2),
                "{sub:?} {flag:?}: {}",
                stdout(&out)
            );
            assert!(
                stderr(&out).contains(&format!("unexpected argument '{}'", flag[0])),
                "{sub:?} {flag:?}: {}",
                stderr(&out)
            );
            // Before it, where `commandes` alone (serve) takes it.
            let out = run(commandes(dir.path()).args(flag).args(sub));
            assert_eq!(
                out.status.code(),
                Some(2),
                "{flag:?} {sub:?}: {}",
                stdout(&out)
            );
            assert!(
                stderr(&out).contains(&format!("{} is a flag of `serve`", flag[0]))
                    && stderr(&out).contains(&format!("not of `{}`", sub[0])),
                "{flag:?} {sub:?}: {}",
                stderr(&out)
            );
        }
    }
    assert!(
        !dir.path().join("commandes.db").exists() && !dir.path().join("t.db").exists(),
        "a refused command touches no database"
    );

    // `copy` reads from the configured database unless --from says
    // otherwise; --database-url and --from together are ambiguous.
    let out = run(commandes(dir.path()).args([
        "--database-url",
        "sqlite://a.db",
        "copy",
        "--from",
        "sqlite://b.db",
        "--to",
        "sqlite://c.db",
    ]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`copy` reads --from"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn copy_reads_the_configured_database_without_from() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.db");
    std::fs::write(
        dir.path().join("o.csv"),
        "order_id,customer_id,total_amount\nCP1,C1,1.50\nCP2,C2,2.50\n",
    )
    .unwrap();
    let url = format!("sqlite://{}", source.display());
    let out = run(commandes(dir.path()).args([
        "--database-url",
        &url,
        "import",
        "--no-progress",
        "o.csv",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let target = format!("sqlite://{}", dir.path().join("target.db").display());
    let out = run(commandes(dir.path())
        .env("COMMANDES_DATABASE_URL", &url)
        .args(["copy", "--no-progress", "--to", &target]));
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(report.contains("copied:   2 orders"), "{report}");
    assert!(
        report.contains("source.db"),
        "the source is named: {report}"
    );
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
    // switch: `never` is no usage error (and a flag that contradicts it is
    // none either: see the demo test, which serves with --no-demo-data).
    let db = [("COMMANDES_DATABASE_URL", "sqlite://d.db")];
    migrate(&[db[0], ("COMMANDES_DEMO_DATA", "never")], &[]);
    migrate(&[db[0], ("COMMANDES_DEMO_DATA", "always")], &[]);

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
    // Through `serve` this time, with a flag that contradicts the variable
    // (the flag wins; no usage error).
    let served = serve(
        commandes(dir.path())
            .env("COMMANDES_API_TOKENS", "tok-second-run-0123")
            .env("COMMANDES_DEMO_DATA", "always")
            .args(["serve", "--no-demo-data"]),
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

/// A CSV file of four rows: two good, one with two bad fields, one with
/// one; so three problems in two rows.
const BAD_ROWS: &str = "order_id,customer_id,total_amount,status
DR1,C1,10.00,pending
DR2,,abc,pending
DR3,C3,5.00,bogus
DR4,C4,5.00,completed
";

/// The problem lines of an import's stderr (`FILE:LINE: field: message`).
fn problem_lines(err: &str) -> Vec<&str> {
    err.lines()
        .filter(|l| l.starts_with("orders.csv:"))
        .collect()
}

#[test]
fn import_dry_run_lists_the_bad_rows_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), BAD_ROWS).unwrap();
    let db = dir.path().join("commandes.db");
    let out =
        run(commandes(dir.path()).args(["import", "--dry-run", "--no-progress", "orders.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(
        problem_lines(&err),
        [
            "orders.csv:3: customer_id: must not be empty",
            "orders.csv:3: total_amount: must be a decimal number such as \"150.50\"",
            "orders.csv:4: status: must be one of pending, processing, completed, cancelled",
        ],
        "{err}"
    );
    assert!(
        err.contains("dry run: 3 problems listed above; nothing was written"),
        "{err}"
    );
    assert!(stdout(&out).contains("read:     4"), "{}", stdout(&out));
    assert!(!db.exists(), "a dry run creates no database");

    // A clean file: exit 0, and still no database.
    std::fs::write(
        dir.path().join("orders.csv"),
        "order_id,customer_id,total_amount\nDR1,C1,1.00\nDR2,C2,2.00\n",
    )
    .unwrap();
    let out =
        run(commandes(dir.path()).args(["import", "--dry-run", "--no-progress", "orders.csv"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("dry run: every row is valid"),
        "{}",
        stdout(&out)
    );
    assert!(!db.exists(), "a clean dry run creates no database");

    // Against a database that holds DR1: the conflict is found (as the
    // import would find it) and nothing changes.
    std::fs::write(
        dir.path().join("first.csv"),
        "order_id,customer_id,total_amount\nDR1,C9,9.00\n",
    )
    .unwrap();
    let out = run(commandes(dir.path()).args(["import", "--no-progress", "first.csv"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let export = || {
        let out =
            run(commandes(dir.path()).args(["export", "--no-progress", "--format", "ndjson"]));
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let before = export();
    let out =
        run(commandes(dir.path()).args(["import", "--dry-run", "--no-progress", "orders.csv"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(problem_lines(&err).len(), 1, "{err}");
    assert!(
        err.contains("orders.csv:2: order_id: DR1 already exists"),
        "{err}"
    );
    // Skipping conflicts, the same file is clean.
    let out = run(commandes(dir.path()).args([
        "import",
        "--dry-run",
        "--no-progress",
        "--on-conflict",
        "skip",
        "orders.csv",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(commandes(dir.path()).arg("check"));
    assert!(
        stdout(&out).contains("orders:         1"),
        "{}",
        stdout(&out)
    );
    assert!(export() == before, "the orders are unchanged");
}

#[test]
fn import_counts_the_problems_it_lists() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), BAD_ROWS).unwrap();
    let out = run(commandes(dir.path()).args(["import", "--no-progress", "orders.csv"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(problem_lines(&err).len(), 3, "{err}");
    assert!(
        err.contains("import refused: 3 problems listed above; nothing was written"),
        "{err}"
    );
}

#[test]
fn import_of_a_missing_file_leaves_no_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("orders.csv"), BAD_ROWS).unwrap();
    for args in [
        &["nothere.csv"][..],
        &["orders.csv", "nothere.csv"],
        &["--dry-run", "nothere.csv"],
    ] {
        let out = run(commandes(dir.path()).arg("import").args(args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("cannot open nothere.csv"),
            "{}",
            stderr(&out)
        );
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("commandes.db"))
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
}

#[test]
fn completions_and_the_manual_page_come_from_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(commandes(dir.path()).args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["import", "dry-run", "database-url"] {
            assert!(
                script.contains(word),
                "{shell} completes no {word}: {script}"
            );
        }
    }
    let out = run(commandes(dir.path()).args(["completions", "bash"]));
    assert!(
        stdout(&out).contains("complete -F _commandes"),
        "{}",
        stdout(&out)
    );
    let out = run(commandes(dir.path()).args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));

    // Settings are not needed: a broken config.toml does not stop them.
    std::fs::write(dir.path().join("config.toml"), "[server]\nprot = 1\n").unwrap();
    let out = run(commandes(dir.path())
        .env("COMMANDES_PORT", "eighty")
        .arg("man"));
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    let header = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no roff title line: {page}"));
    assert!(
        header.starts_with(".TH commandes 1") && header.contains(commandes::build_info::REVISION),
        "{header}"
    );
    for text in [
        ".SH NAME",
        ".SH SYNOPSIS",
        "COMMANDES_DATABASE_URL",
        "[default: 8001]",
    ] {
        assert!(page.contains(text), "the page has no {text}: {page}");
    }
    assert!(!page.contains("eighty"), "no variable's value: {page}");
    let out = run(commandes(dir.path()).args(["man", "import"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(".TH commandes-import 1"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("dry\\-run"), "{}", stdout(&out));
    let out = run(commandes(dir.path()).args(["man", "nope"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no subcommand \"nope\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn version_names_the_git_revision() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(commandes(dir.path()).arg("--version"));
    assert!(out.status.success());
    let revision = commandes::build_info::REVISION;
    assert_eq!(
        stdout(&out).trim(),
        format!("commandes {} ({revision})", env!("CARGO_PKG_VERSION"))
    );
    // Built from a git checkout (as here, and in CI), it is HEAD's hash.
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(head) = head {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert!(
            revision.len() >= 7 && head.starts_with(revision),
            "revision {revision}, HEAD {head}"
        );
    }
}
