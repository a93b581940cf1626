//! The off-machine copy: verified backups in an S3-compatible bucket
//! (AWS S3, MinIO, Garage, Ceph, R2, Scaleway, …), with the same names and
//! the same retention as the local folder.
//!
//! Requests are signed by `rusty-s3` (AWS Signature V4, as presigned URLs
//! valid for [`SIGNED_FOR`]) and sent by `reqwest`; file bodies stream from
//! and to the disk, never whole in memory. An upload is one `PUT`, which
//! S3 accepts up to 5 GiB (a `commandes` database of about 15 million
//! orders); a larger file is refused before anything is sent.
//!
//! No error, log line or `Debug` output holds a signed URL or the secret
//! key: errors name the operation, the object and the status, with S3's
//! own error code and message.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rusty_s3::actions::{DeleteObject, GetObject, ListObjectsV2, PutObject, S3Action};
use rusty_s3::{Bucket as Target, Credentials, UrlStyle};
use tokio::io::AsyncWriteExt;

use super::{durable, parse_backup_name, BackupFile, Error};
use crate::secret::Secret;

/// How long a signed request stays valid once signed (it is sent at once;
/// the margin covers clocks that differ).
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);
/// The largest object one `PUT` may create.
const MAX_PUT: u64 = 5 * 1024 * 1024 * 1024;

/// Where the off-machine copies go.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// The service's URL, e.g. `https://s3.eu-west-3.amazonaws.com` or
    /// `http://127.0.0.1:9000` (a path in it is kept as a prefix).
    pub endpoint: String,
    /// The region the requests are signed for (`us-east-1` for most
    /// self-hosted stores).
    pub region: String,
    pub bucket: String,
    /// A folder in the bucket for the backups (`""`: the top).
    pub prefix: String,
    pub access_key: String,
    pub secret_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), which self-hosted
    /// stores and endpoints given by IP address need; otherwise the bucket
    /// is a host name (`bucket.endpoint/key`).
    pub path_style: bool,
    /// Longest wait to connect, and longest silence of a transfer.
    pub timeout: Duration,
}

/// A backup in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteBackup {
    /// Its file name (the last part of its key).
    pub name: String,
    /// Its key in the bucket: the prefix and the name.
    pub key: String,
    /// The time in its name.
    pub time: DateTime<Utc>,
    pub size: u64,
}

/// A bucket, ready to take, list, give back and delete backups.
pub struct Bucket {
    target: Target,
    credentials: Credentials,
    prefix: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("bucket", &self.target.name())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    /// Checks `options` and builds the client (nothing is sent yet). An
    /// `https` endpoint is trusted through the platform's root
    /// certificates, as the other clients of this service do.
    pub fn new(options: &S3Options) -> Result<Bucket, Error> {
        let bad = |what: &str| Error::S3(format!("invalid settings: {what}"));
        let endpoint: reqwest::Url = options
            .endpoint
            .parse()
            .map_err(|_| bad("the endpoint is not a URL"))?;
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(bad("the endpoint must not hold credentials"));
        }
        let style = if options.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let target = Target::new(
            endpoint.clone(),
            style,
            options.bucket.clone(),
            options.region.clone(),
        )
        .map_err(|e| bad(&format!("endpoint and bucket ({e:?})")))?;
        if options.access_key.is_empty() || options.secret_key.is_empty() {
            return Err(bad("the access key and the secret key are required"));
        }
        let mut client = reqwest::Client::builder()
            .connect_timeout(options.timeout)
            .read_timeout(options.timeout)
            // A signed URL must not be replayed elsewhere.
            .redirect(reqwest::redirect::Policy::none());
        if endpoint.scheme() == "https" {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(bad("no trusted root certificates found for the endpoint"));
            }
            for cert in found.certs {
                if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
                    client = client.add_root_certificate(cert);
                }
            }
        }
        let client = client
            .build()
            .map_err(|e| Error::S3(format!("cannot build the HTTP client: {e}")))?;
        let prefix = options.prefix.trim_matches('/');
        Ok(Bucket {
            target,
            credentials: Credentials::new(
                options.access_key.clone(),
                options.secret_key.expose().to_string(),
            ),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            client,
        })
    }

    /// The key of the backup called `name`; refuses any other name, so a
    /// name that came from a request cannot reach another object.
    fn key(&self, name: &str) -> Result<String, Error> {
        if parse_backup_name(name).is_none() {
            return Err(Error::S3(format!("{name:?} is not a backup's name")));
        }
        Ok(format!("{}{name}", self.prefix))
    }

    /// Uploads the verified backup `backup` under its name; returns the
    /// object as listed.
    pub async fn upload(&self, backup: &BackupFile) -> Result<RemoteBackup, Error> {
        let key = self.key(&backup.name)?;
        let file = tokio::fs::File::open(&backup.path)
            .await
            .map_err(|e| Error::io(&backup.path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io(&backup.path, e))?
            .len();
        if size > MAX_PUT {
            return Err(Error::S3(format!(
                "{}: {size} bytes is more than one upload may carry (5 GiB)",
                backup.name
            )));
        }
        let url = PutObject::new(&self.target, Some(&self.credentials), &key).sign(SIGNED_FOR);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        let response = self
            .client
            .put(url)
            // S3 takes no chunked upload: the length is said up front.
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(body)
            .send()
            .await;
        check("upload", &key, response).await?;
        Ok(RemoteBackup {
            name: backup.name.clone(),
            key,
            time: backup.time,
            size,
        })
    }

    /// The backups under the prefix, oldest first (other objects are left
    /// out).
    pub async fn list(&self) -> Result<Vec<RemoteBackup>, Error> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&self.target, Some(&self.credentials));
            if !self.prefix.is_empty() {
                action.with_prefix(self.prefix.as_str());
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.as_str());
            }
            let url = action.sign(SIGNED_FOR);
            let response = check("list", &self.prefix, self.client.get(url).send().await).await?;
            let text = response
                .text()
                .await
                .map_err(|e| transport("list", &self.prefix, e))?;
            let page = ListObjectsV2::parse_response(&text)
                .map_err(|_| Error::S3("list: the answer is not a bucket listing".into()))?;
            for object in page.contents {
                let Some(name) = object.key.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                let Some(time) = parse_backup_name(name) else {
                    continue;
                };
                found.push(RemoteBackup {
                    name: name.to_string(),
                    time,
                    size: object.size.unwrap_or(0),
                    key: object.key,
                });
            }
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// Deletes the backup called `name` (no error if it is not there).
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let key = self.key(name)?;
        let url = DeleteObject::new(&self.target, Some(&self.credentials), &key).sign(SIGNED_FOR);
        check("delete", &key, self.client.delete(url).send().await).await?;
        Ok(())
    }

    /// Downloads the backup called `name` to the file `dest`, through a
    /// temporary name beside it, synced then renamed: `dest` is whole or
    /// absent. Returns its size. [`super::restore`] (or [`super::verify`])
    /// checks it.
    pub async fn download(&self, name: &str, dest: &Path) -> Result<u64, Error> {
        let key = self.key(name)?;
        let url = GetObject::new(&self.target, Some(&self.credentials), &key).sign(SIGNED_FOR);
        let response = check("download", &key, self.client.get(url).send().await).await?;
        let mut partial = dest.as_os_str().to_os_string();
        partial.push(".download");
        let partial = std::path::PathBuf::from(partial);
        let written = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| Error::io(&partial, e))?;
            let mut size = 0u64;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| transport("download", &key, e))?;
                size += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(&partial, e))?;
            }
            file.sync_all().await.map_err(|e| Error::io(&partial, e))?;
            Ok(size)
        }
        .await;
        match written {
            Ok(size) => {
                durable::rename(&partial, dest)?;
                Ok(size)
            }
            Err(e) => {
                let _ = durable::remove_if_exists(&partial);
                Err(e)
            }
        }
    }

    /// Keeps the `keep` newest backups in the bucket (at least one:
    /// `newest`, the upload just made) and deletes the others; returns
    /// their names, oldest first. Objects that are not backups are never
    /// touched.
    pub async fn rotate(&self, keep: usize, newest: &RemoteBackup) -> Result<Vec<String>, Error> {
        let all = self.list().await?;
        if !all.iter().any(|b| b.name == newest.name) {
            return Err(Error::S3(format!(
                "rotate: {} is not in the bucket",
                newest.name
            )));
        }
        let doomed = super::to_delete(all, keep, &newest.name, |b| &b.name);
        let mut deleted = Vec::with_capacity(doomed.len());
        for backup in doomed {
            self.delete(&backup.name).await?;
            deleted.push(backup.name);
        }
        Ok(deleted)
    }
}

/// The response if it is a success; otherwise an error with the status
/// and S3's own code and message (never the URL, which is signed).
async fn check(
    operation: &str,
    key: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<reqwest::Response, Error> {
    let response = sent.map_err(|e| transport(operation, key, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let code = xml_field(&body, "Code");
    let message = xml_field(&body, "Message");
    Err(Error::S3(format!(
        "{operation} {key}: {status}{}{}",
        code.map(|c| format!(" {c}")).unwrap_or_default(),
        message.map(|m| format!(": {m}")).unwrap_or_default(),
    )))
}

/// A transport failure, without its (signed) URL.
fn transport(operation: &str, key: &str, e: reqwest::Error) -> Error {
    Error::S3(format!(
        "{operation} {key}: {}",
        crate::error_chain::distinct_chain(&e.without_url())
    ))
}

/// The text of the first `<tag>` of an S3 error document, bounded.
fn xml_field(body: &str, tag: &str) -> Option<String> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + body[start..].find(&format!("</{tag}>"))?;
    Some(crate::log_text::clip(&body[start..end], 200).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> S3Options {
        S3Options {
            endpoint: "http://127.0.0.1:9000".into(),
            region: "us-east-1".into(),
            bucket: "backups".into(),
            prefix: "/shop/commandes/".into(),
            access_key: "AKID".into(),
            secret_key: Secret::new("very-secret-key"),
            path_style: true,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn keys_are_prefix_and_backup_name_only() {
        let bucket = Bucket::new(&options()).unwrap();
        assert_eq!(
            bucket.key("commandes-20261207T171500.000Z.db").unwrap(),
            "shop/commandes/commandes-20261207T171500.000Z.db"
        );
        for bad in [
            "../x.db",
            "commandes.db",
            "a/commandes-20261207T171500.000Z.db",
        ] {
            assert!(bucket.key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_are_checked_and_the_secret_is_not_shown() {
        let bucket = Bucket::new(&options()).unwrap();
        assert!(!format!("{bucket:?}").contains("very-secret-key"));
        assert!(!format!("{:?}", options()).contains("very-secret-key"));
        let mut o = options();
        o.endpoint = "ftp://example.com".into();
        assert!(Bucket::new(&o).is_err());
        let mut o = options();
        o.endpoint = "http://user:pw@example.com".into();
        assert!(Bucket::new(&o).is_err());
        let mut o = options();
        o.secret_key = Secret::default();
        assert!(Bucket::new(&o).is_err());
    }

    #[test]
    fn s3_error_documents_give_code_and_message() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code>\
                    <Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(xml_field(body, "Code").as_deref(), Some("NoSuchBucket"));
        assert_eq!(
            xml_field(body, "Message").as_deref(),
            Some("The specified bucket does not exist")
        );
        assert_eq!(xml_field("not xml", "Code"), None);
    }
}
