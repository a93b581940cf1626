//! `/admin/backups`: the backups of the SQLite file, for the operator's
//! static read-write tokens only ([`AdminAuth`]): list them, take one now,
//! download one.
//!
//! On PostgreSQL (and an in-memory SQLite database) every operation is a
//! 404 that says where backups come from instead: the database's own
//! backups (Supabase's, `pg_dump`), or `commandes export` for the orders.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::{Body, IntoResponse, Request, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::auth::AdminAuth;
use super::declared::{ErrorSet, Errors};
use super::error::ApiError;
use super::extract::no_query;
use super::json::JsonOut;
use super::ApiTags;
use crate::backup::{BackupEntry, Backups};
use crate::storage::DatabaseUrl;

/// What the admin operations can do with this service's database.
#[derive(Debug, Clone)]
pub enum BackupAccess {
    /// A SQLite file: its backups.
    Sqlite(Arc<Backups>),
    /// No backups here, and why (the detail of the 404).
    Unsupported(&'static str),
}

impl BackupAccess {
    /// Why a database at `url` has no backups of ours.
    pub fn unsupported(url: &DatabaseUrl) -> BackupAccess {
        BackupAccess::Unsupported(match url {
            DatabaseUrl::SqliteMemory => {
                "this service runs on an in-memory SQLite database: there is no file to back up"
            }
            _ => {
                "this service runs on PostgreSQL, whose backups belong to the database: \
                 Supabase's backups or point-in-time recovery, or pg_dump; `commandes export` \
                 exports the orders"
            }
        })
    }

    fn backups(&self) -> Result<&Arc<Backups>, ApiError> {
        match self {
            BackupAccess::Sqlite(backups) => Ok(backups),
            BackupAccess::Unsupported(why) => Err(ApiError::Unsupported((*why).into())),
        }
    }
}

/// The administration operations.
pub struct AdminApi {
    pub backups: BackupAccess,
}

/// A backup in the server's backup folder.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Backup {
    /// Its file name, `commandes-<UTC time>.db`: the names sort by time.
    pub name: String,
    /// When it began (RFC 3339, UTC): every change acknowledged before is
    /// in it.
    pub time: String,
    /// Its size in bytes.
    pub size: u64,
}

impl From<&BackupEntry> for Backup {
    fn from(b: &BackupEntry) -> Backup {
        Backup {
            name: b.name.clone(),
            time: crate::domain::order::format_time(&b.time),
            size: b.size,
        }
    }
}

const UNAUTHORIZED: (u16, &str) = (
    401,
    "No token, a malformed `Authorization` header, or an unknown token. Carries `WWW-Authenticate: Bearer`.",
);
const FORBIDDEN: (u16, &str) = (
    403,
    "The token is valid but is not a static read-write API token (`auth.tokens`): JWTs, \
     `service_role` ones included, and read-only tokens may not administer the service.",
);
const UNKNOWN_QUERY: (u16, &str) = (
    422,
    "A query parameter was given: these operations take none.",
);
const NOT_HERE: (u16, &str) = (
    404,
    "The database is PostgreSQL (its backups belong to it: Supabase's backups, `pg_dump`; \
     `commandes export` for the orders) or an in-memory SQLite database.",
);

/// The statuses of `GET /admin/backups`.
pub enum ListStatuses {}
impl ErrorSet for ListStatuses {
    fn declared() -> Vec<(u16, &'static str)> {
        vec![UNAUTHORIZED, FORBIDDEN, UNKNOWN_QUERY, NOT_HERE]
    }
}

/// The statuses of `POST /admin/backups`.
pub enum TakeStatuses {}
impl ErrorSet for TakeStatuses {
    fn declared() -> Vec<(u16, &'static str)> {
        vec![
            UNAUTHORIZED,
            FORBIDDEN,
            (
                409,
                "A backup is already running: a scheduled one, one asked for here, or \
             `commandes backup` into the same folder. Retry once it has finished.",
            ),
            UNKNOWN_QUERY,
            (
                500,
                "The backup could not be taken (the disk, or a database that fails its check); \
             nothing was left under a backup's name and no older backup was deleted. The \
             server log says why.",
            ),
            NOT_HERE,
            (
                502,
                "The backup was taken and verified (it is in the list), but its copy in the \
             bucket failed; the bucket keeps its older backups. The server log says why.",
            ),
        ]
    }
}

/// The statuses of `GET /admin/backups/{name}`.
pub enum DownloadStatuses {}
impl ErrorSet for DownloadStatuses {
    fn declared() -> Vec<(u16, &'static str)> {
        vec![
            UNAUTHORIZED,
            FORBIDDEN,
            (
                404,
                "No backup of that name in the folder (only the names the list gives are \
             served; anything else, a path included, is a 404); or the database is \
             PostgreSQL or in memory, which has no backups here.",
            ),
            UNKNOWN_QUERY,
        ]
    }
}

#[derive(ApiResponse)]
pub enum ListResponse {
    /// The backups in the server's folder, oldest first.
    #[oai(status = 200)]
    Ok(JsonOut<Vec<Backup>>),
}

#[derive(ApiResponse)]
pub enum TakeResponse {
    /// The backup was taken, verified, copied to the bucket (when one is
    /// configured), and older ones rotated out.
    #[oai(status = 201)]
    Created(
        JsonOut<Backup>,
        /// Where to download it: `/admin/backups/{name}`.
        #[oai(header = "Location")]
        String,
    ),
}

#[derive(ApiResponse)]
pub enum DownloadResponse {
    /// The backup file, a SQLite database, streamed.
    #[oai(status = 200)]
    Ok(
        SqliteFile,
        /// `attachment; filename="<name>"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

/// A SQLite database file as a response body, streamed from the disk,
/// and its length. Sent as `application/octet-stream`, which every client
/// and client generator takes as bytes (`application/vnd.sqlite3` is not
/// understood by openapi-python-client, for one).
pub struct SqliteFile(Body, u64);

impl Payload for SqliteFile {
    const CONTENT_TYPE: &'static str = "application/octet-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "binary")))
    }

    fn register(_registry: &mut Registry) {}
}

impl IntoResponse for SqliteFile {
    fn into_response(self) -> Response {
        Response::builder()
            .status(StatusCode::OK)
            .content_type(Self::CONTENT_TYPE)
            .header(poem::http::header::CONTENT_LENGTH, self.1)
            .body(self.0)
    }
}

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List the backups
    ///
    /// The backups in the server's backup folder (`backup.dir`), oldest
    /// first. Each was verified (`PRAGMA integrity_check` and the schema
    /// history) before it got its name. Only a static read-write API token
    /// may call this.
    #[oai(path = "/admin/backups", method = "get", operation_id = "list_backups")]
    async fn list(
        &self,
        _auth: AdminAuth,
        request: &Request,
    ) -> Result<ListResponse, Errors<ListStatuses>> {
        no_query(request).map_err(ApiError::Validation)?;
        let backups = self.backups.backups()?;
        let all = backups.list().await.map_err(ApiError::from)?;
        Ok(ListResponse::Ok(JsonOut(
            all.iter().map(Backup::from).collect(),
        )))
    }

    /// Take a backup now
    ///
    /// A consistent snapshot of the whole database (orders, events,
    /// idempotency keys, counters) taken while the service keeps serving,
    /// verified, then copied to the bucket when one is configured; then
    /// rotation keeps `backup.keep` backups in the folder and in the
    /// bucket. Answers once all that is done (seconds for a small
    /// database, about a minute for a million orders). One backup runs at
    /// a time: 409 while another runs. No request body.
    #[oai(path = "/admin/backups", method = "post", operation_id = "take_backup")]
    async fn take(
        &self,
        _auth: AdminAuth,
        request: &Request,
    ) -> Result<TakeResponse, Errors<TakeStatuses>> {
        no_query(request).map_err(ApiError::Validation)?;
        let backups = self.backups.backups()?;
        let taken = backups.take().await.map_err(ApiError::from)?;
        // The time as the list gives it: the one in the name (to the
        // millisecond).
        let time = crate::backup::parse_backup_name(&taken.file.name).unwrap_or(taken.file.time);
        let entry = Backup {
            name: taken.file.name.clone(),
            time: crate::domain::order::format_time(&time),
            size: taken.file.info.size,
        };
        tracing::info!(backup = %entry.name, size = entry.size, "backup taken on request");
        let location = format!("/admin/backups/{}", entry.name);
        Ok(TakeResponse::Created(JsonOut(entry), location))
    }

    /// Download a backup
    ///
    /// The backup file named in the list, streamed as
    /// `application/octet-stream`. It is a complete SQLite database:
    /// `commandes restore FILE` puts it in place (with the server
    /// stopped). Only names the list gives are served.
    #[oai(
        path = "/admin/backups/:name",
        method = "get",
        operation_id = "download_backup"
    )]
    async fn download(
        &self,
        _auth: AdminAuth,
        request: &Request,
        /// A backup's name, as the list gives it.
        name: Path<String>,
    ) -> Result<DownloadResponse, Errors<DownloadStatuses>> {
        no_query(request).map_err(ApiError::Validation)?;
        let backups = self.backups.backups()?;
        let not_found = || ApiError::NotFound("no such backup".into());
        let entry = backups
            .find(&name.0)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(not_found)?;
        // Rotation may have deleted it since the list was read.
        let file = match tokio::fs::File::open(&entry.path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found().into()),
            Err(e) => return Err(ApiError::from(crate::backup::Error::io(&entry.path, e)).into()),
        };
        // A backup never changes once named: its length is known.
        let size = file.metadata().await.map_or(entry.size, |m| m.len());
        Ok(DownloadResponse::Ok(
            SqliteFile(Body::from_async_read(file), size),
            format!("attachment; filename=\"{}\"", entry.name),
        ))
    }
}
