//! Secrets in settings, and URLs shown without their credentials.
//!
//! Every setting that is or may hold a credential (tokens, the JWT secret,
//! database and broker URLs) is a [`Secret`]: its `Debug` and `Display`
//! print `[redacted]`, so no `{:?}` of a settings type, no log field and no
//! error message can show it by accident. Reading it takes
//! [`Secret::expose`], which is easy to find in a review.
//!
//! URLs are shown through [`redact_url`], the one function that hides their
//! credentials (used by the settings line, the storage, the relay and the
//! CLI), and [`scrub`] masks them in text written by a client library.

use serde::{Deserialize, Serialize};

/// A credential, or a value holding one. Loaded like a string (serde,
/// figment, clap), printed as `[redacted]`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: for the code that uses it, never for output.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "[unset]"
        } else {
            "[redacted]"
        })
    }
}

/// For tests and settings checks: comparing is not showing.
impl PartialEq<str> for Secret {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Secret {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// What replaces a hidden value.
const MASK: &str = "***";

/// Query parameters whose value is a credential: any name containing one
/// of these (`password`, `sslpassword`, `token`, `auth_token`, `apikey`,
/// `secret`, `jwt`, …). Hiding a harmless value is cheap; showing a
/// password is not.
const SECRET_PARAMETERS: &[&str] = &[
    "pass", "pwd", "token", "secret", "key", "auth", "cred", "jwt", "sig",
];

/// Schemes whose user info without a `:` is a user name (kept, it helps
/// to read the logs); for any other scheme it is a token
/// (`nats://TOKEN@host`) and hidden.
const USER_NAME_SCHEMES: &[&str] = &["postgres", "postgresql"];

/// `url` with its credentials replaced by `***`: the password of the user
/// info (`postgres://user:***@host`, `amqp://user:***@host`), a token in
/// the user info (`nats://***@host`), and the value of every query
/// parameter that names a credential (`?password=***`, `?token=***`). A
/// string that is not a URL (`sqlite::memory:`) is returned as it is: no
/// setting takes a libpq `key=value` string.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for range in credentials(url) {
        out.push_str(&url[copied..range.start]);
        out.push_str(MASK);
        copied = range.end;
    }
    out.push_str(&url[copied..]);
    out
}

/// `text` with every credential of `url` (as written, and percent-decoded)
/// replaced by `***`, for a message from a client library that may have
/// quoted the URL.
pub fn scrub(text: &str, url: &str) -> String {
    let mut secrets: Vec<String> = Vec::new();
    for range in credentials(url) {
        let raw = &url[range];
        secrets.push(raw.to_string());
        secrets.push(
            percent_encoding::percent_decode_str(raw)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    // Longest first, so that a secret containing another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), MASK);
    }
    text
}

/// Where the credentials of `url` are, in order.
fn credentials(url: &str) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return found;
    };
    let scheme = url[..start - 3].to_ascii_lowercase();
    let mut after_user_info = start;
    // The last `@`: a password with an unescaped `@` is hidden whole (a
    // query holding one hides a little more than needed, which is safe).
    if let Some(at) = url[start..].rfind('@').map(|i| start + i) {
        match url[start..at].find(':') {
            Some(colon) => found.push(start + colon + 1..at),
            None if USER_NAME_SCHEMES.contains(&scheme.as_str()) => {}
            None => found.push(start..at),
        }
        after_user_info = at + 1;
    }
    if let Some(q) = url[after_user_info..].find('?') {
        let mut pair_start = after_user_info + q + 1;
        for pair in url[pair_start..].split('&') {
            if let Some(eq) = pair.find('=') {
                if is_secret_parameter(&pair[..eq]) {
                    found.push(pair_start + eq + 1..pair_start + pair.len());
                }
            }
            pair_start += pair.len() + 1;
        }
    }
    found
}

fn is_secret_parameter(name: &str) -> bool {
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    SECRET_PARAMETERS.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::from("hunter2");
        assert_eq!(
            format!("{s:?} {s} {s:#?}"),
            "[redacted] [redacted] [redacted]"
        );
        assert_eq!(format!("{:?}", Secret::default()), "[unset]");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug, serde::Deserialize)]
        struct Holder {
            token: Secret,
        }
        let h: Holder = serde_json::from_str(r#"{"token": "t0ps3cret"}"#).unwrap();
        assert_eq!(h.token.expose(), "t0ps3cret");
        assert!(!format!("{h:?}").contains("t0ps3cret"));
    }

    #[test]
    fn urls_lose_their_credentials() {
        for (url, redacted) in [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("sqlite://x.db", "sqlite://x.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            (
                "postgres://u:pw@h/db?password=pw2&sslmode=require",
                "postgres://u:***@h/db?password=***&sslmode=require",
            ),
            (
                "postgresql://h/db?user=u&password=pw",
                "postgresql://h/db?user=u&password=***",
            ),
            (
                "postgres://h/db?pass%77ord=pw",
                "postgres://h/db?pass%77ord=***",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u:pw@h1,h2:5433/db",
                "postgres://u:***@h1,h2:5433/db",
            ),
            ("nats://tok@h:4222", "nats://***@h:4222"),
            ("nats://h:4222", "nats://h:4222"),
            ("tls://u:pw@h:4222", "tls://u:***@h:4222"),
            ("nats://h:4222?token=tok", "nats://h:4222?token=***"),
            ("amqp://u:pw@h:5672/%2f", "amqp://u:***@h:5672/%2f"),
            ("amqps://u@h/v", "amqps://***@h/v"),
            (
                "https://h/jwks.json?apikey=k&x=1",
                "https://h/jwks.json?apikey=***&x=1",
            ),
        ] {
            assert_eq!(redact_url(url), redacted, "{url}");
        }
    }

    #[test]
    fn messages_lose_the_credentials_of_their_url() {
        assert_eq!(
            scrub("bad auth for u:secret", "amqp://u:secret@h/v"),
            "bad auth for u:***"
        );
        assert_eq!(scrub("refused", "nats://h:4222"), "refused");
        assert_eq!(
            scrub(
                "cannot use tok3n or p w or p%20w",
                "nats://tok3n@h:4222?token=p%20w"
            ),
            "cannot use *** or *** or ***"
        );
    }
}
