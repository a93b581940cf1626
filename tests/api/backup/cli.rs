//! `commandes backup` and `commandes restore`, the binary against a
//! served SQLite file: a backup taken while the server writes, a restore
//! refused while it runs (nothing changes), and after the restore a new
//! server answers exactly what was backed up, its event feed going on
//! from the backup's last number. On PostgreSQL, `backup` says where
//! backups come from instead.

use std::path::{Path, PathBuf};
use std::process::Output;

use commandes::backup;
use sha2::{Digest, Sha256};

use super::served::{serves_the_backup, start, Client};
use crate::process::{commandes, terminate};

/// Runs the binary with `args` against the database at `db`.
fn run(dir: &Path, db: &Path, args: &[&str]) -> Output {
    commandes(dir)
        .env(
            "COMMANDES_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .args(args)
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The path after `backup` in the command's output.
fn backup_path(stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("backup"))
        .unwrap_or_else(|| panic!("no backup line in {stdout}"));
    PathBuf::from(line.trim())
}

fn digest(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_back_up_a_served_database_and_restore_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("commandes.db");
    let served = start(dir.path(), &db);
    let client = Client {
        http: reqwest::Client::new(),
        base: served.base(),
    };
    for i in 0..25 {
        let id = client.create(&format!("CLI-{i}"), 700 + i * 41).await;
        if i % 3 == 0 {
            let body = serde_json::json!({"status": "processing"});
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("/commandes/{id}"),
                    Some(body),
                )
                .await;
        }
    }

    // Taken by the command while the server runs: into `backups` beside
    // the database, by default.
    let out = run(dir.path(), &db, &["backup"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let file = backup_path(&stdout);
    assert_eq!(file.parent().unwrap(), dir.path().join("backups"));
    assert!(stdout.contains(&format!(
        "{} bytes",
        std::fs::metadata(&file).unwrap().len()
    )));
    let info = backup::verify(&file).unwrap();
    assert_eq!(info.orders, 25);
    let backed_up = client.state().await;
    let feed = backed_up["feed"].as_array().unwrap();
    let last = feed.last().unwrap()["data"]["sequence"].as_i64().unwrap();
    assert_eq!(info.last_event_sequence, last);

    // Later changes, which the restore undoes.
    for i in 0..4 {
        client.create(&format!("LATER-{i}"), 100 + i).await;
    }
    let later = client.state().await;

    // Refused while the server runs: non-zero, and nothing changes.
    let before = digest(&file);
    let out = run(dir.path(), &db, &["restore", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert_eq!(client.state().await, later);
    assert_eq!(digest(&file), before);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");

    let out = run(dir.path(), &db, &["restore", file.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("25 orders"), "{stdout}");
    let kept = stdout
        .lines()
        .find_map(|l| l.strip_prefix("previous"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(backup::verify(&kept).unwrap().orders, 29);

    let served = serves_the_backup(dir.path(), &db, &backed_up, last).await;

    // A one-off copy elsewhere: no rotation of the configured folder.
    let elsewhere = dir.path().join("usb");
    let out = run(
        dir.path(),
        &db,
        &["backup", "--to", elsewhere.to_str().unwrap()],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(backup_path(&stdout).parent().unwrap(), elsewhere);
    assert_eq!(backup::list(&elsewhere).unwrap().len(), 1);
    assert_eq!(backup::list(&dir.path().join("backups")).unwrap().len(), 1);
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");

    // A restore of a file that is not a backup changes nothing.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let before = digest(&db);
    let out = run(dir.path(), &db, &["restore", junk.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("not a SQLite database"), "{stderr}");
    assert_eq!(digest(&db), before);
}

#[test]
fn on_postgresql_backup_says_where_backups_come_from() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["backup", "restore"] {
        let mut cmd = commandes(dir.path());
        cmd.env(
            "COMMANDES_DATABASE_URL",
            "postgres://shop:s3cret-pw@127.0.0.1:1/shop",
        )
        .arg(command);
        if command == "restore" {
            cmd.arg("commandes-20261207T171500.000Z.db");
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        for words in ["PostgreSQL", "pg_dump", "commandes export"] {
            assert!(stderr.contains(words), "{stderr}");
        }
        assert!(!stderr.contains("s3cret-pw") && !stdout.contains("s3cret-pw"));
    }
}

/// The server holds the lock file shared while it runs and until its
/// store has closed; a server does not start while a restore holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_and_a_restore_exclude_each_other() {
    use commandes::backup::{lock::DatabaseLock, Error};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("commandes.db");
    let served = start(dir.path(), &db);
    let err = DatabaseLock::exclusive(&db).unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err:?}");
    let (clean, logs) = terminate(served);
    assert!(clean, "{logs}");
    let restoring = DatabaseLock::exclusive(&db).unwrap();

    let out = commandes(dir.path())
        .env(
            "COMMANDES_DATABASE_URL",
            format!("sqlite://{}", db.display()),
        )
        .env("COMMANDES_API_TOKENS", super::served::TOKEN)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("a restore of this database is running"),
        "{stderr}"
    );
    drop(restoring);
}
