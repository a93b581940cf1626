//! What the server does for `/dashboard`, without a browser: every file
//! comes from the binary with a strict Content-Security-Policy, and the
//! page names no outside resource.

use reqwest::Method;

use crate::support::{Backend, TestApp};

/// The pages do not depend on the store: SQLite serves them for both.
async fn app() -> TestApp {
    TestApp::spawn(Backend::Sqlite).await.expect("SQLite")
}

const FILES: &[&str] = &[
    "/dashboard",
    "/dashboard/",
    "/dashboard/app.js",
    "/dashboard/style.css",
    "/dashboard/icon.svg",
];

#[tokio::test]
async fn every_page_carries_a_strict_policy() {
    let app = app().await;
    for path in FILES {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r = app
        .anonymous(Method::GET, "/dashboard")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("//"));
    assert!(!html.contains("<style") && !html.contains(" style="));
    // The only script is an external module.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(r#"<script type="module" src="/dashboard/app.js"></script>"#));
    let js = app
        .anonymous(Method::GET, "/dashboard/app.js")
        .send()
        .await
        .unwrap();
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
}

#[tokio::test]
async fn an_unchanged_file_is_a_304() {
    let app = app().await;
    let r = app
        .anonymous(Method::GET, "/dashboard/app.js")
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let again = app
        .anonymous(Method::GET, "/dashboard/app.js")
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_files_are_404() {
    let app = app().await;
    for path in [
        "/dashboard/nope.js",
        "/dashboard/../Cargo.toml",
        "/dashboard/%2E%2E/docs.html",
        "/dashboard/vendor/swagger-ui.css",
        // Not through the docs' route either, where the policy is not set.
        "/assets/dashboard/index.html",
        "/assets/dashboard/app.js",
    ] {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json"));
    }
}
