//! Snapshots under a steady write load hold every acknowledged order and
//! one consistent moment of every table; a restore gives back exactly the
//! state that was backed up; rotation keeps exactly N.

use std::collections::HashSet;
use std::path::Path;

use commandes::backup;
use commandes::domain::Actor;
use commandes::storage::Store;
use rusqlite::{Connection, OpenFlags};

use super::{close, files, fill, open, state, Load};

/// Takes a snapshot on a blocking thread, as the server will.
async fn snapshot(db: &Path, dir: &Path) -> backup::BackupFile {
    let (db, dir) = (db.to_path_buf(), dir.to_path_buf());
    tokio::task::spawn_blocking(move || backup::snapshot(&db, &dir))
        .await
        .unwrap()
        .unwrap()
}

/// What a backup file holds, read with SQLite directly: its `order_id`s,
/// and whether its tables agree with each other (the counters with the
/// orders, every order with its first event), which they do only in a
/// copy of one moment.
fn read_backup(path: &Path) -> HashSet<String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let ids = conn
        .prepare("select order_id from commandes")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<rusqlite::Result<HashSet<_>>>()
        .unwrap();
    let disagreeing: i64 = conn
        .query_row(
            "select count(*) from commandes_stats s
              where s.order_count != (select count(*) from commandes c where c.status = s.status)
                 or s.total_cents != (select coalesce(sum(total_cents), 0) from commandes c
                                       where c.status = s.status)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(disagreeing, 0, "the counters disagree with the orders");
    let without_event: i64 = conn
        .query_row(
            "select count(*) from commandes c
              where not exists (select 1 from commandes_events e where e.order_ref = c.id)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(without_event, 0, "orders without their creation event");
    let orphan_events: i64 = conn
        .query_row(
            "select count(*) from commandes_events e
              where not exists (select 1 from commandes c where c.id = e.order_ref)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphan_events, 0, "events of orders the copy does not have");
    // A backup is one self-contained file: nothing was made beside it.
    for side in ["-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_os_string();
        p.push(side);
        assert!(!Path::new(&p).exists(), "{side} beside the backup");
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_taken_under_write_load_hold_every_acknowledged_order() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    let store = open(&db).await;
    fill(store.as_ref(), "BASE", 300).await;
    let load = Load::start(store.clone(), 4);

    let mut taken = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Acknowledged before the backup begins.
        let before = load.acked();
        let file = snapshot(&db, &backups).await;
        let held = read_backup(&file.path);
        let missing: Vec<_> = before.iter().filter(|id| !held.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "{} acknowledged orders missing",
            missing.len()
        );
        assert_eq!(file.info.orders as usize, held.len());
        assert!(file.info.latest_schema);
        assert_eq!(backup::verify(&file.path).unwrap(), file.info);
        taken.push(file);
    }
    let acked = load.stop().await;
    assert!(acked.len() > 100, "only {} orders written", acked.len());

    // Oldest first, each under a name that sorts by time.
    let listed = backup::list(&backups).unwrap();
    let names: Vec<_> = listed.iter().map(|b| b.name.clone()).collect();
    let expected: Vec<_> = taken.iter().map(|b| b.name.clone()).collect();
    assert_eq!(names, expected);
    assert!(taken.windows(2).all(|w| w[0].time < w[1].time));
    // Later backups hold more.
    assert!(taken
        .windows(2)
        .all(|w| w[0].info.orders < w[1].info.orders));
    close(store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_gives_back_exactly_the_state_that_was_backed_up() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    let store = open(&db).await;
    fill(store.as_ref(), "KEPT", 60).await;
    let file = snapshot(&db, &backups).await;
    let backed_up = state(store.as_ref()).await;
    assert_eq!(file.info.orders, 60);
    assert_eq!(file.info.last_event_sequence, backed_up.last_event_sequence);

    // Later changes, which the restore takes back.
    fill(store.as_ref(), "LATER", 10).await;
    let first = backed_up.orders[0].id;
    store.delete(first, None, &Actor::system()).await.unwrap();
    let later = state(store.as_ref()).await;
    assert_ne!(later, backed_up);
    close(store, &db).await;

    let restored = backup::restore(&file.path, &db).unwrap();
    assert_eq!(restored.info, file.info);
    // The database that was replaced is kept beside it, whole.
    let kept = restored.kept.expect("the old database is kept");
    assert_eq!(kept.parent(), Some(dir.path()));
    let name = kept.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("commandes.db.before-restore-"), "{name}");
    assert_eq!(backup::verify(&kept).unwrap().orders, 60 + 10 - 1);
    // The backup itself is left as it was.
    assert_eq!(backup::verify(&file.path).unwrap(), file.info);

    let store = open(&db).await;
    assert_eq!(state(store.as_ref()).await, backed_up);
    // The event feed goes on from the backup's last number.
    fill(store.as_ref(), "AFTER", 1).await;
    let next = store
        .events_after(backed_up.last_event_sequence, 10)
        .await
        .unwrap();
    assert_eq!(next[0].sequence, backed_up.last_event_sequence + 1);
    close(store, &db).await;

    // The kept database is a database as it was: restoring it brings
    // the later state back.
    backup::restore(&kept, &db).unwrap();
    let store = open(&db).await;
    assert_eq!(state(store.as_ref()).await, later);
    close(store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_exactly_n_verified_backups_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    std::fs::create_dir(&backups).unwrap();
    let store = open(&db).await;
    // Files that are not backups are never rotated away.
    std::fs::write(backups.join("notes.txt"), "mine").unwrap();
    std::fs::write(backups.join("commandes.db"), "not a backup name").unwrap();

    let mut names = Vec::new();
    for round in 0..5 {
        fill(store.as_ref(), &format!("R{round}"), 3).await;
        let file = snapshot(&db, &backups).await;
        let deleted = backup::rotate(&backups, 3, &file).unwrap();
        names.push(file.name.clone());
        let expected_deleted: Vec<_> = if round >= 3 {
            vec![names[round - 3].clone()]
        } else {
            vec![]
        };
        let deleted: Vec<_> = deleted.into_iter().map(|b| b.name).collect();
        assert_eq!(deleted, expected_deleted, "round {round}");
        let listed: Vec<_> = backup::list(&backups)
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect();
        assert_eq!(
            listed,
            names[names.len().saturating_sub(3)..],
            "round {round}"
        );
    }
    // Exactly the three newest, each one sound and holding what it should.
    let listed = backup::list(&backups).unwrap();
    let orders: Vec<_> = listed
        .iter()
        .map(|b| backup::verify(&b.path).unwrap().orders)
        .collect();
    assert_eq!(orders, vec![9, 12, 15]);
    let mut expected = vec![
        ".commandes-backup.lock".to_string(),
        "commandes.db".into(),
        "notes.txt".into(),
    ];
    expected.extend(names[2..].iter().cloned());
    expected.sort();
    assert_eq!(files(&backups), expected);
    // Zero keeps the one just taken.
    let file = snapshot(&db, &backups).await;
    assert_eq!(backup::rotate(&backups, 0, &file).unwrap().len(), 3);
    assert_eq!(backup::list(&backups).unwrap().len(), 1);
    close(store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_copied_with_its_wal_is_restored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("commandes.db");
    let store = open(&db).await;
    fill(store.as_ref(), "WAL", 40).await;
    // Files copied from a server that was stopped without a checkpoint:
    // the recent commits are in the `-wal` only.
    let copied = dir.path().join("copied.db");
    std::fs::copy(&db, &copied).unwrap();
    std::fs::copy(
        dir.path().join("commandes.db-wal"),
        dir.path().join("copied.db-wal"),
    )
    .unwrap();
    let expected = state(store.as_ref()).await;
    close(store, &db).await;
    std::fs::remove_file(dir.path().join("copied.db-shm")).ok();

    let target = dir.path().join("restored.db");
    let restored = backup::restore(&copied, &target).unwrap();
    assert_eq!(restored.info.orders, 40);
    assert_eq!(restored.kept, None);
    // One file holds it all: nothing of the copy's WAL is needed.
    std::fs::remove_file(dir.path().join("copied.db-wal")).unwrap();
    let store = open(&target).await;
    assert_eq!(state(store.as_ref()).await, expected);
    close(store, &target).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_replaced_and_kept_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (db, backups) = (dir.path().join("commandes.db"), dir.path().join("backups"));
    let store = open(&db).await;
    fill(store.as_ref(), "OK", 12).await;
    let file = snapshot(&db, &backups).await;
    close(store, &db).await;
    // A bad deploy wrote over the database, and left a WAL of its own.
    std::fs::write(&db, "garbage ".repeat(1000)).unwrap();
    let wal = dir.path().join("commandes.db-wal");
    std::fs::write(&wal, "stale wal").unwrap();

    let restored = backup::restore(&file.path, &db).unwrap();
    let kept = restored.kept.unwrap();
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        "garbage ".repeat(1000).as_bytes()
    );
    let mut kept_wal = kept.into_os_string();
    kept_wal.push("-wal");
    assert_eq!(std::fs::read(&kept_wal).unwrap(), b"stale wal");
    assert!(!wal.exists(), "a foreign WAL beside the restored database");
    let store = open(&db).await;
    assert_eq!(state(store.as_ref()).await.orders.len(), 12);
    close(store, &db).await;
}
