//! `commandes healthcheck` against the real server, and against a peer on
//! the port that answers 503, answers too much, or never answers: exit 0 or
//! 1, one line saying why, within the timeout.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::process::{commandes, serve, terminate};
use crate::support::TOKEN;

/// `healthcheck ARGS` asking port `port` on the loopback.
fn healthcheck(port: u16, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    commandes(dir.path())
        .env("COMMANDES_HOST", "127.0.0.1")
        .env("COMMANDES_PORT", port.to_string())
        .arg("healthcheck")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A peer that reads one request and writes `answer` (nothing, and holds
/// the connection, when `None`), on a free port of the loopback.
fn peer(answer: Option<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = conn.read(&mut buf);
        match answer {
            Some(bytes) => {
                let _ = conn.write_all(&bytes);
            }
            None => std::thread::sleep(Duration::from_secs(30)),
        }
    });
    port
}

#[test]
fn ready_and_alive_against_the_real_server_then_refused_once_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        commandes(dir.path())
            .env("COMMANDES_API_TOKENS", TOKEN)
            .env("COMMANDES_LOG_FORMAT", "json")
            .args(["serve", "--no-demo-data"]),
        false,
    );
    let port = served.port;
    let out = healthcheck(port, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("ready: http://127.0.0.1:{port}/health/ready answered 200")
    );
    let out = healthcheck(port, &["--live"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("alive: "), "{}", stdout(&out));

    let (clean, _) = terminate(served);
    assert!(clean);
    let out = healthcheck(port, &[]);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "commandes: not ready: http://127.0.0.1:{port}/health/ready: cannot connect ("
        )),
        "{line}"
    );
}

#[test]
fn a_503_fails_with_the_servers_reason_on_one_line() {
    let body = r#"{"status":"unavailable","reason":"the database\ncannot be reached"}"#;
    let port = peer(Some(
        format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    ));
    let out = healthcheck(port, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim_end(),
        format!(
            "commandes: not ready: http://127.0.0.1:{port}/health/ready answered 503: \
             the database cannot be reached"
        )
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_endless_answer_is_read_no_further_than_a_bound() {
    // 64 MiB of reason: the line keeps 200 characters of it.
    let mut answer =
        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 67108900\r\n\r\n{\"reason\":\""
            .to_vec();
    answer.extend(std::iter::repeat_n(b'x', 64 << 20));
    let port = peer(Some(answer));
    let out = healthcheck(port, &["--timeout", "5"]);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr(&out);
    assert!(line.contains("answered 500"), "{line}");
    assert!(line.len() < 400, "{} bytes", line.len());
}

#[test]
fn a_peer_that_never_answers_fails_within_the_timeout() {
    let port = peer(None);
    let began = Instant::now();
    let out = healthcheck(port, &["--live", "--timeout", "1"]);
    let took = began.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "not alive: http://127.0.0.1:{port}/health/live: no answer"
        )),
        "{}",
        stderr(&out)
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
