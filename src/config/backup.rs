//! `[backup]`: scheduled backups of the SQLite file, where they go, how
//! many are kept, and the S3-compatible bucket of the off-machine copy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::backup::s3::S3Options;
use crate::secret::Secret;

/// How long the bucket may stay silent (connecting, or during a
/// transfer) before a request fails.
const S3_TIMEOUT: Duration = Duration::from_secs(60);

/// Backups of the SQLite database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// How often the server takes a backup; zero: never (backups are then
    /// taken by `commandes backup` or `POST /admin/backups` only).
    pub interval: Interval,
    /// The folder of the backups; empty: `backups` beside the database
    /// file.
    pub dir: String,
    /// How many backups rotation keeps, in the folder and in the bucket
    /// (at least 1).
    pub keep: usize,
    /// The S3 service's URL (`https://s3.eu-west-3.amazonaws.com`,
    /// `http://127.0.0.1:9000`); needed when `bucket` is set.
    pub endpoint: String,
    /// The bucket of the off-machine copy; empty: no copy.
    pub bucket: String,
    /// A folder in the bucket for the backups (`""`: the top).
    pub prefix: String,
    /// The region the requests are signed for.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// Path-style addressing (`endpoint/bucket/key`), which self-hosted
    /// stores (MinIO, Garage, Ceph) and endpoints given by IP address need.
    pub path_style: bool,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            interval: Interval::default(),
            dir: String::new(),
            keep: 7,
            endpoint: String::new(),
            bucket: String::new(),
            prefix: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: Secret::default(),
            path_style: false,
        }
    }
}

impl BackupSettings {
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.keep == 0 {
            bail!("backup.keep must be at least 1");
        }
        if let Some(options) = self.s3() {
            crate::backup::s3::Bucket::new(&options)
                .map_err(|e| anyhow::anyhow!("backup (bucket {:?}): {e}", self.bucket))?;
        }
        Ok(())
    }

    /// The folder of the backups of the database at `db_path`.
    pub fn dir_for(&self, db_path: &Path) -> PathBuf {
        if self.dir.is_empty() {
            crate::backup::default_dir(db_path)
        } else {
            PathBuf::from(&self.dir)
        }
    }

    /// The bucket's settings; `None` when no bucket is configured.
    pub fn s3(&self) -> Option<S3Options> {
        if self.bucket.is_empty() {
            return None;
        }
        Some(S3Options {
            endpoint: self.endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            access_key: self.access_key_id.clone(),
            secret_key: self.secret_access_key.clone(),
            path_style: self.path_style,
            timeout: S3_TIMEOUT,
        })
    }
}

/// A time between two backups: written `"30m"`, `"6h"`, `"1d"`, `"90s"`,
/// or a number of seconds (`21600`, `"21600"`); `0` means never. Written
/// back in the largest unit that divides it.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Interval(pub Duration);

/// As it is written: `Interval(6h)`.
impl std::fmt::Debug for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interval({})", self.to_text())
    }
}

impl Interval {
    /// The time, unless it is zero (never).
    pub fn every(self) -> Option<Duration> {
        (!self.0.is_zero()).then_some(self.0)
    }

    /// Reads `"6h"`, `"30m"`, `"1d"`, `"90s"` or `"21600"`.
    pub fn parse(text: &str) -> Result<Interval, String> {
        let text = text.trim();
        let refused = || {
            format!(
                "backup.interval must be a number of seconds or a number followed by s, m, h \
                 or d (\"6h\"), not {text:?}"
            )
        };
        if text.is_empty() {
            return Ok(Interval::default());
        }
        let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(at) => text.split_at(at),
            None => (text, "s"),
        };
        let n: u64 = digits.parse().map_err(|_| refused())?;
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(refused()),
        };
        let secs = n.checked_mul(scale).ok_or_else(refused)?;
        Ok(Interval(Duration::from_secs(secs)))
    }

    /// `"6h"` for six hours; `"0"` for never.
    pub fn to_text(self) -> String {
        let secs = self.0.as_secs();
        if secs == 0 {
            return "0".into();
        }
        for (unit, scale) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if secs.is_multiple_of(scale) {
                return format!("{}{unit}", secs / scale);
            }
        }
        format!("{secs}s")
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_text())
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Interval, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Seconds(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Seconds(secs) => Ok(Interval(Duration::from_secs(secs))),
            Written::Text(text) => Interval::parse(&text).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_units_and_write_the_largest() {
        for (text, secs, back) in [
            ("6h", 21_600, "6h"),
            ("21600", 21_600, "6h"),
            ("90m", 5_400, "90m"),
            ("90s", 90, "90s"),
            ("1d", 86_400, "1d"),
            ("0", 0, "0"),
            ("", 0, "0"),
            (" 2 h ", 7_200, "2h"),
        ] {
            let interval = Interval::parse(text).unwrap();
            assert_eq!(interval.0.as_secs(), secs, "{text}");
            assert_eq!(interval.to_text(), back, "{text}");
        }
        for bad in ["6x", "h", "-1", "1.5h", "6hours"] {
            assert!(Interval::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Interval::parse("0").unwrap().every(), None);
    }
}
