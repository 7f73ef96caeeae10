//! A small W3C WebDriver client over HTTP (reqwest), enough to drive headless Chromium
//! through `chromedriver`: open a session, load a page, find elements by CSS selector, read
//! their text and attributes, take a screenshot. The browser and driver are Debian's
//! `chromium` and `chromium-driver`; a missing one is an error naming the install command.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

/// What installs the browser and its driver (scripts/setup.sh test runs it).
pub const INSTALL: &str = "apt-get install -y --no-install-recommends chromium chromium-driver";

/// The key W3C WebDriver uses for an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `name` found on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// The Chromium binary: `CHROMIUM_BIN`, or `chromium` on `PATH`.
pub fn chromium_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM_BIN") {
        return Ok(PathBuf::from(p));
    }
    on_path("chromium").with_context(|| {
        format!("chromium is not installed (Debian package chromium): run `{INSTALL}`")
    })
}

/// The driver: `CHROMEDRIVER_BIN`, or `chromedriver` on `PATH`.
pub fn chromedriver_bin() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMEDRIVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    on_path("chromedriver").with_context(|| {
        format!("chromedriver is not installed (Debian package chromium-driver): run `{INSTALL}`")
    })
}

/// A running `chromedriver`; killed when dropped.
pub struct ChromeDriver {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl ChromeDriver {
    /// Starts `chromedriver` on a free port and waits until it reports ready.
    pub async fn start() -> anyhow::Result<ChromeDriver> {
        let bin = chromedriver_bin()?;
        let port = crate::hub::free_port()?;
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let driver = ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok();
            if let Some(res) = ready {
                let v: Value = res.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return Ok(driver);
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not report ready within 30 s", bin.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session of `width`×`height` pixels.
    pub async fn session(&self, width: u32, height: u32) -> anyhow::Result<Session> {
        let chromium = chromium_bin()?;
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        format!("--window-size={width},{height}"),
                    ],
                },
            }},
        });
        let v = call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
        )
        .await?;
        let id = v["sessionId"]
            .as_str()
            .context("new session: no sessionId in the answer")?
            .to_string();
        Ok(Session {
            http: self.http.clone(),
            url: format!("{}/session/{id}", self.base),
        })
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a WebDriver command; returns its `value`, or the driver's error.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = http.request(method.clone(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .with_context(|| format!("webdriver {method} {url}"))?;
    let status = res.status();
    let v: Value = res
        .json()
        .await
        .with_context(|| format!("webdriver {method} {url}: answer is not JSON"))?;
    if !status.is_success() {
        bail!(
            "webdriver {method} {url}: {status}: {} {}",
            v["value"]["error"],
            v["value"]["message"]
        );
    }
    Ok(v["value"].clone())
}

/// One browser session; call [`Session::close`] to end it (the driver's exit ends it too).
pub struct Session {
    http: reqwest::Client,
    url: String,
}

/// A reference to an element of the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    async fn cmd(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        call(&self.http, method, &format!("{}{path}", self.url), body).await
    }

    /// Loads `url` and waits for the page's load event.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(|_| ())
    }

    /// Every element matching the CSS selector, in document order.
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        v.as_array()
            .context("find elements: the answer is not a list")?
            .iter()
            .map(|e| {
                e[ELEMENT_KEY]
                    .as_str()
                    .map(|id| Element(id.to_string()))
                    .with_context(|| format!("find elements: no element reference in {e}"))
            })
            .collect()
    }

    /// The element's rendered text.
    pub async fn text(&self, e: &Element) -> anyhow::Result<String> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/text", e.0),
                None,
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    /// The element's attribute `name`, `None` when it has none.
    pub async fn attribute(&self, e: &Element, name: &str) -> anyhow::Result<Option<String>> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/element/{}/attribute/{name}", e.0),
                None,
            )
            .await?;
        Ok(v.as_str().map(str::to_string))
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let b64 = v
            .as_str()
            .context("screenshot: the answer is not a string")?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("screenshot: the answer is not base64")
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) -> anyhow::Result<()> {
        self.cmd(reqwest::Method::DELETE, "", None)
            .await
            .map(|_| ())
    }
}
