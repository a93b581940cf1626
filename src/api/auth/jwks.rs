//! The public keys JWTs are checked with, from a JWKS URL or file.
//!
//! The set is cached. It is fetched again when a token names a key id the
//! set does not have (a key rotation), at most once per
//! [`MIN_ON_DEMAND_REFRESH`] so that tokens with made-up key ids cannot make
//! the service hammer the key server, and periodically in the background. A
//! key server that is down never stops the service: the last good set stays
//! in use, and the failure is logged.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::access::JwksUrl;

/// The least time between two fetches that unknown key ids cause.
pub const MIN_ON_DEMAND_REFRESH: Duration = Duration::from_secs(30);

/// The largest key set read from a URL (Supabase's is about 1 KiB): a key
/// server that answers more is refused, not read into memory.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A usable public key.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Where the keys come from. Shown (`Display`) without the credentials a
/// URL may carry.
#[derive(Clone)]
pub enum Source {
    /// A URL that keys may be fetched from (its type checked that).
    Url(JwksUrl),
    File(PathBuf),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Url(url) => write!(f, "{url}"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The cached key set and how to refresh it.
pub struct Jwks {
    source: Source,
    /// Fetches a URL's set; a build without the `jwks` feature has none
    /// (its settings refuse a JWKS URL).
    #[cfg(feature = "jwks")]
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<Key>>>,
    /// When unknown key ids last caused a fetch; held while fetching, so
    /// concurrent requests wait for one fetch instead of starting many.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jwks({})", self.source)
    }
}

impl Jwks {
    /// A key set read from `source`, empty until [`Jwks::refresh`] runs.
    /// `timeout` bounds each fetch from a URL ([`client`]).
    pub fn new(source: Source, timeout: Duration) -> anyhow::Result<Jwks> {
        #[cfg(not(feature = "jwks"))]
        let _ = timeout;
        Ok(Jwks {
            #[cfg(feature = "jwks")]
            client: client(&source, timeout)?,
            source,
            keys: RwLock::new(Arc::new(Vec::new())),
            last_on_demand: tokio::sync::Mutex::new(None),
        })
    }

    /// Where the keys come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// How many usable keys the cached set holds.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn current(&self) -> Arc<Vec<Key>> {
        self.keys.read().expect("jwks lock").clone()
    }

    /// Fetches the set and, if it parses, replaces the cached one. Returns
    /// how many usable keys it holds.
    pub async fn refresh(&self) -> Result<usize, String> {
        let text = match &self.source {
            Source::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            #[cfg(not(feature = "jwks"))]
            Source::Url(_) => {
                return Err(crate::features::Feature::Jwks.missing("auth.jwks_url"));
            }
            #[cfg(feature = "jwks")]
            Source::Url(url) => {
                let response = self
                    .client
                    .get(url.expose())
                    .header("accept", "application/json")
                    .send()
                    .await
                    // The URL is logged apart, redacted: not in the error.
                    .map_err(|e| {
                        format!(
                            "cannot fetch: {}",
                            crate::error_chain::error_chain(&e.without_url())
                        )
                    })?;
                read_limited(response).await?
            }
        };
        let keys = parse(&text)?;
        let n = keys.len();
        *self.keys.write().expect("jwks lock") = Arc::new(keys);
        Ok(n)
    }

    /// Like [`Jwks::refresh`], logging the outcome.
    pub async fn refresh_logged(&self) {
        match self.refresh().await {
            Ok(n) => tracing::debug!(source = %self.source, keys = n, "JWKS loaded"),
            Err(reason) => {
                tracing::warn!(source = %self.source, %reason, "cannot refresh the JWKS; keeping the keys already known")
            }
        }
    }

    /// The keys that may have signed a token with this `kid` and `alg`: the
    /// key with that id (and that algorithm), or, for a token without a key
    /// id, every key of that algorithm. An unknown key id refreshes the set
    /// first (rate-limited).
    pub async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        let found = matching(&self.current(), kid, alg);
        if !found.is_empty() || kid.is_none() {
            return found;
        }
        let mut last = self.last_on_demand.lock().await;
        // Another request may have fetched the new set while this one waited.
        let found = matching(&self.current(), kid, alg);
        if !found.is_empty() {
            return found;
        }
        if last.is_some_and(|t| t.elapsed() < MIN_ON_DEMAND_REFRESH) {
            return Vec::new();
        }
        *last = Some(Instant::now());
        tracing::info!(source = %self.source, "a token names an unknown key id: fetching the JWKS again");
        self.refresh_logged().await;
        matching(&self.current(), kid, alg)
    }

    /// Refreshes the set every `every` for as long as the task runs; more
    /// often (every [`MIN_ON_DEMAND_REFRESH`]) while it holds no key.
    pub fn spawn_refresher(self: Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let wait = if self.is_empty() {
                    every.min(MIN_ON_DEMAND_REFRESH)
                } else {
                    every
                };
                tokio::time::sleep(wait).await;
                self.refresh_logged().await;
            }
        })
    }
}

/// The HTTP client for a JWKS URL: `timeout` bounds each fetch;
/// redirects are not followed, so the key set comes from the configured
/// place or not at all.
#[cfg(feature = "jwks")]
fn client(source: &Source, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none());
    if matches!(source, Source::Url(url) if url.is_https()) {
        // The platform's roots, as for the database's TLS.
        let found = rustls_native_certs::load_native_certs();
        if found.certs.is_empty() {
            anyhow::bail!("no trusted root certificates found for the JWKS URL");
        }
        for cert in found.certs {
            if let Ok(cert) = reqwest::Certificate::from_der(cert.as_ref()) {
                client = client.add_root_certificate(cert);
            }
        }
    }
    Ok(client.build()?)
}

/// The body of a key server's answer, at most [`MAX_BODY_BYTES`], read as
/// it arrives (a missing or false `content-length` does not help).
#[cfg(feature = "jwks")]
async fn read_limited(mut response: reqwest::Response) -> Result<String, String> {
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "the key server answered {status}: redirects are not followed, set the final URL"
        ));
    }
    if !status.is_success() {
        return Err(format!("the key server answered {status}"));
    }
    let too_large = || format!("the key set is larger than {MAX_BODY_BYTES} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("cannot read the answer: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| "the key set is not UTF-8".to_string())
}

fn matching(keys: &[Key], kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
    keys.iter()
        .filter(|k| k.alg == alg && (kid.is_none() || k.kid.as_deref() == kid))
        .map(|k| k.key.clone())
        .collect()
}

/// The usable keys of a JWKS document: ES256 (P-256) and RS256 signing
/// keys, which is what Supabase publishes. Keys this service cannot use
/// (encryption keys, other curves or algorithms) are skipped, and so are
/// HMAC keys: a symmetric key published with the public ones would let
/// anyone sign. A document that is not a JWKS at all is an error.
fn parse(text: &str) -> Result<Vec<Key>, String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::EllipticCurve(p), _) if p.curve != EllipticCurve::P256 => {
                continue
            }
            (AlgorithmParameters::EllipticCurve(_), None) => Algorithm::ES256,
            (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(_) | AlgorithmParameters::RSA(_), Some(a)) => {
                match a {
                    KeyAlgorithm::ES256 => Algorithm::ES256,
                    KeyAlgorithm::RS256 => Algorithm::RS256,
                    _ => continue,
                }
            }
            _ => continue,
        };
        if (alg == Algorithm::ES256)
            != matches!(jwk.algorithm, AlgorithmParameters::EllipticCurve(_))
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signing_keys_of_accepted_kinds_are_kept() {
        let doc = serde_json::json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "alg": "ES256", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "oct", "kid": "hmac", "alg": "HS256", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "wrong-alg", "alg": "RS256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird"}
        ]});
        let keys = parse(&doc.to_string()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["ec1"]);
        assert!(parse("{}").is_err());
        assert!(parse("not json").is_err());
    }

    /// Serves `answers` on 127.0.0.1, one per connection, in turn; returns
    /// the base URL.
    async fn serve(answers: Vec<Vec<u8>>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for answer in answers {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(&answer).await;
                let _ = socket.shutdown().await;
            }
        });
        base
    }

    fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    const EMPTY_SET: &[u8] = br#"{"keys": []}"#;

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let base = serve(vec![
            answer("302 Found", "location: /elsewhere.json\r\n", b""),
            answer("200 OK", "content-type: application/json\r\n", EMPTY_SET),
        ])
        .await;
        let jwks = Jwks::new(
            Source::Url(JwksUrl::parse(&format!("{base}/jwks.json")).unwrap()),
            Duration::from_secs(5),
        )
        .unwrap();
        let e = jwks.refresh().await.unwrap_err();
        assert!(e.contains("redirect"), "{e}");
    }

    #[tokio::test]
    async fn a_huge_key_set_is_refused() {
        let mut huge = br#"{"keys": [], "padding": ""#.to_vec();
        huge.extend(std::iter::repeat_n(b'x', MAX_BODY_BYTES + 1));
        huge.extend_from_slice(br#""}"#);
        // Once with its length announced, once without (chunked).
        let chunked = {
            let mut out =
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .to_vec();
            for chunk in huge.chunks(8192) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        };
        let base = serve(vec![answer("200 OK", "", &huge), chunked]).await;
        let jwks = Jwks::new(
            Source::Url(JwksUrl::parse(&format!("{base}/jwks.json")).unwrap()),
            Duration::from_secs(5),
        )
        .unwrap();
        for _ in 0..2 {
            let e = jwks.refresh().await.unwrap_err();
            assert!(e.contains("larger than"), "{e}");
        }
        let base = serve(vec![answer("200 OK", "", EMPTY_SET)]).await;
        let jwks = Jwks::new(
            Source::Url(JwksUrl::parse(&format!("{base}/jwks.json")).unwrap()),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(jwks.refresh().await, Ok(0));
    }

    #[tokio::test]
    async fn an_https_client_trusts_the_platform_roots() {
        let url = "https://example.invalid/auth/v1/.well-known/jwks.json";
        let url = JwksUrl::parse(url).unwrap();
        let jwks = Jwks::new(Source::Url(url), Duration::from_secs(1)).unwrap();
        // The name does not resolve: the refresh fails, and says so.
        assert!(jwks.refresh().await.unwrap_err().contains("cannot fetch"));
        assert!(jwks.keys_for(Some("k"), Algorithm::ES256).await.is_empty());
    }
}
