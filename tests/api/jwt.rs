//! JWT bearer tokens: HS256 with the secret, ES256/RS256 from a JWKS served
//! on loopback by the test (or a file), refusals, key rotation, roles.
//!
//! Keys are made at test time with the `openssl` command.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use commandes::access::{JwksUrl, JwtSecret, Permission};
use commandes::config::Settings;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{json, problem, Backend, TestApp, TOKEN};

/// The HS256 secret of the test apps (Supabase's legacy secrets are longer
/// than 32 bytes, too).
pub const SECRET: &str = "test-jwt-secret-with-more-than-32-bytes";
pub const ISSUER: &str = "https://test-ref.supabase.co/auth/v1";

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The claims of a Supabase user token: `role`, `sub`, valid for an hour.
pub fn claims(role: &str, sub: &str) -> Value {
    json!({
        "iss": ISSUER, "aud": "authenticated", "sub": sub, "role": role,
        "iat": now(), "exp": now() + 3600, "is_anonymous": false,
    })
}

/// `claims` with `changes` merged in (a `null` removes a claim).
pub fn with(mut claims: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// An HS256 token signed with `secret`.
pub fn hs256_with(secret: &str, claims: &Value) -> String {
    // The service's own provider (ring) signs too: jsonwebtoken has none.
    commandes::api::auth::crypto::install();
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// An HS256 token signed with [`SECRET`].
pub fn hs256(claims: &Value) -> String {
    hs256_with(SECRET, claims)
}

/// A private key and its public JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    pub jwk: Value,
}

fn openssl_key(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .output()
        .expect("the openssl command runs");
    assert!(out.status.success(), "openssl genpkey {args:?} failed");
    out.stdout
}

impl TestKey {
    fn new(kid: &str, alg: Algorithm) -> TestKey {
        commandes::api::auth::crypto::install();
        let key = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(&openssl_key(&[
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ]))
            .unwrap(),
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&openssl_key(&[
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ]))
            .unwrap(),
            other => panic!("no test keys for {other:?}"),
        };
        let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
        jwk.common.key_id = Some(kid.into());
        TestKey {
            kid: kid.into(),
            alg,
            key,
            jwk: serde_json::to_value(jwk).unwrap(),
        }
    }

    /// A token signed by this key, naming it in `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// A token signed by this key, naming `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}

/// The keys of the tests, made once per run: two EC keys (a rotation),
/// an RSA key, and an EC key no JWKS ever holds.
pub fn key(name: &str) -> &'static TestKey {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        vec![
            TestKey::new("key-a", Algorithm::ES256),
            TestKey::new("key-b", Algorithm::ES256),
            TestKey::new("rsa-1", Algorithm::RS256),
            TestKey::new("key-x", Algorithm::ES256),
        ]
    });
    keys.iter().find(|k| k.kid == name).expect("a test key")
}

/// A JWKS document holding `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// A JWKS served over HTTP on loopback, counting how often it is fetched.
pub struct KeyServer {
    pub url: String,
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl KeyServer {
    /// Serves `document` at `/auth/v1/.well-known/jwks.json`.
    pub async fn start(document: Value) -> KeyServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, document)
    }

    fn start_on(listener: tokio::net::TcpListener, document: Value) -> KeyServer {
        use poem::listener::{Acceptor, TcpAcceptor};
        let addr = listener.local_addr().unwrap();
        let acceptor = TcpAcceptor::from_tokio(listener).unwrap();
        assert!(!acceptor.local_addr().is_empty());
        let served = Arc::new(Mutex::new(document.to_string()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (doc, count) = (served.clone(), fetches.clone());
        let endpoint = poem::endpoint::make(move |_req| {
            let (doc, count) = (doc.clone(), count.clone());
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let body = doc.lock().unwrap().clone();
                poem::Response::builder()
                    .content_type("application/json")
                    .body(body)
            }
        });
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await;
        });
        KeyServer {
            url: format!("http://{addr}/auth/v1/.well-known/jwks.json"),
            document: served,
            fetches,
            task,
        }
    }

    /// Serves `document` from now on.
    pub fn serve(&self, document: Value) {
        *self.document.lock().unwrap() = document.to_string();
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for KeyServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An app on `backend` that checks JWTs as `configure` says, on top of the
/// usual static tokens and the Supabase issuer.
pub async fn jwt_app(backend: Backend, configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.auth.jwt_issuer = ISSUER.into();
        configure(s);
    })
    .await
    .expect("same backend as the test app")
}

/// `GET path` with `token`.
pub async fn get_with(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.anonymous(Method::GET, path)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// `method path` with `token` and a JSON body.
pub async fn send_with(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: &Value,
) -> reqwest::Response {
    app.anonymous(method, path)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A 401 that says nothing about why.
async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let r = get_with(app, token, "/commandes").await;
    assert_eq!(r.status(), 401, "{what}");
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "{what}"
    );
    let body = problem(r, 401).await;
    assert_eq!(
        body["detail"], "a valid bearer token is required (Authorization: Bearer <token>)",
        "{what}: the reason stays in the log"
    );
}

async fn assert_accepted(app: &TestApp, token: &str, what: &str) {
    let r = get_with(app, token, "/commandes").await;
    assert_eq!(r.status(), 200, "{what}");
}

/// An unsigned token (`alg: none`) with these claims.
fn unsigned(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

async fn es256_and_rs256_from_a_served_jwks_are_accepted(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a"), key("rsa-1")])).await;
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap())
    })
    .await;
    let user = claims("authenticated", "user-1");
    for k in [key("key-a"), key("rsa-1")] {
        let token = k.sign(&user);
        assert_accepted(&app, &token, &format!("{:?}", k.alg)).await;
        let r = send_with(
            &app,
            &token,
            Method::POST,
            "/commandes",
            &json!({"order_id": format!("CMD-{}", k.kid), "customer_id": "C1", "total_amount": "5.00"}),
        )
        .await;
        assert_eq!(r.status(), 201, "an authenticated JWT writes by default");
    }
    assert_eq!(app.stats().await["total_orders"], 2);
    // The key set was fetched once, at start-up.
    assert_eq!(server.fetches(), 1);
}

async fn hs256_with_the_secret_is_accepted(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap())
    })
    .await;
    let user = claims("authenticated", "user-1");
    assert_accepted(&app, &hs256(&user), "HS256 with the secret").await;
    assert_refused(
        &app,
        &hs256_with("another-secret-with-more-than-32-bytes!", &user),
        "HS256 with another secret",
    )
    .await;
    // Within the clock skew (30 s by default), a just-expired token passes.
    assert_accepted(
        &app,
        &hs256(&with(user.clone(), json!({"exp": now() - 5}))),
        "expired 5 s ago",
    )
    .await;
    // Static tokens keep working beside JWTs.
    assert_accepted(&app, TOKEN, "static token").await;
}

async fn invalid_jwts_are_401(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a")])).await;
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap());
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
    })
    .await;
    let user = claims("authenticated", "user-1");
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            hs256(&with(user.clone(), json!({"exp": now() - 120}))),
        ),
        (
            "expired (ES256)",
            key("key-a").sign(&with(user.clone(), json!({"exp": now() - 120}))),
        ),
        (
            "nbf in the future",
            hs256(&with(user.clone(), json!({"nbf": now() + 600}))),
        ),
        (
            "wrong aud",
            hs256(&with(user.clone(), json!({"aud": "someone-else"}))),
        ),
        ("no aud", hs256(&with(user.clone(), json!({"aud": null})))),
        (
            "wrong iss",
            key("key-a").sign(&with(
                user.clone(),
                json!({"iss": "https://other.supabase.co/auth/v1"}),
            )),
        ),
        ("no iss", hs256(&with(user.clone(), json!({"iss": null})))),
        ("no exp", hs256(&with(user.clone(), json!({"exp": null})))),
        ("alg none", unsigned(&user)),
        (
            "signed by another key under a known kid",
            key("key-x").sign_as("key-a", &user),
        ),
        ("garbage", "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl".into()),
        ("tampered", {
            let t = hs256(&user);
            let mut parts: Vec<String> = t.split('.').map(String::from).collect();
            parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(with(user.clone(), json!({"role": "service_role"})).to_string());
            parts.join(".")
        }),
    ];
    for (what, token) in &cases {
        assert_refused(&app, token, what).await;
    }
    // The same claims, valid, pass: the refusals above are about what changed.
    assert_accepted(&app, &hs256(&user), "valid HS256").await;
    assert_accepted(&app, &key("key-a").sign(&user), "valid ES256").await;
}

async fn no_algorithm_confusion(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a")])).await;
    let user = claims("authenticated", "user-1");
    // Only a JWKS: an HS256 token is refused, whatever secret signed it
    // (the public key's JSON included).
    let jwks_only = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap())
    })
    .await;
    assert_refused(&jwks_only, &hs256(&user), "HS256 with only a JWKS").await;
    let public = key("key-a").jwk.to_string();
    assert_refused(
        &jwks_only,
        &hs256_with(&public, &user),
        "HS256 signed with the public key",
    )
    .await;
    assert_accepted(&jwks_only, &key("key-a").sign(&user), "ES256").await;
    drop(jwks_only);
    // Only a secret: asymmetric tokens are refused.
    let secret_only = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap())
    })
    .await;
    assert_refused(
        &secret_only,
        &key("key-a").sign(&user),
        "ES256 with only a secret",
    )
    .await;
    assert_refused(
        &secret_only,
        &key("rsa-1").sign(&user),
        "RS256 with only a secret",
    )
    .await;
    // Without any JWT setting, a JWT is just an unknown token.
    let plain = TestApp::spawn(app.backend).await.unwrap();
    assert_refused(&plain, &hs256(&user), "no JWT configured").await;
}

async fn an_unknown_kid_refreshes_once_and_is_still_refused(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a")])).await;
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap())
    })
    .await;
    assert_eq!(server.fetches(), 1, "fetched at start-up");
    let user = claims("authenticated", "user-1");
    assert_refused(&app, &key("key-x").sign(&user), "unknown kid").await;
    assert_eq!(server.fetches(), 2, "an unknown kid fetches the set again");
    // More unknown kids within the rate limit fetch nothing more.
    for kid in ["key-y", "key-z", "key-x"] {
        assert_refused(&app, &key("key-x").sign_as(kid, &user), kid).await;
    }
    assert_eq!(server.fetches(), 2, "at most one refresh per 30 s");
    assert_accepted(&app, &key("key-a").sign(&user), "the known key").await;
}

async fn a_rotated_key_is_picked_up_without_restart(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a")])).await;
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap())
    })
    .await;
    let user = claims("authenticated", "user-1");
    assert_accepted(&app, &key("key-a").sign(&user), "the first key").await;
    // The issuer publishes a new key beside the old one, and signs with it.
    server.serve(jwks(&[key("key-a"), key("key-b")]));
    assert_accepted(&app, &key("key-b").sign(&user), "the new key").await;
    assert_eq!(server.fetches(), 2);
    assert_accepted(
        &app,
        &key("key-a").sign(&user),
        "the old key, still published",
    )
    .await;
}

async fn the_jwks_is_refreshed_in_the_background(app: TestApp) {
    let server = KeyServer::start(jwks(&[key("key-a")])).await;
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&server.url).unwrap());
        s.auth.jwks_refresh_secs = 1;
    })
    .await;
    server.serve(jwks(&[key("key-b")]));
    // No token asks for it: the periodic refresh fetches the new set.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.fetches() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let user = claims("authenticated", "user-1");
    assert_accepted(&app, &key("key-b").sign(&user), "the new key").await;
    // The old key left the set with the refresh (its kid is now unknown,
    // and the on-demand refresh finds it absent too).
    assert_refused(&app, &key("key-a").sign(&user), "the withdrawn key").await;
}

async fn a_jwks_file_works_and_is_read_again_on_rotation(app: TestApp) {
    let backend = app.backend;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks(&[key("key-a")]).to_string()).unwrap();
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_file = path.display().to_string();
    })
    .await;
    let user = claims("authenticated", "user-1");
    assert_accepted(&app, &key("key-a").sign(&user), "a key from the file").await;
    assert_refused(&app, &key("rsa-1").sign(&user), "a key not in the file").await;
    std::fs::write(&path, jwks(&[key("key-b")]).to_string()).unwrap();
    // The refresh for rsa-1 above was less than 30 s ago: key-b waits for
    // the next one, so it is refused for now ...
    assert_refused(&app, &key("key-b").sign(&user), "rate-limited refresh").await;
    // ... and a new process reads the new file.
    drop(app);
    let app = jwt_app(backend, |s| s.auth.jwks_file = path.display().to_string()).await;
    assert_accepted(&app, &key("key-b").sign(&user), "the rotated file").await;
}

async fn a_jwks_url_down_at_start_up_does_not_stop_the_service(app: TestApp) {
    // A port that nothing listens on (yet).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/auth/v1/.well-known/jwks.json");
    let app = jwt_app(app.backend, |s| {
        s.auth.jwks_url = Some(JwksUrl::parse(&url).unwrap());
        s.auth.jwks_timeout_secs = 2;
    })
    .await;
    let r = app
        .anonymous(Method::GET, "/health/ready")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_accepted(&app, TOKEN, "static tokens work meanwhile").await;
    // The key server comes up: the first JWT fetches the keys.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let server = KeyServer::start_on(listener, jwks(&[key("key-a")]));
    assert_accepted(
        &app,
        &key("key-a").sign(&claims("authenticated", "user-1")),
        "once the key server answers",
    )
    .await;
    assert_eq!(server.fetches(), 1);
}

async fn roles_decide_what_a_valid_jwt_may_do(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap())
    })
    .await;
    app.create("CMD001", "C1", "1.00", "pending").await;
    let order = json!({"order_id": "CMD002", "customer_id": "C1", "total_amount": "2.00"});
    // anon, an anonymous user, an unknown role, no role: 403 on reads and writes.
    for (what, token) in [
        ("anon", hs256(&claims("anon", "anon-1"))),
        (
            "anonymous user",
            hs256(&with(
                claims("authenticated", "u-anon"),
                json!({"is_anonymous": true}),
            )),
        ),
        ("unknown role", hs256(&claims("admin", "u2"))),
        (
            "no role",
            hs256(&with(claims("authenticated", "u3"), json!({"role": null}))),
        ),
    ] {
        let r = get_with(&app, &token, "/commandes").await;
        problem(r, 403).await;
        let r = get_with(&app, &token, "/stats").await;
        problem(r, 403).await;
        let r = send_with(&app, &token, Method::POST, "/commandes", &order).await;
        let body = problem(r, 403).await;
        assert!(body["detail"].is_string(), "{what}");
    }
    // service_role reads and writes everything.
    let service = hs256(&with(claims("service_role", "svc"), json!({"sub": null})));
    assert_eq!(get_with(&app, &service, "/commandes").await.status(), 200);
    let r = send_with(&app, &service, Method::POST, "/commandes", &order).await;
    assert_eq!(r.status(), 201);
    assert_eq!(app.stats().await["total_orders"], 2);
}

async fn anon_scopes_and_anonymous_users_are_configurable(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
        s.auth.anon_scopes = vec![Permission::Read];
        s.auth.anonymous_users_as_authenticated = true;
        s.auth.authenticated_scopes = vec![Permission::Read];
    })
    .await;
    let order = json!({"order_id": "CMD002", "customer_id": "C1", "total_amount": "2.00"});
    for token in [
        hs256(&claims("anon", "anon-1")),
        hs256(&with(
            claims("authenticated", "u-anon"),
            json!({"is_anonymous": true}),
        )),
        hs256(&claims("authenticated", "u1")),
    ] {
        assert_eq!(get_with(&app, &token, "/commandes").await.status(), 200);
        let r = send_with(&app, &token, Method::POST, "/commandes", &order).await;
        problem(r, 403).await;
    }
}

async fn metrics_are_for_services_not_users(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap());
        s.auth.read_tokens = vec!["reader-token-0123".into()];
    })
    .await;
    let user = hs256(&claims("authenticated", "u1"));
    problem(get_with(&app, &user, "/metrics").await, 403).await;
    let service = hs256(&claims("service_role", "svc"));
    assert_eq!(get_with(&app, &service, "/metrics").await.status(), 200);
    assert_eq!(get_with(&app, TOKEN, "/metrics").await.status(), 200);
    assert_eq!(
        get_with(&app, "reader-token-0123", "/metrics")
            .await
            .status(),
        200
    );
    let r = get_with(
        &app,
        &hs256(&claims("authenticated", "u1"))[1..],
        "/metrics",
    )
    .await;
    assert_eq!(r.status(), 401);
}

async fn a_refreshed_token_replays_its_idempotency_key(app: TestApp) {
    let app = jwt_app(app.backend, |s| {
        s.auth.jwt_secret = Some(JwtSecret::new(SECRET).unwrap())
    })
    .await;
    let order = json!({"order_id": "CMD-IDEM", "customer_id": "C1", "total_amount": "3.00"});
    let first = hs256(&claims("authenticated", "user-1"));
    // The same user later, with a new token (new iat and exp).
    let refreshed = hs256(&with(
        claims("authenticated", "user-1"),
        json!({"iat": now() + 1, "exp": now() + 7200}),
    ));
    assert_ne!(first, refreshed);
    let post = |token: String| {
        let app = &app;
        let order = order.clone();
        async move {
            app.anonymous(Method::POST, "/commandes")
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("idempotency-key", "retry-1")
                .body(order.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let r = post(first).await;
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("idempotent-replayed").is_none());
    let created = json(r, 201).await;
    let r = post(refreshed).await;
    assert_eq!(
        r.headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    assert_eq!(json(r, 201).await["id"], created["id"]);
    // Another user's key space is its own: the same key creates (and
    // conflicts on the order_id, since it is the same order).
    let r = post(hs256(&claims("authenticated", "user-2"))).await;
    assert_eq!(r.status(), 409);
}

crate::both_backends!(
    es256_and_rs256_from_a_served_jwks_are_accepted,
    hs256_with_the_secret_is_accepted,
    invalid_jwts_are_401,
    no_algorithm_confusion,
    an_unknown_kid_refreshes_once_and_is_still_refused,
    a_rotated_key_is_picked_up_without_restart,
    a_jwks_file_works_and_is_read_again_on_rotation,
    the_jwks_is_refreshed_in_the_background,
    a_jwks_url_down_at_start_up_does_not_stop_the_service,
    roles_decide_what_a_valid_jwt_may_do,
    anon_scopes_and_anonymous_users_are_configurable,
    metrics_are_for_services_not_users,
    a_refreshed_token_replays_its_idempotency_key,
);
