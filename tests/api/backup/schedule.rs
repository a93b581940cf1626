//! The server's scheduled backups (the binary, a real SQLite file, moto's
//! S3 server): a bucket that fails is counted and retried without
//! stopping the service; once it answers, each backup is uploaded, and
//! rotation keeps exactly `keep` in the folder and in the bucket; the
//! metrics of the last good backup are served.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use commandes::backup;

use super::bucket::{Moto, Raw, BUCKET, KEY, SECRET};
use super::served::{Client, TOKEN};
use crate::process::{commandes, serve, terminate};

const KEEP: usize = 2;
const PREFIX: &str = "shop/db";

/// A metric's value in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn scrape(client: &Client) -> String {
    client
        .http
        .get(format!("{}/metrics", client.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (at most a minute) until `done` says yes.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(dir: &Path) -> Vec<String> {
    backup::list(dir)
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_backups_are_uploaded_and_rotated_and_failures_retried() {
    let Some(moto) = tokio::task::spawn_blocking(Moto::start).await.unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("commandes.db");
    let backups = dir.path().join("backups");
    let served = serve(
        commandes(dir.path())
            .env("COMMANDES_API_TOKENS", TOKEN)
            .env(
                "COMMANDES_DATABASE_URL",
                format!("sqlite://{}", db.display()),
            )
            .env("COMMANDES_BACKUP__INTERVAL", "1s")
            .env("COMMANDES_BACKUP__KEEP", KEEP.to_string())
            .env("COMMANDES_BACKUP__ENDPOINT", &moto.endpoint)
            .env("COMMANDES_BACKUP__BUCKET", BUCKET)
            .env("COMMANDES_BACKUP__PREFIX", PREFIX)
            .env("COMMANDES_BACKUP__ACCESS_KEY_ID", KEY)
            .env("COMMANDES_BACKUP__SECRET_ACCESS_KEY", SECRET)
            .env("COMMANDES_BACKUP__PATH_STYLE", "true")
            .arg("--no-demo-data"),
        false,
    );
    let client = Client {
        http: reqwest::Client::new(),
        base: served.base(),
    };
    client.create("SCHED-0", 1234).await;

    // The bucket does not exist yet: every upload fails, is counted, and
    // the service keeps serving (and backing up into its folder).
    until("failures counted", async || {
        metric(&scrape(&client).await, "commandes_backup_failures_total").unwrap_or(0.0) >= 2.0
    })
    .await;
    client.create("SCHED-1", 1234).await;
    assert!(names(&backups).len() <= KEEP, "{:?}", names(&backups));

    // Once it exists, the next backups reach it.
    let raw = Raw::new(&moto.endpoint);
    raw.create_bucket().await;
    let mut seen = BTreeSet::new();
    until("four more backups", async || {
        let keys = raw.keys().await;
        seen.extend(keys);
        seen.len() >= 4
    })
    .await;
    let page = scrape(&client).await;
    let failures = metric(&page, "commandes_backup_failures_total").unwrap();
    // No failure since: two more backups, the counter unchanged.
    until("two more backups", async || {
        seen.extend(raw.keys().await);
        seen.len() >= 6
    })
    .await;
    let again = metric(&scrape(&client).await, "commandes_backup_failures_total").unwrap();
    assert_eq!(again, failures);
    let last = metric(&page, "commandes_backup_last_success_timestamp_seconds").unwrap();
    let size = metric(&page, "commandes_backup_last_size_bytes").unwrap();
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(last > now - 30.0 && last <= now + 1.0, "{last} vs {now}");
    assert!(size > 0.0, "{page}");
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    assert!(logs.contains("the backup failed"), "{logs}");
    assert!(!logs.contains(SECRET), "the secret key is in the logs");
    assert!(
        !logs.contains("X-Amz-Signature"),
        "a signed URL in the logs"
    );

    // Exactly `keep` in each place, the same ones, the newest; each a
    // verified backup with the orders.
    let local = names(&backups);
    assert_eq!(local.len(), KEEP, "{local:?}");
    let remote = raw.keys().await;
    let expected: Vec<String> = local.iter().map(|n| format!("{PREFIX}/{n}")).collect();
    assert_eq!(remote, expected);
    assert!(seen.len() > KEEP);
    assert_eq!(seen.iter().max(), expected.iter().max());
    for name in &local {
        assert_eq!(backup::verify(&backups.join(name)).unwrap().orders, 2);
    }
    assert!(failures >= 2.0);

    // `restore NAME` fetches the newest from the bucket (the server is
    // stopped) and puts it in place.
    let newest = local.last().unwrap();
    std::fs::remove_dir_all(&backups).unwrap();
    let out = commandes(dir.path())
        .env(
            "COMMANDES_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("COMMANDES_BACKUP__ENDPOINT", &moto.endpoint)
        .env("COMMANDES_BACKUP__BUCKET", BUCKET)
        .env("COMMANDES_BACKUP__PREFIX", PREFIX)
        .env("COMMANDES_BACKUP__ACCESS_KEY_ID", KEY)
        .env("COMMANDES_BACKUP__SECRET_ACCESS_KEY", SECRET)
        .env("COMMANDES_BACKUP__PATH_STYLE", "true")
        .args(["restore", &format!("s3://{BUCKET}/{PREFIX}/{newest}")])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("2 orders"), "{said}");
    assert_eq!(backup::verify(&db).unwrap().orders, 2);
    // Nothing of the download is left beside the database.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("download"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
