//! No secret reaches the output of the binary: database passwords (in the
//! URL's user info and as `?password=`), broker tokens and passwords, the
//! JWT secret, the API, read and metrics tokens. Each is set, in every form
//! the service reads, and the logs and output of `serve` (one that starts and
//! one that cannot reach its database), `check`, `copy` and every `--help`
//! are searched for it.

use std::process::{Command, Output};
use std::time::Duration;

use crate::process::{commandes, serve, terminate};
use crate::support::TestDatabase;

const DB_PASSWORD: &str = "dbpass-Zq81xy";
const DB_QUERY_PASSWORD: &str = "qpass-Lm27xy";
const MIGRATION_PASSWORD: &str = "migpass-Xc55xy";
const NATS_TOKEN: &str = "natstoken-Pe90xy";
const AMQP_PASSWORD: &str = "amqppass-Rt33xy";
const JWKS_KEY: &str = "jwkskey-Gf19xy";
const API_TOKEN: &str = "apitoken-Ks12-abcdefgh";
const READ_TOKEN: &str = "readtoken-Vb64-abcdefgh";
const METRICS_TOKEN: &str = "metricstoken-Nw48-abcd";
const JWT_SECRET: &str = "jwtsecret-Hy73-0123456789-0123456789";

const SECRETS: [&str; 10] = [
    DB_PASSWORD,
    DB_QUERY_PASSWORD,
    MIGRATION_PASSWORD,
    NATS_TOKEN,
    AMQP_PASSWORD,
    JWKS_KEY,
    API_TOKEN,
    READ_TOKEN,
    METRICS_TOKEN,
    JWT_SECRET,
];

/// A PostgreSQL URL that nothing answers, with a password in both forms.
fn closed_database() -> String {
    format!(
        "postgres://shop:{DB_PASSWORD}@127.0.0.1:1/shop?password={DB_QUERY_PASSWORD}&sslmode=disable"
    )
}

/// `url` (a test database's, trust authentication) with a password in
/// both forms: the server does not ask for it, so it connects.
fn with_passwords(url: &str) -> String {
    let scheme = url.find("://").expect("a URL") + 3;
    let at = url.find('@').expect("a user");
    let user = url[scheme..at].split(':').next().unwrap();
    let rest = &url[at..];
    let joiner = if rest.contains('?') { '&' } else { '?' };
    format!(
        "{}{user}:{DB_PASSWORD}{rest}{joiner}password={DB_QUERY_PASSWORD}",
        &url[..scheme]
    )
}

/// The binary with every secret set in the environment (the database URL
/// aside, which each case sets).
fn with_secrets(dir: &std::path::Path) -> Command {
    let mut cmd = commandes(dir);
    cmd.env("COMMANDES_API_TOKENS", API_TOKEN)
        .env("COMMANDES_READ_TOKENS", READ_TOKEN)
        .env("COMMANDES_METRICS_TOKEN", METRICS_TOKEN)
        .env("COMMANDES_JWT_SECRET", JWT_SECRET)
        .env(
            "COMMANDES_JWKS_URL",
            format!("https://127.0.0.1:1/auth/v1/.well-known/jwks.json?apikey={JWKS_KEY}"),
        )
        .env(
            "COMMANDES_EVENTS_RELAY_URL",
            format!("nats://{NATS_TOKEN}@127.0.0.1:1"),
        )
        .env("COMMANDES_STARTUP_TIMEOUT_SECS", "0")
        .env("COMMANDES_CONNECT_TIMEOUT_SECS", "2")
        .env("RUST_LOG", "trace")
        .env("COMMANDES_LOG_FORMAT", "json");
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_no_secret(what: &str, output: &str) {
    for secret in SECRETS {
        assert!(
            !output.contains(secret),
            "{what}: {secret} appears in:\n{output}"
        );
    }
}

#[test]
fn no_secret_when_the_database_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    // Through the migration URL first, then through the database URL.
    let out = with_secrets(dir.path())
        .env("COMMANDES_DATABASE_URL", closed_database())
        .env(
            "COMMANDES_MIGRATION_DATABASE_URL",
            format!("postgres://shop:{MIGRATION_PASSWORD}@127.0.0.1:1/shop?password={MIGRATION_PASSWORD}"),
        )
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("starting"), "{}", text(&out));
    assert_no_secret("serve (migration URL)", &text(&out));

    let out = with_secrets(dir.path())
        .env("COMMANDES_DATABASE_URL", closed_database())
        .arg("serve")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("127.0.0.1:1"), "{}", text(&out));
    assert_no_secret("serve", &text(&out));

    for args in [
        vec!["check"],
        vec!["migrate"],
        vec!["export"],
        vec!["import", "-"],
    ] {
        let out = with_secrets(dir.path())
            .env("COMMANDES_DATABASE_URL", closed_database())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert_no_secret(&format!("{args:?}"), &text(&out));
    }
    let out = with_secrets(dir.path())
        .args([
            "copy",
            "--from",
            &closed_database(),
            "--to",
            "sqlite://t.db",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_no_secret("copy", &text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_logs_of_a_running_service() {
    for relay in [
        format!("nats://{NATS_TOKEN}@127.0.0.1:1"),
        format!("amqp://relay:{AMQP_PASSWORD}@127.0.0.1:1/%2f"),
        format!("nats://relay:{AMQP_PASSWORD}@127.0.0.1:1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = with_secrets(dir.path());
        cmd.env("COMMANDES_DATABASE_URL", "sqlite::memory:")
            .env("COMMANDES_EVENTS_RELAY_URL", &relay);
        let served = serve(&mut cmd, false);
        let client = reqwest::Client::new();
        for token in [
            API_TOKEN,
            READ_TOKEN,
            METRICS_TOKEN,
            "wrong-token-0000-0000",
        ] {
            for path in ["/stats", "/metrics"] {
                client
                    .get(format!("{}{path}", served.base()))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
            }
        }
        // The relay fails at once (nothing listens on port 1) and says so;
        // give it a moment to log it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (clean, logs) = terminate(served);
        assert!(clean, "{logs}");
        assert!(logs.contains("\"request\""), "requests are logged: {logs}");
        assert!(
            logs.contains("cannot publish events"),
            "the relay's failure is logged: {logs}"
        );
        assert!(logs.contains("cannot fetch the JWKS"), "{logs}");
        assert_no_secret(&relay, &logs);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_from_check_and_copy() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let target = with_passwords(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let out = with_secrets(dir.path())
        .args(["generate", "--count", "3", "--to", "sqlite://source.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let out = with_secrets(dir.path())
        .args(["copy", "--from", "sqlite://source.db", "--to", &target])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified: identical"), "{}", text(&out));
    assert_no_secret("copy", &text(&out));

    let out = with_secrets(dir.path())
        .env("COMMANDES_DATABASE_URL", &target)
        .arg("check")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("orders:         3"), "{}", text(&out));
    assert_no_secret("check", &text(&out));

    let out = with_secrets(dir.path())
        .args(["--database-url", &target, "migrate"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_no_secret("migrate", &text(&out));
}

#[test]
fn no_secret_in_help() {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "", "serve", "migrate", "check", "openapi", "import", "export", "copy", "generate",
    ] {
        let mut cmd = with_secrets(dir.path());
        cmd.env("COMMANDES_DATABASE_URL", closed_database())
            .env("DATABASE_URL", closed_database());
        if !sub.is_empty() {
            cmd.arg(sub);
        }
        let out = cmd.arg("--help").output().unwrap();
        assert!(out.status.success(), "{sub}: {}", text(&out));
        assert!(text(&out).contains("Usage: commandes"), "{sub}");
        assert_no_secret(&format!("{sub} --help"), &text(&out));
    }
}

/// A NATS server of its own that requires `token`, with JetStream; `None`
/// (and a notice) when the `nats-server` binary is not installed.
#[cfg(feature = "nats")]
struct TokenNats {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "nats")]
impl TokenNats {
    async fn start(token: &str) -> Option<TokenNats> {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "--auth", token])
            .args(["-js", "-sd", dir.path().to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("SKIPPED: no nats-server binary to test token authentication with");
            return None;
        };
        let server = TokenNats {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("nats-server did not start");
    }
}

#[cfg(feature = "nats")]
impl Drop for TokenNats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token of `nats://TOKEN@host` is given to the client apart from the
/// URL (so the client cannot log it), and is used.
#[cfg(feature = "nats")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_token_in_the_url_authenticates() {
    let Some(nats) = TokenNats::start(NATS_TOKEN).await else {
        return;
    };
    let app = crate::support::TestApp::spawn_with(crate::support::Backend::Sqlite, |s| {
        let url = format!("nats://{NATS_TOKEN}@127.0.0.1:{}", nats.port);
        s.events.relay_url = Some(commandes::relay::BrokerUrl::parse(&url).unwrap());
        s.events.nats_stream = "TOKENTEST".into();
        s.events.nats_subject_prefix = "tokentest.order".into();
        s.events.relay_poll_ms = 50;
    })
    .await
    .unwrap();
    app.create("TOK-1", "c1", "1.00", "pending").await;
    let client = async_nats::ConnectOptions::with_token(NATS_TOKEN.into())
        .connect(format!("127.0.0.1:{}", nats.port))
        .await
        .expect("the token opens the server");
    let js = async_nats::jetstream::new(client);
    let started = std::time::Instant::now();
    loop {
        let published = match js.get_stream("TOKENTEST").await {
            Ok(mut stream) => stream.info().await.unwrap().state.messages,
            Err(_) => 0,
        };
        if published >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay never published with its token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// Through the Supabase stand-in, whose PostgreSQL and PgBouncer ask for the
/// password (SCRAM), with every log on: the password that is sent is never
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_database_password_in_trace_logs_when_it_is_used() {
    let Some(db) = TestDatabase::create_behind_pooler().await else {
        return;
    };
    let migration_url = db.migration_url.clone().unwrap();
    assert!(db.url.contains(crate::standin::PASSWORD));
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = with_secrets(dir.path());
    cmd.env("COMMANDES_DATABASE_URL", &db.url)
        .env("COMMANDES_MIGRATION_DATABASE_URL", &migration_url)
        .env_remove("COMMANDES_EVENTS_RELAY_URL")
        .env_remove("COMMANDES_JWKS_URL")
        .arg("serve");
    let served = serve(&mut cmd, false);
    let r = reqwest::Client::new()
        .get(format!("{}/stats", served.base()))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    assert!(
        !logs.contains(crate::standin::PASSWORD),
        "the password is in the logs: {logs}"
    );
    assert_no_secret("serve through the pooler", &logs);
}
