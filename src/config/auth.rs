//! `[auth]` and `[metrics]`: static tokens, JWTs, and what each may do.

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::values::optional_text;
use crate::access::{JwksUrl, JwtSecret, Permission};
use crate::secret::Secret;

/// The shortest static token accepted (API, read and metrics tokens): a
/// shorter one could be guessed.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Authentication: static tokens, JWTs, and what each may do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Accepted read-write bearer tokens; with no token, secret or JWKS at
    /// all, a random one is made at start-up.
    pub tokens: Vec<Secret>,
    /// Accepted read-only bearer tokens (403 on every change).
    pub read_tokens: Vec<Secret>,
    /// HS256 secret for JWTs (Supabase's legacy JWT secret), used as its
    /// bytes, at least 32 of them; empty (`None`): no HS256.
    #[serde(with = "optional_text")]
    pub jwt_secret: Option<JwtSecret>,
    /// Where the ES256/RS256 public keys are (a JWKS): `https://`, or
    /// `http://` on a loopback host only; empty (`None`): none. A secret,
    /// in case it carries a key (`?apikey=`).
    #[serde(with = "optional_text")]
    pub jwks_url: Option<JwksUrl>,
    /// A JWKS file instead of a URL.
    pub jwks_file: String,
    /// The required `iss`; empty: not checked.
    pub jwt_issuer: String,
    /// The required `aud`; empty: not checked.
    pub jwt_audience: String,
    /// The claim naming the customer whose orders a JWT may touch; empty:
    /// no restriction. Not `user_metadata…`: Supabase users can edit it
    /// (warned about at start-up).
    pub customer_claim: String,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub clock_skew_secs: u64,
    /// What an `authenticated` JWT may do.
    pub authenticated_scopes: Vec<Permission>,
    /// What an `anon` JWT may do.
    pub anon_scopes: Vec<Permission>,
    /// Whether Supabase anonymous users (`is_anonymous: true`) count as
    /// `authenticated`; otherwise they are `anon`.
    pub anonymous_users_as_authenticated: bool,
    /// Seconds between background refreshes of the JWKS.
    pub jwks_refresh_secs: u64,
    /// Longest wait for the JWKS URL, in seconds.
    pub jwks_timeout_secs: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            tokens: Vec::new(),
            read_tokens: Vec::new(),
            jwt_secret: None,
            jwks_url: None,
            jwks_file: String::new(),
            jwt_issuer: String::new(),
            jwt_audience: "authenticated".into(),
            customer_claim: String::new(),
            clock_skew_secs: 30,
            authenticated_scopes: vec![Permission::Read, Permission::Write],
            anon_scopes: Vec::new(),
            anonymous_users_as_authenticated: false,
            jwks_refresh_secs: 300,
            jwks_timeout_secs: 5,
        }
    }
}

impl AuthSettings {
    /// Whether any JWT can be checked.
    pub fn jwt_enabled(&self) -> bool {
        self.jwt_secret.is_some() || self.jwks_url.is_some() || !self.jwks_file.is_empty()
    }

    /// Whether no caller at all could get in (then a token is generated).
    pub fn nothing_configured(&self) -> bool {
        self.tokens.is_empty() && self.read_tokens.is_empty() && !self.jwt_enabled()
    }
}

/// `GET /metrics`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// The bearer token a scrape must carry; empty: any API token.
    pub token: Secret,
}

impl AuthSettings {
    /// The checks of `[auth]`, and of the metrics token (a static token
    /// too).
    pub(super) fn validate(&self, metrics: &MetricsSettings) -> anyhow::Result<()> {
        if self.jwks_url.is_some() && !self.jwks_file.is_empty() {
            bail!("set auth.jwks_url or auth.jwks_file, not both");
        }
        if self.jwks_timeout_secs == 0 || self.jwks_refresh_secs == 0 {
            bail!("auth.jwks_timeout_secs and auth.jwks_refresh_secs must be at least 1");
        }
        // A short token can be guessed; the message names the setting,
        // never the token.
        for (name, tokens) in [
            ("auth.tokens (COMMANDES_API_TOKENS)", self.tokens.as_slice()),
            (
                "auth.read_tokens (COMMANDES_READ_TOKENS)",
                self.read_tokens.as_slice(),
            ),
            (
                "metrics.token (COMMANDES_METRICS_TOKEN)",
                std::slice::from_ref(&metrics.token),
            ),
        ] {
            if tokens.iter().any(|t| {
                let n = t.expose().trim().chars().count();
                n > 0 && n < MIN_TOKEN_CHARS
            }) {
                bail!(
                    "{name}: every token must be at least {MIN_TOKEN_CHARS} characters long \
                     (make one with `openssl rand -hex 32`)"
                );
            }
        }
        let trimmed = |t: &Secret| t.expose().trim().to_string();
        if self.tokens.iter().any(|t| {
            !trimmed(t).is_empty() && self.read_tokens.iter().any(|r| trimmed(r) == trimmed(t))
        }) {
            bail!("a token is in both auth.tokens and auth.read_tokens; keep it in one list");
        }
        Ok(())
    }
}
