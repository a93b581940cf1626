//! `kill -9` in the middle of a backup: no half file under a backup's
//! name, and the next backup succeeds and clears what was left.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use commandes::backup;

use super::{close, fill, open};

const CHILD_DB: &str = "COMMANDES_TEST_BACKUP_CHILD_DB";
const CHILD_DIR: &str = "COMMANDES_TEST_BACKUP_CHILD_DIR";

/// Run by the test below in a child process of this test binary: takes
/// backups one after the other until it is killed. Does nothing when run
/// as an ordinary test.
#[test]
#[ignore = "the child process of backups_killed_midway_leave_no_half_file"]
fn child_takes_backups_until_killed() {
    let (Ok(db), Ok(dir)) = (std::env::var(CHILD_DB), std::env::var(CHILD_DIR)) else {
        return;
    };
    loop {
        let file = backup::snapshot(Path::new(&db), Path::new(&dir)).unwrap();
        backup::rotate(Path::new(&dir), 2, &file).unwrap();
    }
}

/// The snapshot temporaries in `dir`.
fn partials(dir: &Path) -> Vec<String> {
    super::files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".partial") || n.ends_with(".partial-journal"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_killed_midway_leave_no_half_file() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    // Big enough that a copy takes a while, so the kill lands inside one.
    let store = open(&db).await;
    commandes::transfer::generate::into_store(
        store.as_ref(),
        commandes::domain::generate::Spec::new(20_000, 7, chrono::Utc::now()),
        commandes::storage::OnConflict::Fail,
        false,
    )
    .await
    .unwrap();
    fill(store.as_ref(), "LIVE", 5).await;

    let mut killed_midway = 0;
    for _ in 0..10 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "backup::kill::child_takes_backups_until_killed",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &db)
            .env(CHILD_DIR, &backups)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once it is writing a copy.
        let started = Instant::now();
        while partials(&backups).is_empty() && started.elapsed() < Duration::from_secs(20) {
            assert!(child.try_wait().unwrap().is_none(), "the child stopped");
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !partials(&backups).is_empty() {
            killed_midway += 1;
        }
        // Whatever the moment of the kill, every file with a backup's
        // name is whole and sound.
        for b in backup::list(&backups).unwrap() {
            backup::verify(&b.path).unwrap_or_else(|e| panic!("{e}"));
        }
        if killed_midway >= 2 {
            break;
        }
    }
    assert!(killed_midway >= 1, "no kill landed during a copy");

    // The next backup succeeds, and clears what the killed ones left.
    let (db2, backups2) = (db.clone(), backups.clone());
    let file = tokio::task::spawn_blocking(move || backup::snapshot(&db2, &backups2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.info.orders, 20_005);
    assert!(
        partials(&backups).is_empty(),
        "{:?}",
        super::files(&backups)
    );
    close(store, &db).await;
}
