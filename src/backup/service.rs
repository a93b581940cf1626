//! The whole procedure, as the server's schedule, the admin API and
//! `commandes backup` run it: snapshot and verify, upload, then rotate
//! locally and in the bucket; one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::s3::{Bucket, RemoteBackup, S3Options};
use super::{list, parse_backup_name, rotate, snapshot, BackupEntry, BackupFile, Error};
use crate::prometheus::{BACKUP_FAILURES, BACKUP_LAST_SIZE, BACKUP_LAST_SUCCESS};

/// The backups of one database: where they go, how many are kept, and
/// the bucket of the off-machine copy. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Backups {
    db_path: PathBuf,
    dir: PathBuf,
    keep: usize,
    bucket: Option<Bucket>,
    /// Held while a backup runs (snapshot to rotation): a second one asked
    /// for meanwhile is [`Error::Busy`] at once.
    running: tokio::sync::Mutex<()>,
}

/// What [`Backups::take`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct Taken {
    /// The new backup, verified, under its final name.
    pub file: BackupFile,
    /// Its copy in the bucket, when there is a bucket.
    pub uploaded: Option<RemoteBackup>,
    /// The older backups rotation deleted from the folder.
    pub deleted: Vec<BackupEntry>,
    /// The older backups rotation deleted from the bucket.
    pub deleted_remote: Vec<String>,
}

/// A backup was taken and verified, but the bucket refused its copy (or
/// its rotation); the local backup and rotation stand.
#[derive(Debug, thiserror::Error)]
#[error("the backup {name} was taken, but its copy in the bucket failed: {source}")]
pub struct UploadFailed {
    /// The new backup's name.
    pub name: String,
    #[source]
    pub source: Error,
}

/// Why [`Backups::take`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    /// No backup was taken ([`Error::Busy`]: one is running).
    #[error(transparent)]
    Backup(#[from] Error),
    /// The backup was taken; the bucket failed.
    #[error(transparent)]
    Upload(#[from] UploadFailed),
}

impl Backups {
    /// The backups of the SQLite file `db_path` into `dir`, keeping
    /// `keep` (at least 1), copied to the bucket `s3` describes if any.
    pub fn new(
        db_path: &Path,
        dir: &Path,
        keep: usize,
        s3: Option<&S3Options>,
    ) -> Result<Backups, Error> {
        Ok(Backups {
            db_path: db_path.to_path_buf(),
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            bucket: s3.map(Bucket::new).transpose()?,
            running: tokio::sync::Mutex::new(()),
        })
    }

    /// The folder of the backups.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bucket, if there is one.
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    /// Takes a backup now: snapshot and verify (on a blocking thread),
    /// upload, rotate the folder, rotate the bucket. Older backups are
    /// deleted only once the new one is verified (the folder) or uploaded
    /// (the bucket). [`Error::Busy`] at once while another backup of
    /// this service (or any process, into the same folder) runs.
    ///
    /// Records the metrics of the last good backup, and counts failures
    /// other than `Busy`.
    pub async fn take(&self) -> Result<Taken, TakeError> {
        let Ok(_running) = self.running.try_lock() else {
            return Err(Error::Busy(self.dir.clone()).into());
        };
        let outcome = self.take_alone().await;
        match &outcome {
            Ok(taken) => record_success(&taken.file),
            Err(TakeError::Backup(Error::Busy(_))) => {}
            Err(TakeError::Upload(failed)) => {
                // The backup itself is good, and is the last good one.
                if let Ok(entries) = list(&self.dir) {
                    if let Some(entry) = entries.iter().find(|e| e.name == failed.name) {
                        record_good(entry.time, entry.size);
                    }
                }
                metrics::counter!(BACKUP_FAILURES).increment(1);
            }
            Err(_) => metrics::counter!(BACKUP_FAILURES).increment(1),
        }
        outcome
    }

    async fn take_alone(&self) -> Result<Taken, TakeError> {
        let (db, dir) = (self.db_path.clone(), self.dir.clone());
        let file = blocking(move || snapshot(&db, &dir)).await?;
        let (dir, keep, newest) = (self.dir.clone(), self.keep, file.clone());
        let deleted = blocking(move || rotate(&dir, keep, &newest)).await?;
        let mut taken = Taken {
            file,
            uploaded: None,
            deleted,
            deleted_remote: Vec::new(),
        };
        if let Some(bucket) = &self.bucket {
            let failed = |source| UploadFailed {
                name: taken.file.name.clone(),
                source,
            };
            let remote = bucket.upload(&taken.file).await.map_err(failed)?;
            taken.deleted_remote = bucket.rotate(self.keep, &remote).await.map_err(failed)?;
            taken.uploaded = Some(remote);
        }
        Ok(taken)
    }

    /// The backups in the folder, oldest first.
    pub async fn list(&self) -> Result<Vec<BackupEntry>, Error> {
        let dir = self.dir.clone();
        blocking(move || list(&dir)).await
    }

    /// The backup called `name`, if the folder has one by that name. Only
    /// a backup's name (`commandes-<time>.db`) can match, so a name from
    /// a request never reaches another file.
    pub async fn find(&self, name: &str) -> Result<Option<BackupEntry>, Error> {
        if parse_backup_name(name).is_none() {
            return Ok(None);
        }
        Ok(self.list().await?.into_iter().find(|b| b.name == name))
    }

    /// Whether a backup is running now.
    pub fn is_running(&self) -> bool {
        self.running.try_lock().is_err()
    }

    /// Holds the guard that [`Backups::take`] holds, as a running backup
    /// would (for tests of what happens meanwhile).
    #[doc(hidden)]
    pub async fn hold(self: Arc<Self>, for_how_long: Duration) {
        let _running = self.running.lock().await;
        tokio::time::sleep(for_how_long).await;
    }
}

/// Runs file and SQLite work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::io(
            Path::new("."),
            std::io::Error::other(format!("the backup task failed: {e}")),
        ))
    })
}

fn record_success(file: &BackupFile) {
    record_good(file.time, file.info.size);
}

fn record_good(time: chrono::DateTime<chrono::Utc>, size: u64) {
    metrics::gauge!(BACKUP_LAST_SUCCESS).set(time.timestamp_millis() as f64 / 1000.0);
    metrics::gauge!(BACKUP_LAST_SIZE).set(size as f64);
}
