//! A real headless Chromium, driven over WebDriver by its chromedriver.
//!
//! Each test starts its own chromedriver on a free port, and through it a
//! Chromium that cannot reach anything but 127.0.0.1: every other host
//! name resolves to nothing (`--host-resolver-rules`), and the browser's
//! own background traffic (updates, sync, safe browsing) is off. Without
//! Chromium the tests say they are skipped, or fail under CI (`CI=true`)
//! or `COMMANDES_REQUIRE_BROWSER=1`: `.ci/run` installs Debian's
//! `chromium` and `chromium-driver`.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use poem::http;
use serde_json::{json, Value};

/// How long a wait for something on the page lasts before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A browser session and the chromedriver behind it (killed on drop).
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The screenshots go here, named by the caller.
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Killing chromedriver alone would leave its Chromium running (a
        // failed test does not reach `close`): it runs in a process group
        // of its own, with the browser it starts, and the group goes.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.driver.id()))
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
        || std::env::var("COMMANDES_REQUIRE_BROWSER").is_ok_and(|v| v == "1")
}

/// The first of `names` found on `PATH`, else the first of `paths` that
/// exists (Debian puts chromedriver in `/usr/bin`, some systems elsewhere).
fn find(names: &[&str], paths: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .chain(paths.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; `None` (the test is
    /// skipped) when they are not installed and not required.
    pub async fn start(label: &str) -> Option<Browser> {
        let chromium = find(&["chromium", "chromium-browser"], &[]);
        let driver = find(&["chromedriver"], &["/usr/lib/chromium/chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            if required() {
                panic!("Chromium and chromedriver are required (CI / COMMANDES_REQUIRE_BROWSER=1): apt-get install chromium chromium-driver");
            }
            eprintln!(
                "skipped: no chromium/chromedriver (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let mut browser_args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            // Nothing but the service under test can be reached.
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-features=Translate,OptimizationHints,MediaRouter",
        ];
        browser_args.push("--lang=en-US");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": browser_args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let shots = target.join("dashboard-screenshots").join(label);
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Some(Browser {
            client,
            driver: child,
            shots,
        })
    }

    /// Ends the session, which makes chromedriver stop its Chromium.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigation");
    }

    /// Waits for the element `css` to be there.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Waits until the text of `css` contains `text`; returns that text.
    pub async fn wait_text(&self, css: &str, text: &str) -> String {
        self.wait_text_within(css, text, PATIENCE).await
    }

    /// As [`Self::wait_text`], failing after `limit`.
    pub async fn wait_text_within(&self, css: &str, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await {
                if let Ok(t) = el.text().await {
                    if t.contains(text) {
                        return t;
                    }
                    last = t;
                }
            }
            if Instant::now() > deadline {
                panic!("{css} did not show {text:?} within {limit:?}; it shows {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` (a function body) returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                panic!("{what}: not true within {PATIENCE:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` (a function body) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn click(&self, css: &str) {
        self.wait(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the value of the input `css` with `text`, as typed.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.wait(css).await;
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    pub async fn select(&self, css: &str, value: &str) {
        self.wait(css)
            .await
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("select {value} in {css}: {e}"));
    }

    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |v| v.len())
    }

    /// Writes a PNG of the viewport as `<label>/<name>.png` under
    /// `target/dashboard-screenshots/`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write screenshot");
    }

    /// The browser's console since the last call: every script error, CSP
    /// violation and failed load is a `SEVERE` entry.
    pub async fn console(&self) -> Vec<Value> {
        let logs = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("the browser log");
        logs.as_array().cloned().unwrap_or_default()
    }
}

/// chromedriver's `POST /session/{id}/se/log` (type `browser`): the
/// console, which WebDriver itself does not expose.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}
