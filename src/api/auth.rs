//! Bearer-token authentication.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time, so
//! neither the comparison's timing nor the token's length leaks. A caller is
//! known in logs by a short token id (a prefix of the digest), never by the
//! token.

use poem::http::header;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The name of the scheme in the OpenAPI document.
pub const SCHEME: &str = "bearerAuth";

/// The accepted API tokens.
#[derive(Clone)]
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

    /// The caller for `token`, if it is one of ours. Every configured token
    /// is compared, so the time taken does not depend on which one matches.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let presented = digest(token);
        let mut found = subtle::Choice::from(0u8);
        for known in &self.digests {
            found |= known.ct_eq(&presented);
        }
        bool::from(found).then(|| Caller {
            token_id: token_id(&presented),
            scope: crate::hex::encode(&presented[..16]),
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

/// Who is calling: safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The first 8 hex digits of the token's SHA-256.
    pub token_id: String,
    /// A longer digest prefix (128 bits) that scopes what belongs to this
    /// caller, such as idempotency keys.
    pub scope: String,
}

impl Caller {
    /// The store's view of this caller, in the current request.
    pub fn actor(&self) -> crate::domain::Actor {
        crate::domain::Actor {
            who: format!("token:{}", self.token_id),
            request_id: super::observe::current_request_id().unwrap_or_default(),
            owner: None,
        }
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

/// The caller a request's bearer token identifies among `tokens`.
pub fn authenticate(request: &Request, tokens: &Tokens) -> Result<Caller, ApiError> {
    bearer(request)
        .and_then(|token| tokens.check(token))
        .ok_or(ApiError::Unauthorized)
}

/// The extractor every protected operation takes first, so that a bad token
/// is refused (401) before anything else about the request is looked at.
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
                    "An API token from COMMANDES_API_TOKENS (or auth.tokens), sent as \
                     `Authorization: Bearer <token>`. With none configured, the service prints a \
                     random one at start-up.",
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
        let tokens = request.data::<Tokens>().ok_or(ApiError::Internal)?;
        Ok(BearerAuth(authenticate(request, tokens)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_tokens_pass() {
        let tokens = Tokens::new(["alpha", " beta ", ""]);
        assert!(tokens.check("alpha").is_some());
        assert!(tokens.check("beta").is_some());
        assert!(tokens.check("").is_none());
        assert!(tokens.check("alph").is_none());
        assert!(tokens.check("alphaa").is_none());
        assert!(Tokens::new([""]).is_empty());
    }

    #[test]
    fn the_token_id_is_not_the_token() {
        let caller = Tokens::new(["secret"]).check("secret").unwrap();
        assert_eq!(caller.token_id.len(), 8);
        assert!(!caller.token_id.contains("secret"));
    }

    #[test]
    fn generated_tokens_differ() {
        assert_ne!(generate_token(), generate_token());
        assert_eq!(generate_token().len(), 64);
    }
}
