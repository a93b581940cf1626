//! Database URLs: which backend, and where. Parsed once, where the URL
//! enters (the settings, a command's flag), so [`super::open`] only picks
//! the backend.

use std::fmt;
use std::path::PathBuf;

use crate::secret::{redact_url, Secret};

/// A database URL, understood. Its `Debug` and `Display` hide the
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
    /// A PostgreSQL libpq URL (it may carry a password).
    Postgres(Secret),
}

impl DatabaseUrl {
    /// Picks the backend from the URL's scheme. The message never repeats
    /// the URL.
    pub fn parse(url: &str) -> Result<DatabaseUrl, String> {
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(DatabaseUrl::SqliteMemory);
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("a sqlite:// URL needs a file path, e.g. sqlite://commandes.db".into());
            }
            return Ok(DatabaseUrl::SqliteFile(path.into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(Secret::new(url)));
        }
        Err("the database URL must start with sqlite://, sqlite::memory: or postgres://".into())
    }

    /// The URL as a string that [`DatabaseUrl::parse`] reads back to this
    /// value, credentials included: for the settings' own round trip,
    /// never for output (that is [`Display`](fmt::Display)).
    pub fn expose(&self) -> String {
        match self {
            DatabaseUrl::SqliteFile(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::SqliteMemory => "sqlite::memory:".into(),
            DatabaseUrl::Postgres(url) => url.expose().to_string(),
        }
    }

    /// Whether this is a PostgreSQL URL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }
}

/// [`DatabaseUrl::parse`], for `"sqlite::memory:".parse()`.
impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<DatabaseUrl, String> {
        DatabaseUrl::parse(url)
    }
}

/// The URL without its credentials ([`redact_url`]).
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.expose()))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::SqliteFile(path) => f.debug_tuple("SqliteFile").field(path).finish(),
            DatabaseUrl::SqliteMemory => f.write_str("SqliteMemory"),
            DatabaseUrl::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&redact_url(url.expose()))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:"),
            Ok(DatabaseUrl::SqliteMemory)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://commandes.db"),
            Ok(DatabaseUrl::SqliteFile("commandes.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db?mode=rwc"),
            Ok(DatabaseUrl::SqliteFile("/tmp/x.db".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        let url = DatabaseUrl::parse("postgres://u:pw@h/db?password=pw").unwrap();
        assert!(!format!("{url:?}").contains("pw"), "{url:?}");
        assert!(!url.to_string().contains("pw"), "{url}");
    }

    #[test]
    fn a_url_reads_back_to_itself() {
        for url in [
            "sqlite::memory:",
            "sqlite://commandes.db",
            "sqlite:///tmp/x.db",
            "postgres://u:pw@h:5432/db?sslmode=require",
        ] {
            let parsed = DatabaseUrl::parse(url).unwrap();
            assert_eq!(parsed.expose(), url);
            assert_eq!(DatabaseUrl::parse(&parsed.expose()), Ok(parsed));
        }
    }
}
