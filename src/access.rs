//! Who may do what: the permissions a caller holds, and the checked forms
//! of the settings that let a caller prove who it is (the JWT secret and
//! the JWKS URL).
//!
//! A leaf: the settings (`config`) are parsed into these types once, at
//! load, and the API (`api`) trusts them, so neither imports the other and
//! each rule (the secret's least length, where keys may be fetched from)
//! is written, and checked, in one place: the constructor of its type.

use serde::{Deserialize, Serialize};

use crate::secret::{redact_url, Secret};

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Every `GET`.
    Read,
    /// Every change: `POST`, `PUT`, `DELETE`.
    Write,
}

impl Permission {
    /// `read` or `write`, as in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
        }
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions {
    /// [`Permission::Read`].
    pub read: bool,
    /// [`Permission::Write`].
    pub write: bool,
}

impl Permissions {
    /// Reads and changes.
    pub const ALL: Permissions = Permissions {
        read: true,
        write: true,
    };
    /// Reads only.
    pub const READ: Permissions = Permissions {
        read: true,
        write: false,
    };
    /// Nothing at all.
    pub const NONE: Permissions = Permissions {
        read: false,
        write: false,
    };

    /// The set holding exactly `list`.
    pub fn of(list: &[Permission]) -> Permissions {
        Permissions {
            read: list.contains(&Permission::Read),
            write: list.contains(&Permission::Write),
        }
    }

    /// Whether `permission` is in the set.
    pub fn has(self, permission: Permission) -> bool {
        match permission {
            Permission::Read => self.read,
            Permission::Write => self.write,
        }
    }

    /// Whether the set allows nothing.
    pub fn is_empty(self) -> bool {
        !self.read && !self.write
    }
}

/// The shortest HS256 secret accepted: a shorter one could be guessed.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// An HS256 secret (Supabase's legacy JWT secret) long enough to be safe:
/// at least [`MIN_JWT_SECRET_BYTES`] bytes. Printed as `[redacted]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSecret(Secret);

impl JwtSecret {
    /// The secret, unless it is shorter than [`MIN_JWT_SECRET_BYTES`]. The
    /// message names the setting, never the secret.
    pub fn new(secret: impl Into<Secret>) -> Result<JwtSecret, String> {
        let secret = secret.into();
        if secret.expose().len() < MIN_JWT_SECRET_BYTES {
            return Err(format!(
                "auth.jwt_secret must be at least {MIN_JWT_SECRET_BYTES} bytes long"
            ));
        }
        Ok(JwtSecret(secret))
    }

    /// The secret itself: for the verifier, never for output.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// Where the ES256/RS256 public keys are fetched from: `https://`, or
/// `http://` to a loopback host only. Printed without the credentials it
/// may carry (`?apikey=`).
#[derive(Clone, PartialEq, Eq)]
pub struct JwksUrl(Secret);

impl JwksUrl {
    /// The URL, if keys may be fetched from it: `https://`, or `http://` to
    /// a loopback host only (`localhost`, `127.0.0.1`, `::1`: a key server
    /// on the same machine, as in the tests). Keys fetched in plaintext
    /// over a network could be replaced by anyone on the path, who could
    /// then sign any token. The URL is read by the parser the HTTP client
    /// uses, so both agree on the host; the message does not repeat the
    /// URL (it may carry a key).
    pub fn parse(url: &str) -> Result<JwksUrl, String> {
        #[cfg(feature = "jwks")]
        Self::check(url)?;
        Ok(JwksUrl(Secret::new(url)))
    }

    /// The rule of [`JwksUrl::parse`]. A build without the `jwks` feature
    /// has no client to fetch with (nor the URL parser it shares): its
    /// settings refuse any JWKS URL ([`crate::features`]).
    #[cfg(feature = "jwks")]
    fn check(url: &str) -> Result<(), String> {
        let refused = "auth.jwks_url must be an https:// URL (http:// is accepted only for a \
                       loopback host: localhost, 127.0.0.1, ::1)";
        let parsed = reqwest::Url::parse(url).map_err(|_| refused.to_string())?;
        let host = parsed.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(refused.to_string()),
        }
        Ok(())
    }

    /// The URL itself: for the HTTP client, never for output.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Whether the keys travel over TLS.
    pub fn is_https(&self) -> bool {
        self.expose().starts_with("https://")
    }
}

/// The URL without its credentials.
impl std::fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl std::fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwksUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_holds_exactly_its_permissions() {
        assert_eq!(
            Permissions::of(&[Permission::Read, Permission::Write]),
            Permissions::ALL
        );
        assert_eq!(Permissions::of(&[Permission::Read]), Permissions::READ);
        assert!(Permissions::of(&[]).is_empty());
        assert!(Permissions::READ.has(Permission::Read));
        assert!(!Permissions::READ.has(Permission::Write));
    }

    #[test]
    fn short_secrets_are_refused_without_being_shown() {
        let e = JwtSecret::new("short").unwrap_err();
        assert!(e.contains("at least 32 bytes"), "{e}");
        assert!(!e.contains("short"), "{e}");
        let secret = JwtSecret::new("s".repeat(32)).unwrap();
        assert_eq!(secret.expose(), "s".repeat(32));
        assert!(!format!("{secret:?}").contains("sss"));
    }

    #[test]
    #[cfg(feature = "jwks")]
    fn plain_http_is_for_loopback_only() {
        for ok in [
            "https://ref.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:8080/jwks.json",
            "http://localhost/jwks.json",
            "http://LOCALHOST:1/x",
            "http://[::1]:9999/jwks.json",
            "http://u@127.0.0.1/jwks.json",
        ] {
            assert_eq!(
                JwksUrl::parse(ok).map(|u| u.expose().to_string()),
                Ok(ok.to_string())
            );
        }
        for refused in [
            "http://ref.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1.evil.example/jwks.json",
            "http://localhost.evil.example/jwks.json",
            "http://10.0.0.1/jwks.json",
            "http://127.0.0.1@evil.example/jwks.json",
            "ftp://127.0.0.1/jwks.json",
            "jwks.json",
        ] {
            assert!(JwksUrl::parse(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_jwks_url_prints_without_its_key() {
        let url = JwksUrl::parse("https://h/jwks.json?apikey=k3y").unwrap();
        assert_eq!(url.to_string(), "https://h/jwks.json?apikey=***");
        assert!(!format!("{url:?}").contains("k3y"));
    }
}
