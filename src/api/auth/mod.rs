//! Bearer authentication: static tokens and JWTs, and what each caller may do.
//!
//! Static tokens are kept only as SHA-256 digests and compared in constant
//! time, so neither the comparison's timing nor the token's length leaks. A
//! bearer that is not a static token and looks like a JWT is verified as one
//! ([`jwt`]), with keys from the HS256 secret or a JWKS ([`jwks`]), its
//! signature checked by ring ([`crypto`]).
//!
//! Every protected operation takes [`BearerAuth`] first: it answers 401 for
//! an unknown or invalid token, then 403 when the caller lacks the
//! [`Permission`] the request's method needs (`read` for GET, `write` for
//! every change). That is the one place permissions are checked, so a new
//! operation cannot forget it.
//! The customer restriction travels in [`Caller::actor`] to the store, which
//! enforces it in the same statement as the read or change.

use poem::http::{header, Method};
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::{Permission, Permissions};
use crate::api::error::ApiError;

pub mod crypto;
pub mod jwks;
pub mod jwt;

pub use jwt::JwtVerifier;

/// The name of the scheme in the OpenAPI document.
pub const SCHEME: &str = "bearerAuth";

/// The permission a request with this method needs: reads are `GET` (and
/// `HEAD`), anything else changes something.
pub fn required_permission(method: &Method) -> Permission {
    if method == Method::GET || method == Method::HEAD {
        Permission::Read
    } else {
        Permission::Write
    }
}

/// A set of static tokens.
#[derive(Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.digests.len())
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Accepts exactly these tokens (blank ones are dropped).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(tokens: I) -> Tokens {
        Tokens {
            digests: tokens
                .into_iter()
                .map(|t| t.as_ref().trim().to_string())
                .filter(|t| !t.is_empty())
                .map(|t| digest(&t))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of these. Every configured token is compared,
    /// so the time taken does not depend on which one matches.
    fn contains(&self, presented: &[u8; 32]) -> bool {
        let mut found = subtle::Choice::from(0u8);
        for known in &self.digests {
            found |= known.ct_eq(presented);
        }
        bool::from(found)
    }

    /// The caller for `token`, if it is one of these, with `permissions`.
    pub fn check(&self, token: &str, permissions: Permissions) -> Option<Caller> {
        let presented = digest(token);
        self.contains(&presented).then(|| {
            let token_id = token_id(&presented);
            Caller {
                who: format!("token:{token_id}"),
                token_id,
                scope: crate::hex::encode(&presented[..16]),
                permissions,
                owner: None,
                service: true,
                static_token: true,
            }
        })
    }
}

fn token_id(digest: &[u8; 32]) -> String {
    crate::hex::encode(&digest[..4])
}

/// The token id of the bearer token a request presents (valid or not), for
/// the request log: a digest prefix, from which the token cannot be found.
pub fn presented_token_id(request: &Request) -> Option<String> {
    bearer(request).map(|t| token_id(&digest(t)))
}

/// A random token for a service started without one: 32 bytes, hex.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    crate::hex::encode(&bytes)
}

/// Who is calling, and what it may do: safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `token:<token id>` for a static token, `jwt:<sub>` for a JWT.
    pub who: String,
    /// The first 8 hex digits of the presented token's SHA-256.
    pub token_id: String,
    /// A digest (128 bits) that scopes what belongs to this caller, such as
    /// idempotency keys: of the token for a static token, of the issuer and
    /// subject for a JWT (so a user's refreshed token is the same caller),
    /// of the token for a JWT without `sub`.
    pub scope: String,
    /// What it may do.
    pub permissions: Permissions,
    /// When set, the only customer whose orders this caller sees.
    pub owner: Option<String>,
    /// A service rather than an end user: a static token or a
    /// `service_role` JWT (only these may scrape `/metrics`).
    pub service: bool,
    /// One of the configured static tokens (not a JWT).
    pub static_token: bool,
}

impl Caller {
    /// The store's view of this caller, in the current request.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor {
            who: self.who.clone(),
            request_id: crate::request_id::current_request_id().unwrap_or_default(),
            traceparent: crate::trace_context::current(),
            owner: self.owner.clone(),
        }
    }

    /// 403 unless this caller has `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.has(permission) {
            return Ok(());
        }
        let what = match permission {
            Permission::Read => "read orders",
            Permission::Write => "change orders",
        };
        // "scope" is the word the contract's 403 has always used.
        Err(ApiError::Forbidden(format!(
            "this token may not {what} (it lacks the {} scope)",
            permission.as_str()
        )))
    }
}

impl Caller {
    /// 403 unless this caller may administer the service (backups): a
    /// static token with write permission, the operator's own. Not a JWT
    /// (a user of the shop, or a `service_role` key shared with the
    /// front-end's back office), not a read-only token.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.static_token && self.permissions.has(Permission::Write) {
            return Ok(());
        }
        Err(ApiError::Forbidden(
            "only a static read-write API token (auth.tokens) may administer the service; \
             JWTs and read-only tokens may not"
                .into(),
        ))
    }
}

/// Reads `Authorization: Bearer <token>` (scheme name in any case).
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// Everything that can vouch for a caller: the static tokens (read-write
/// and read-only) and, when configured, the JWT verifier.
#[derive(Clone, Default)]
pub struct Authenticator {
    pub tokens: Tokens,
    pub read_tokens: Tokens,
    pub jwt: Option<std::sync::Arc<JwtVerifier>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens)
            .field("read_tokens", &self.read_tokens)
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Static read-write tokens only.
    pub fn with_tokens(tokens: Tokens) -> Authenticator {
        Authenticator {
            tokens,
            ..Authenticator::default()
        }
    }

    /// The caller a token identifies: 401 when no one vouches for it, 403
    /// when a valid JWT may not use the service at all (an `authenticated`
    /// JWT without the customer claim).
    pub async fn check(&self, token: &str) -> Result<Caller, ApiError> {
        if let Some(caller) = self.tokens.check(token, Permissions::ALL) {
            return Ok(caller);
        }
        if let Some(caller) = self.read_tokens.check(token, Permissions::READ) {
            return Ok(caller);
        }
        match &self.jwt {
            Some(jwt) if jwt::looks_like_jwt(token) => jwt.caller(token).await,
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// The caller a request's bearer token identifies.
    pub async fn authenticate(&self, request: &Request) -> Result<Caller, ApiError> {
        let token = bearer(request).ok_or(ApiError::Unauthorized)?;
        self.check(token).await
    }
}

/// The extractor every protected operation takes first, so that a bad token
/// is refused (401), and then a caller without the permission the method needs
/// (403), before anything else about the request is looked at.
pub struct BearerAuth(pub Caller);

impl<'a> ApiExtractor<'a> for BearerAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "`Authorization: Bearer <token>`, where the token is one of:\n\n\
                     - a static API token from COMMANDES_API_TOKENS (or auth.tokens): reads and \
                     writes everything. With no token of any kind configured, the service \
                     prints a random one at start-up;\n\
                     - a read-only token from COMMANDES_READ_TOKENS (or auth.read_tokens): \
                     every change (POST, PUT, DELETE) is a 403;\n\
                     - a JWT (e.g. a Supabase user's access token), when COMMANDES_JWT_SECRET \
                     (HS256) or COMMANDES_JWKS_URL / COMMANDES_JWKS_FILE (ES256, RS256) is set: \
                     `exp`, `nbf`, `aud` (default `authenticated`) and, when configured, `iss` \
                     are checked. By its `role` claim: `service_role` reads and writes \
                     everything; `authenticated` reads and writes (by default), limited to \
                     the orders whose `customer_id` equals its customer claim when \
                     COMMANDES_CUSTOMER_CLAIM is set (403 if it has none; another customer's \
                     order is a 404, as if absent); `anon` and anonymous users get 403.\n\n\
                     The administration operations (`/admin/…`, backups) take only a static \
                     read-write API token: a JWT of any role and a read-only token get 403.\n\n\
                     An invalid token of any kind is a 401; a valid one that may not do what \
                     the request asks is a 403.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let caller = authenticated(request).await?;
        caller.require(required_permission(request.method()))?;
        Ok(BearerAuth(caller))
    }
}

/// The caller of `request`, by the app's [`Authenticator`]: 401 for a
/// missing or invalid token. Both extractors start here.
async fn authenticated(request: &Request) -> poem::Result<Caller> {
    let auth = request.data::<Authenticator>().ok_or(ApiError::Internal)?;
    Ok(auth.authenticate(request).await?)
}

/// The extractor of the administration operations (`/admin/…`): 401 for
/// a bad token, then 403 unless [`Caller::require_admin`] lets it in.
pub struct AdminAuth(pub Caller);

impl<'a> ApiExtractor<'a> for AdminAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        BearerAuth::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let caller = authenticated(request).await?;
        caller.require_admin()?;
        Ok(AdminAuth(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_pass() {
        let tokens = Tokens::new(["alpha", " beta ", ""]);
        assert!(tokens.check("alpha", Permissions::ALL).is_some());
        assert!(tokens.check("beta", Permissions::ALL).is_some());
        assert!(tokens.check("", Permissions::ALL).is_none());
        assert!(tokens.check("alph", Permissions::ALL).is_none());
        assert!(tokens.check("alphaa", Permissions::ALL).is_none());
        assert!(Tokens::new([""]).is_empty());
    }

    #[test]
    fn the_token_id_is_not_the_token() {
        let caller = Tokens::new(["secret"])
            .check("secret", Permissions::ALL)
            .unwrap();
        assert_eq!(caller.token_id.len(), 8);
        assert!(!caller.token_id.contains("secret"));
        assert_eq!(caller.who, format!("token:{}", caller.token_id));
    }

    #[test]
    fn generated_tokens_differ() {
        assert_ne!(generate_token(), generate_token());
        assert_eq!(generate_token().len(), 64);
    }

    #[test]
    fn reads_need_read_and_changes_need_write() {
        assert_eq!(required_permission(&Method::GET), Permission::Read);
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert_eq!(required_permission(&m), Permission::Write);
        }
        let reader = Tokens::new(["r"]).check("r", Permissions::READ).unwrap();
        assert!(reader.require(Permission::Read).is_ok());
        assert!(matches!(
            reader.require(Permission::Write),
            Err(ApiError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn read_tokens_only_read() {
        let auth = Authenticator {
            tokens: Tokens::new(["rw"]),
            read_tokens: Tokens::new(["ro"]),
            jwt: None,
        };
        assert_eq!(
            auth.check("rw").await.unwrap().permissions,
            Permissions::ALL
        );
        assert_eq!(
            auth.check("ro").await.unwrap().permissions,
            Permissions::READ
        );
        assert!(matches!(
            auth.check("a.b.c").await,
            Err(ApiError::Unauthorized)
        ));
        assert!(auth.check("rw").await.unwrap().require_admin().is_ok());
        assert!(matches!(
            auth.check("ro").await.unwrap().require_admin(),
            Err(ApiError::Forbidden(_))
        ));
    }
}
