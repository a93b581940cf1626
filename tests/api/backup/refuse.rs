//! What `verify` and `restore` refuse, and that a refused restore changes
//! nothing: a damaged file, a half file, a foreign SQLite file, a file
//! that is not SQLite, a schema from a newer binary, and a database that
//! is in use.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use commandes::backup::{self, lock::DatabaseLock, Error};
use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::{close, files, fill, open};

/// A closed database with orders, and a good backup of it.
struct Setup {
    dir: tempfile::TempDir,
    db: PathBuf,
    good: backup::BackupFile,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("commandes.db");
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let store = open(&db).await;
    fill(store.as_ref(), "OLD", 200).await;
    let good = backup::snapshot(&db, &backups).unwrap();
    fill(store.as_ref(), "NEW", 5).await;
    close(store, &db).await;
    Setup { dir, db, good }
}

/// The database's bytes and the folder's file names.
fn fingerprint(db: &Path) -> (Vec<u8>, Vec<String>) {
    let digest = Sha256::digest(std::fs::read(db).unwrap()).to_vec();
    let mut names = files(db.parent().unwrap());
    // The lock file is the one thing a refused restore may leave: it is
    // the server's, empty, and meant to stay.
    names.retain(|n| n != "commandes.db.lock");
    (digest, names)
}

/// `restore(bad)` is refused with what `verify(bad)` says, and changes
/// nothing.
fn refused(setup: &Setup, bad: &Path) -> Error {
    let before = fingerprint(&setup.db);
    let checked = backup::verify(bad).unwrap_err();
    let err = backup::restore(bad, &setup.db).unwrap_err();
    assert_eq!(err.to_string(), checked.to_string());
    assert_eq!(fingerprint(&setup.db), before, "{err}");
    assert_eq!(backup::verify(&setup.db).unwrap().orders, 205);
    err
}

fn copy_of_good(setup: &Setup, name: &str) -> PathBuf {
    let path = setup.dir.path().join(name);
    std::fs::copy(&setup.good.path, &path).unwrap();
    path
}

#[tokio::test]
async fn restore_refuses_damaged_and_half_files() {
    let setup = setup().await;
    let page = 4096;

    // Garbage over the pages of the middle of the file.
    let damaged = copy_of_good(&setup, "damaged.db");
    let len = std::fs::metadata(&damaged).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&damaged)
        .unwrap();
    f.seek(SeekFrom::Start(len / page / 2 * page)).unwrap();
    f.write_all(&vec![0x5a; 4 * page as usize]).unwrap();
    drop(f);
    let err = refused(&setup, &damaged);
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");

    // What a copy cut short would leave.
    let half = copy_of_good(&setup, "half.db");
    let f = std::fs::OpenOptions::new().write(true).open(&half).unwrap();
    f.set_len(len / page / 2 * page).unwrap();
    drop(f);
    let err = refused(&setup, &half);
    assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");

    // The good backup itself is still fine and restorable.
    backup::verify(&setup.good.path).unwrap();
}

#[tokio::test]
async fn restore_refuses_files_that_are_not_commandes_databases() {
    let setup = setup().await;

    let text = setup.dir.path().join("orders.csv");
    std::fs::write(&text, "order_id,customer_id\nA,B\n".repeat(500)).unwrap();
    let err = refused(&setup, &text);
    assert!(matches!(err, Error::NotSqlite(_)), "{err:?}");

    let other = setup.dir.path().join("other-app.db");
    let conn = Connection::open(&other).unwrap();
    conn.execute_batch(
        "create table commandes (id integer primary key); insert into commandes default values;",
    )
    .unwrap();
    drop(conn);
    let err = refused(&setup, &other);
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");

    // Our table's name, another history.
    let forked = copy_of_good(&setup, "forked.db");
    let conn = Connection::open(&forked).unwrap();
    conn.execute(
        "update commandes_schema_migrations set name = 'something_else' where version = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let err = refused(&setup, &forked);
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");

    // An empty file is a valid, empty SQLite database: not ours.
    let empty = setup.dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = refused(&setup, &empty);
    assert!(matches!(err, Error::Foreign { .. }), "{err:?}");

    let missing = setup.dir.path().join("missing.db");
    let err = refused_missing(&setup, &missing);
    assert!(matches!(err, Error::NoDatabase(_)), "{err:?}");
}

fn refused_missing(setup: &Setup, missing: &Path) -> Error {
    let before = fingerprint(&setup.db);
    let err = backup::restore(missing, &setup.db).unwrap_err();
    assert_eq!(fingerprint(&setup.db), before);
    assert!(!missing.exists());
    err
}

#[tokio::test]
async fn restore_refuses_a_schema_from_a_newer_binary() {
    let setup = setup().await;
    let newer = copy_of_good(&setup, "newer.db");
    let conn = Connection::open(&newer).unwrap();
    conn.execute(
        "insert into commandes_schema_migrations (version, name, applied_at) values (99, 'future', 'x')",
        [],
    )
    .unwrap();
    drop(conn);
    let err = refused(&setup, &newer);
    assert!(
        matches!(err, Error::NewerSchema { found: 99, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_database_in_use() {
    let setup = setup().await;
    let before = fingerprint(&setup.db);

    // Servers of this binary, wired to take the lock file: they share it,
    // and a restore may not take it from them.
    let lock = DatabaseLock::shared(&setup.db).unwrap();
    assert_eq!(
        lock.path(),
        setup.dir.path().join("commandes.db.lock").as_path()
    );
    let second = DatabaseLock::shared(&setup.db).unwrap();
    assert!(matches!(
        DatabaseLock::exclusive(&setup.db),
        Err(Error::InUse(_))
    ));
    let err = backup::restore(&setup.good.path, &setup.db).unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err:?}");
    assert_eq!(fingerprint(&setup.db), before);
    drop((lock, second));
    // And a server cannot start while a restore holds it.
    let restoring = DatabaseLock::exclusive(&setup.db).unwrap();
    assert!(matches!(
        DatabaseLock::shared(&setup.db),
        Err(Error::InUse(_))
    ));
    drop(restoring);

    // A store that has the file open, without the lock file (as servers
    // do until they take it): SQLite's own locks tell.
    let store = open(&setup.db).await;
    let err = backup::restore(&setup.good.path, &setup.db).unwrap_err();
    assert!(matches!(err, Error::InUse(_)), "{err:?}");
    // The store goes on serving what it had.
    fill(store.as_ref(), "STILL", 1).await;
    close(store, &setup.db).await;
    assert_eq!(backup::verify(&setup.db).unwrap().orders, 206);

    // Once nothing holds it, the same restore goes through.
    let restored = backup::restore(&setup.good.path, &setup.db).unwrap();
    assert_eq!(restored.info.orders, 200);
    assert_eq!(backup::verify(&setup.db).unwrap().orders, 200);
}
