//! JWT bearer tokens (Supabase user tokens and the like).
//!
//! The algorithm is fixed by the key that is configured, never chosen by the
//! token: HS256 only with the JWT secret, ES256 or RS256 only with a key of
//! that kind from the JWKS. So an HS256 token signed with a public key (the
//! classic algorithm confusion) and `alg: none` are refused. `exp` is
//! required, `nbf` is honoured, `aud` (and `iss`, when configured) must
//! match, all within the configured clock skew.
//!
//! A refused token is a 401 that says only "invalid token"; the reason goes
//! to the log, never the token. A valid token then gets its permissions
//! from its `role` claim (a signature alone proves little: Supabase's public anon key
//! is itself a valid HS256 token).

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jwks::Jwks;
use super::Caller;
use crate::access::{JwtSecret, Permissions};
use crate::api::error::ApiError;

/// How JWTs are checked and what their roles may do.
pub struct JwtConfig {
    /// The HS256 secret (Supabase's legacy JWT secret); its type ensures
    /// it is long enough.
    pub secret: Option<JwtSecret>,
    /// The public keys for ES256 / RS256.
    pub jwks: Option<Arc<Jwks>>,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// The required `aud`; `None` skips the check.
    pub audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// What an `authenticated` JWT may do.
    pub authenticated: Permissions,
    /// What an `anon` JWT may do.
    pub anon: Permissions,
    /// Whether an anonymous user (`is_anonymous: true`) counts as
    /// `authenticated` rather than `anon`.
    pub anonymous_users_as_authenticated: bool,
    /// The claim holding the caller's `customer_id` (a dotted path reaches
    /// into objects: `app_metadata.customer_id`).
    pub customer_claim: Option<String>,
}

/// Checks JWTs and turns their claims into a [`Caller`].
pub struct JwtVerifier {
    hmac: Option<DecodingKey>,
    config: JwtConfig,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.hmac.is_some())
            .field("jwks", &self.config.jwks)
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .finish()
    }
}

/// Whether a bearer token has the shape of a JWS in compact form: three
/// base64url parts (the last may be empty, as in an `alg: none` token, so
/// that such a token is logged for what it is).
pub fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let base64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| base64url(p))
}

/// The parts of a header that decide how a token is checked.
struct Head {
    alg: String,
    kid: Option<String>,
    crit: bool,
}

fn head(token: &str) -> Result<Head, String> {
    let first = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| "the header is not base64url".to_string())?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| "the header is not a JSON object".to_string())?;
    Ok(Head {
        alg: header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        kid: header.get("kid").and_then(Value::as_str).map(String::from),
        crit: header.contains_key("crit"),
    })
}

/// Why the library refused a token, in a few words for the log.
fn reason(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "expired (exp)".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("no {c} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("malformed {c} claim"),
        ErrorKind::InvalidAlgorithm => "algorithm does not match the key".into(),
        ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
            "unusable key".into()
        }
        _ => "malformed token".into(),
    }
}

/// A value safe to put in logs and records: short printable ASCII as it is,
/// anything else as a digest prefix.
fn loggable(value: &str) -> String {
    let plain = value.len() <= 64
        && !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@:+|".contains(&b));
    if plain {
        value.to_string()
    } else {
        format!(
            "sha256:{}",
            crate::hex::encode(&Sha256::digest(value.as_bytes())[..8])
        )
    }
}

/// The claim at `path`: a top-level claim of that name, else a dotted path
/// through objects.
fn claim<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut value = claims.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

impl JwtVerifier {
    /// A verifier; fails without a secret or a JWKS.
    pub fn new(mut config: JwtConfig) -> anyhow::Result<JwtVerifier> {
        // Before any token is checked: jsonwebtoken has no crypto of its own.
        super::crypto::install();
        // The secret lives on in the key only.
        let hmac = match &config.secret.take() {
            Some(secret) => Some(DecodingKey::from_secret(secret.expose().as_bytes())?),
            None => None,
        };
        if hmac.is_none() && config.jwks.is_none() {
            anyhow::bail!("a JWT verifier needs a secret or a JWKS");
        }
        Ok(JwtVerifier { hmac, config })
    }

    /// The JWKS this verifier uses, if any.
    pub fn jwks(&self) -> Option<Arc<Jwks>> {
        self.config.jwks.clone()
    }

    /// The caller a JWT identifies: 401 if it is not valid, 403 if it is
    /// valid but may not use the service as it is.
    pub async fn caller(&self, token: &str) -> Result<Caller, ApiError> {
        let claims = match self.verify(token).await {
            Ok(claims) => claims,
            Err(reason) => {
                tracing::info!(%reason, "JWT refused");
                return Err(ApiError::Unauthorized);
            }
        };
        self.caller_from(&claims, token).inspect_err(|e| {
            tracing::info!(reason = %e, "JWT valid but not allowed");
        })
    }

    /// The claims of a valid token, or why it is not.
    async fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let head = head(token)?;
        if head.crit {
            return Err("a crit header is not supported".into());
        }
        let (alg, keys) = match head.alg.as_str() {
            "HS256" => match &self.hmac {
                Some(key) => (Algorithm::HS256, vec![key.clone()]),
                None => return Err("an HS256 token, but no JWT secret is configured".into()),
            },
            "ES256" | "RS256" => {
                let alg = if head.alg == "ES256" {
                    Algorithm::ES256
                } else {
                    Algorithm::RS256
                };
                let Some(jwks) = &self.config.jwks else {
                    return Err(format!("an {} token, but no JWKS is configured", head.alg));
                };
                let keys = jwks.keys_for(head.kid.as_deref(), alg).await;
                if keys.is_empty() {
                    return Err(match &head.kid {
                        Some(kid) => format!(
                            "no {} key with kid {:?} in the JWKS",
                            head.alg,
                            loggable(kid)
                        ),
                        None => format!("no {} key in the JWKS", head.alg),
                    });
                }
                (alg, keys)
            }
            "none" | "" => return Err("an unsigned token (alg none)".into()),
            other => return Err(format!("alg {:?} is not accepted", loggable(other))),
        };
        let validation = self.validation(alg);
        let mut last = String::from("no key");
        for key in &keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = reason(&e),
            }
        }
        Err(last)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.config.leeway_secs;
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.config.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.config.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Permissions from the role; the customer from the customer claim.
    fn caller_from(&self, claims: &Map<String, Value>, token: &str) -> Result<Caller, ApiError> {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        let mut role = text("role");
        let anonymous = claims.get("is_anonymous").and_then(Value::as_bool) == Some(true);
        if role == "authenticated" && anonymous && !self.config.anonymous_users_as_authenticated {
            role = "anon";
        }
        let permissions = match role {
            "service_role" => Permissions::ALL,
            "authenticated" => self.config.authenticated,
            "anon" => self.config.anon,
            _ => Permissions::NONE,
        };
        if permissions.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "a JWT with role {:?} may not use this service",
                loggable(if role.is_empty() { "none" } else { role })
            )));
        }
        let owner = match (&self.config.customer_claim, role) {
            (_, "service_role") | (None, _) => None,
            (Some(name), _) => Some(match claim(claims, name) {
                Some(Value::String(s)) if crate::domain::check_text(s).is_ok() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(ApiError::Forbidden(format!(
                        "this token carries no usable {name} claim, which names its customer"
                    )))
                }
            }),
        };
        let sub = text("sub");
        let subject = if sub.is_empty() { role } else { sub };
        // A user's scope is its issuer and subject, so that its refreshed
        // token replays its keys. A token without `sub` (Supabase's
        // `service_role` key has none) names no one: its scope is the token
        // itself, as for a static token, so two holders of different such
        // tokens never replay, or collide with, each other's keys.
        let scope = if sub.is_empty() {
            Sha256::new()
                .chain_update(b"jwt-token\n")
                .chain_update(token.as_bytes())
                .finalize()
        } else {
            Sha256::new()
                .chain_update(b"jwt\n")
                .chain_update(text("iss").as_bytes())
                .chain_update(b"\n")
                .chain_update(subject.as_bytes())
                .finalize()
        };
        Ok(Caller {
            who: format!("jwt:{}", loggable(subject)),
            token_id: super::token_id(&super::digest(token)),
            scope: crate::hex::encode(&scope[..16]),
            permissions,
            owner,
            service: role == "service_role",
            static_token: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_shapes() {
        assert!(looks_like_jwt("eyJh.eyJz.c2ln"));
        assert!(looks_like_jwt("eyJh.eyJz."));
        assert!(!looks_like_jwt("plain-token"));
        assert!(!looks_like_jwt("a.b"));
        assert!(!looks_like_jwt("a.b.c.d"));
        assert!(!looks_like_jwt("a b.c.d"));
    }

    #[test]
    fn long_or_odd_values_are_digested() {
        assert_eq!(loggable("4f1c-user"), "4f1c-user");
        assert!(loggable(&"x".repeat(65)).starts_with("sha256:"));
        assert!(loggable("a b").starts_with("sha256:"));
        assert!(loggable("").starts_with("sha256:"));
    }

    #[test]
    fn claims_are_found_by_name_or_path() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "sub": "u1", "app_metadata": {"customer_id": "C9"}, "a.b": 1
        }))
        .unwrap();
        assert_eq!(claim(&claims, "sub"), Some(&Value::from("u1")));
        assert_eq!(
            claim(&claims, "app_metadata.customer_id"),
            Some(&Value::from("C9"))
        );
        assert_eq!(claim(&claims, "a.b"), Some(&Value::from(1)));
        assert_eq!(claim(&claims, "app_metadata.nope"), None);
    }

    #[test]
    fn a_verifier_needs_a_secret_or_keys() {
        let config = |secret: Option<JwtSecret>| JwtConfig {
            secret,
            jwks: None,
            issuer: None,
            audience: Some("authenticated".into()),
            leeway_secs: 30,
            authenticated: Permissions::ALL,
            anon: Permissions::NONE,
            anonymous_users_as_authenticated: false,
            customer_claim: None,
        };
        assert!(JwtVerifier::new(config(None)).is_err());
        let secret = JwtSecret::new("s".repeat(32)).unwrap();
        assert!(JwtVerifier::new(config(Some(secret))).is_ok());
    }
}
