//! `backup` and `restore`: the SQLite file's backups from the command line
//! (the server takes scheduled ones itself; see `backup::Backups`).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::app;
use crate::backup::lock::DatabaseLock;
use crate::backup::{self, parse_backup_name, s3::Bucket, TakeError};
use crate::config::Settings;
use crate::storage::DatabaseUrl;

/// Flags of `backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Write the backup into this folder (made if missing), as a one-off
    /// copy: no rotation and no upload. Default: the configured folder
    /// (backup.dir), with rotation and the bucket's copy.
    #[arg(long, value_name = "DIR")]
    pub to: Option<PathBuf>,
}

/// Flags of `restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: a local file, `s3://BUCKET/KEY` in the configured
    /// bucket, or the name of a backup in that bucket
    /// (commandes-TIME.db).
    #[arg(value_name = "BACKUP")]
    pub backup: String,
}

/// The SQLite file of the settings, or why there is none to `what`.
fn sqlite_file<'a>(settings: &'a Settings, what: &str) -> anyhow::Result<&'a Path> {
    match &settings.database.url {
        DatabaseUrl::SqliteFile(path) => Ok(path),
        DatabaseUrl::SqliteMemory => {
            anyhow::bail!("cannot {what} an in-memory database: there is no file")
        }
        _ => anyhow::bail!(
            "cannot {what} a PostgreSQL database here: its backups belong to the database \
             (Supabase's backups and point-in-time recovery, or pg_dump and pg_restore); \
             `commandes export` writes the orders to a file"
        ),
    }
}

/// Takes a backup and says what it did.
pub(super) async fn backup(settings: Settings, args: BackupArgs) -> anyhow::Result<()> {
    let db = sqlite_file(&settings, "back up")?.to_path_buf();
    if let Some(dir) = args.to {
        let file = tokio::task::spawn_blocking(move || backup::snapshot(&db, &dir)).await??;
        print_file(&file);
        return Ok(());
    }
    let Some(backups) = app::backups(&settings)? else {
        unreachable!("a SQLite file has backups");
    };
    match backups.take().await {
        Ok(taken) => {
            print_file(&taken.file);
            if let Some(remote) = &taken.uploaded {
                println!("bucket   s3://{}/{}", settings.backup.bucket, remote.key);
            }
            println!(
                "rotated  kept {}, deleted {} in the folder{}",
                settings.backup.keep,
                taken.deleted.len(),
                if taken.uploaded.is_some() {
                    format!(" and {} in the bucket", taken.deleted_remote.len())
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Err(TakeError::Upload(failed)) => {
            println!("backup   {}", backups.dir().join(&failed.name).display());
            Err(anyhow::Error::new(failed))
        }
        Err(TakeError::Backup(e)) => Err(e.into()),
    }
}

fn print_file(file: &backup::BackupFile) {
    println!("backup   {}", file.path.display());
    println!("size     {} bytes", file.info.size);
    println!(
        "holds    {} orders, events up to sequence {}, schema version {}",
        file.info.orders, file.info.last_event_sequence, file.info.schema_version
    );
}

/// Puts a backup in the database's place (the server stopped).
pub(super) async fn restore(settings: Settings, args: RestoreArgs) -> anyhow::Result<()> {
    let db = sqlite_file(&settings, "restore")?.to_path_buf();
    // Refused before anything is downloaded (restore checks again).
    drop(DatabaseLock::exclusive(&db)?);
    let local = Path::new(&args.backup);
    let remote = if args.backup.starts_with("s3://") {
        Some(object_name(&settings, &args.backup)?)
    } else if !local.exists() && parse_backup_name(&args.backup).is_some() {
        Some(args.backup.clone())
    } else {
        None
    };
    let (source, downloaded) = match remote {
        None => (local.to_path_buf(), None),
        Some(name) => {
            let options = settings.backup.s3().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: no such file, and no bucket is configured (backup.bucket)",
                    args.backup
                )
            })?;
            let bucket = Bucket::new(&options)?;
            let file_name = db.file_name().unwrap_or_default().to_string_lossy();
            let temp = db.with_file_name(format!(".{file_name}.{name}.download"));
            let size = bucket.download(&name, &temp).await?;
            println!("fetched  {name} ({size} bytes) from the bucket");
            (temp.clone(), Some(temp))
        }
    };
    let target = db.clone();
    let from = source.clone();
    let restored = tokio::task::spawn_blocking(move || backup::restore(&from, &target)).await?;
    if let Some(temp) = downloaded {
        let _ = std::fs::remove_file(temp);
    }
    let restored = restored?;
    println!("restored {} into {}", args.backup, db.display());
    println!(
        "holds    {} orders, events up to sequence {}",
        restored.info.orders, restored.info.last_event_sequence
    );
    if let Some(kept) = &restored.kept {
        println!("previous {}", kept.display());
    }
    if !restored.info.latest_schema {
        println!("note     the server migrates its schema when it starts");
    }
    Ok(())
}

/// The backup's name in `s3://BUCKET/KEY`, which must be a backup under
/// the configured bucket and prefix (the credentials are the settings').
fn object_name(settings: &Settings, url: &str) -> anyhow::Result<String> {
    let rest = url.trim_start_matches("s3://");
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket != settings.backup.bucket {
        anyhow::bail!(
            "{url}: not in the configured bucket ({:?}, backup.bucket)",
            settings.backup.bucket
        );
    }
    let name = key.rsplit('/').next().unwrap_or_default();
    let prefix = settings.backup.prefix.trim_matches('/');
    let expected = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    if parse_backup_name(name).is_none() || key != expected {
        anyhow::bail!(
            "{url}: not a backup under the configured prefix ({:?}, backup.prefix)",
            settings.backup.prefix
        );
    }
    Ok(name.to_string())
}
