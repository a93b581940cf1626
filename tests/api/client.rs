//! A client generated from the served `/openapi.json` by a common
//! generator (openapi-python-client, from PyPI) runs the README's tour
//! against the demo binary: `client/tour.py`.
//!
//! The generator must be on PATH (`.ci/run` installs it). Without it the
//! test says so and passes, unless `CI` or `COMMANDES_REQUIRE_BROKERS=1`
//! is set: then a missing generator is a failure, not a skip.

use std::path::Path;
use std::process::Command;

use crate::process::{commandes, serve, terminate};

const GENERATOR: &str = "openapi-python-client";

/// Whether the generator runs; panics when it must and does not.
fn generator_present() -> bool {
    let present = Command::new(GENERATOR)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let required = std::env::var_os("CI").is_some()
        || std::env::var("COMMANDES_REQUIRE_BROKERS").as_deref() == Ok("1");
    if !present && required {
        panic!("{GENERATOR} is not installed (pip install {GENERATOR}; .ci/run does)");
    }
    if !present {
        eprintln!("skipped: {GENERATOR} is not installed (pip install {GENERATOR})");
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_python_client_runs_the_tour() {
    if !generator_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let served = serve(&mut commandes(dir.path()), true);
    let (base, token) = (served.base(), served.token.clone().unwrap());
    let document = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    std::fs::write(dir.path().join("openapi.json"), document).unwrap();

    // Any warning means a part of the API was left out of the client.
    let out = Command::new(GENERATOR)
        .args(["generate", "--path", "openapi.json", "--meta", "none"])
        .args(["--output-path", "package/commandes_client"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{GENERATOR} failed: {said}");
    assert!(
        !said.contains("Warning") && !said.contains("WARNING"),
        "{GENERATOR} left parts out: {said}"
    );

    let tour = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/client/tour.py");
    let out = Command::new("python3")
        .arg(&tour)
        .env("PYTHONPATH", dir.path().join("package"))
        .env("COMMANDES_BASE", &base)
        .env("COMMANDES_TOKEN", &token)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "the tour failed: {stdout}{stderr}");
    assert!(stdout.contains("client tour: ok"), "{stdout}{stderr}");
    assert!(terminate(served).0);
}
