//! `GET /`, the probes, the OpenAPI document and the documentation pages.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{json, problem, Backend, TestApp};

const PATHS: [&str; 8] = [
    "/",
    "/stats",
    "/commandes",
    "/commandes/{id}",
    "/commandes/order/{order_id}",
    "/commandes/customer/{customer_id}",
    "/commandes/status/{status}",
    "/commandes/{id}/status",
];

async fn spec(app: &TestApp) -> Value {
    json(
        app.anonymous(Method::GET, "/openapi.json")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

/// Every (path, method, operation) of the document.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    out
}

fn is_public(path: &str) -> bool {
    path == "/" || path.starts_with("/health/")
}

async fn service_info(app: TestApp) {
    let info = json(app.anonymous(Method::GET, "/").send().await.unwrap(), 200).await;
    let storage = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres | Backend::Pooler => "postgres",
    };
    assert_eq!(info["service"], "commandes");
    assert_eq!(info["status"], "ok");
    assert_eq!(info["storage"], storage);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["revision"], commandes::build_info::REVISION);
    let docs = info["docs"].as_str().expect("docs is a string");
    let r = app.anonymous(Method::GET, docs).send().await.unwrap();
    assert_eq!(r.status(), 200, "the docs link works: {docs}");
}

async fn the_probes(app: TestApp) {
    for path in ["/health/live", "/health/ready"] {
        let body = json(app.anonymous(Method::GET, path).send().await.unwrap(), 200).await;
        assert_eq!(body, json!({"status": "ok"}), "{path}");
    }
}

async fn the_openapi_document(app: TestApp) {
    let spec = spec(&app).await;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{}",
        spec["openapi"]
    );
    assert_eq!(spec["info"]["title"], "commandes");
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    let paths = spec["paths"].as_object().expect("paths");
    for path in PATHS {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let methods = |path: &str| -> Vec<String> {
        let mut m: Vec<String> = paths[path].as_object().unwrap().keys().cloned().collect();
        m.sort();
        m
    };
    assert_eq!(methods("/commandes"), ["get", "post"]);
    assert_eq!(methods("/commandes/{id}"), ["delete", "get", "put"]);
    assert_eq!(methods("/commandes/{id}/status"), ["put"]);
    assert_eq!(methods("/stats"), ["get"]);
}

async fn the_bearer_scheme_is_declared(app: TestApp) {
    let spec = spec(&app).await;
    let schemes = spec["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes");
    let bearer: Vec<(&String, &Value)> = schemes
        .iter()
        .filter(|(_, s)| {
            s["type"] == "http"
                && s["scheme"]
                    .as_str()
                    .is_some_and(|v| v.eq_ignore_ascii_case("bearer"))
        })
        .collect();
    assert_eq!(bearer.len(), 1, "{schemes:?}");
    let name = bearer[0].0;
    for (path, method, op) in operations(&spec) {
        let security = op.get("security").and_then(Value::as_array);
        if is_public(&path) {
            assert!(
                security.is_none_or(|s| s.is_empty()),
                "{method} {path} is public: {op}"
            );
        } else {
            let names: Vec<&str> = security
                .unwrap_or_else(|| panic!("{method} {path} has no security"))
                .iter()
                .flat_map(|s| s.as_object().unwrap().keys().map(String::as_str))
                .collect();
            assert_eq!(names, [name.as_str()], "{method} {path}");
        }
    }
}

/// The statuses an operation declares: exactly those it can answer with,
/// so that a generated client has no case that never happens.
async fn each_operation_declares_only_what_it_answers(app: TestApp) {
    let spec = spec(&app).await;
    let declared = |path: &str, method: &str| -> Vec<String> {
        let mut statuses: Vec<String> = spec["paths"][path][method]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"))
            .keys()
            .cloned()
            .collect();
        statuses.sort();
        statuses
    };
    assert_eq!(
        declared("/stats", "get"),
        ["200", "401", "403", "422", "503"],
        "GET /stats"
    );
    assert_eq!(
        declared("/commandes", "post"),
        ["201", "400", "401", "403", "408", "409", "413", "415", "422", "503"],
        "POST /commandes"
    );
    assert_eq!(
        declared("/commandes/{id}", "delete"),
        ["204", "401", "403", "404", "412", "422", "503"],
        "DELETE /commandes/{{id}}"
    );
    // No operation without a body declares what only a body can cause,
    // and only those with an `{id}` or `{order_id}`, and the admin
    // operations (404 on PostgreSQL), declare 404.
    for (path, method, op) in operations(&spec) {
        let responses = op["responses"].as_object().unwrap();
        let has_body = op.get("requestBody").is_some();
        for status in ["400", "408", "413", "415"] {
            assert_eq!(
                responses.contains_key(status),
                has_body,
                "{method} {path} and {status}"
            );
        }
        let by_key = path.starts_with("/admin/")
            || ["{id}", "{order_id}"].iter().any(|key| path.contains(key));
        assert_eq!(
            responses.contains_key("404"),
            by_key,
            "{method} {path} and 404"
        );
    }
}

async fn problem_responses_are_declared(app: TestApp) {
    let spec = spec(&app).await;
    for (path, method, op) in operations(&spec) {
        if is_public(&path) {
            continue;
        }
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}"));
        let mut wanted = vec!["401", "422"];
        if path.starts_with("/admin/") {
            // The admin operations declare what they can answer, and no
            // more: they take no body (no 400, 408 or 415).
            // 404 on PostgreSQL, whose backups are not the service's.
            wanted.extend(["403", "404"]);
            if method == "post" {
                wanted.push("409");
            }
            for never in ["400", "408", "415", "412"] {
                assert!(
                    responses.get(never).is_none(),
                    "{method} {path} declares {never}"
                );
            }
        }
        if path.contains("{id}") || path.contains("{order_id}") {
            wanted.push("404");
        }
        if (method == "post" || method == "put") && !path.starts_with("/admin/") {
            wanted.extend(["400", "408", "409", "413", "415"]);
        }
        for status in wanted {
            let response = responses
                .get(status)
                .unwrap_or_else(|| panic!("{method} {path} does not declare {status}"));
            assert!(
                response["content"]
                    .get("application/problem+json")
                    .is_some(),
                "{method} {path} {status}: {response}"
            );
        }
    }
    let create = &spec["paths"]["/commandes"]["post"];
    assert!(create["responses"].get("201").is_some(), "{create}");
    let headers = create["responses"]["201"]["headers"]
        .as_object()
        .expect("201 headers");
    assert!(
        headers.keys().any(|h| h.eq_ignore_ascii_case("location")),
        "{create}"
    );
    let delete = &spec["paths"]["/commandes/{id}"]["delete"];
    assert!(delete["responses"].get("204").is_some(), "{delete}");
    // Every list declares its query parameters.
    for path in [
        "/commandes",
        "/commandes/customer/{customer_id}",
        "/commandes/status/{status}",
    ] {
        let names: Vec<&str> = spec["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["in"] == "query")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "min_amount",
            "max_amount",
            "created_from",
            "created_to",
            "sort",
            "skip",
            "limit",
        ] {
            assert!(names.contains(&name), "{path} lacks {name}: {names:?}");
        }
        assert_eq!(
            names.contains(&"customer_id"),
            !path.contains("customer"),
            "{path}: {names:?}"
        );
        assert_eq!(
            names.contains(&"status"),
            !path.contains("status"),
            "{path}: {names:?}"
        );
    }
}

/// The `src` and `href` values of a page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attr) {
            rest = &rest[at + attr.len()..];
            let end = rest.find('"').expect("closing quote");
            out.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    out
}

async fn the_docs_pages_work_offline(app: TestApp) {
    for page in ["/docs", "/redoc"] {
        let r = app.anonymous(Method::GET, page).send().await.unwrap();
        assert_eq!(r.status(), 200, "{page}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/html"), "{page}: {ct}");
        let html = r.text().await.unwrap();
        let refs = references(&html);
        let scripts: Vec<&String> = refs.iter().filter(|r| r.ends_with(".js")).collect();
        assert!(!scripts.is_empty(), "{page} loads no script");
        assert!(
            refs.iter().any(|r| r.starts_with("assets/vendor/")),
            "{page} does not use the vendored assets: {refs:?}"
        );
        for reference in &refs {
            assert!(
                !reference.starts_with("http:")
                    && !reference.starts_with("https:")
                    && !reference.starts_with("//"),
                "{page} reaches out to {reference}"
            );
            let url = format!("/{}", reference.trim_start_matches('/'));
            let r = app.anonymous(Method::GET, &url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{page} → {url}");
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = r.bytes().await.unwrap();
            assert!(body.len() > 10, "{url} is empty");
            if url.ends_with(".js") {
                assert!(ct.contains("javascript"), "{url}: {ct}");
                let text = String::from_utf8_lossy(&body);
                assert!(!text.trim_start().starts_with('<'), "{url} is not a script");
            }
            if url.ends_with(".css") {
                assert!(ct.starts_with("text/css"), "{url}: {ct}");
            }
        }
    }
    // Swagger UI's start-up script points at the document the binary serves.
    let init = app
        .anonymous(Method::GET, "/assets/swagger-init.js")
        .send()
        .await
        .unwrap();
    assert_eq!(init.status(), 200);
    assert!(init.text().await.unwrap().contains("openapi.json"));
    let redoc = app
        .anonymous(Method::GET, "/redoc")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(redoc.contains("openapi.json"));
}

/// The big scripts are stored gzipped: a browser gets the gzip as it is, a
/// client that does not take gzip gets the same file unpacked.
async fn the_large_assets_go_out_gzipped_when_accepted(app: TestApp) {
    use std::io::Read;
    for path in [
        "/assets/vendor/swagger-ui-bundle.js",
        "/assets/vendor/swagger-ui.css",
        "/assets/vendor/redoc.standalone.js",
    ] {
        let plain = app.anonymous(Method::GET, path).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let plain = plain.bytes().await.unwrap();

        let packed = app
            .anonymous(Method::GET, path)
            .header("accept-encoding", "br, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(packed.status(), 200, "{path}");
        assert_eq!(packed.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(packed.headers()["vary"], "accept-encoding", "{path}");
        let packed = packed.bytes().await.unwrap();
        assert!(
            packed.len() * 3 < plain.len(),
            "{path}: {} vs {}",
            packed.len(),
            plain.len()
        );
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert!(unpacked == plain, "{path}: the two forms differ");
    }
    // The stored name is not a URL.
    let r = app
        .anonymous(Method::GET, "/assets/vendor/swagger-ui-bundle.js.gz")
        .send()
        .await
        .unwrap();
    problem(r, 404).await;
}

async fn unknown_assets_are_404(app: TestApp) {
    for path in [
        "/assets/nope.js",
        "/assets/vendor/nope.css",
        "/assets/../Cargo.toml",
        "/assets/%2E%2E/Cargo.toml",
    ] {
        let r = app.anonymous(Method::GET, path).send().await.unwrap();
        problem(r, 404).await;
    }
}

crate::both_backends!(
    service_info,
    the_probes,
    the_openapi_document,
    the_bearer_scheme_is_declared,
    problem_responses_are_declared,
    each_operation_declares_only_what_it_answers,
    the_docs_pages_work_offline,
    the_large_assets_go_out_gzipped_when_accepted,
    unknown_assets_are_404,
);
