//! A headless chromium driven through chromedriver (WebDriver over plain
//! HTTP on loopback), for the dashboard's browser tests. Both run in their
//! own process group, killed as a group when the [`Browser`] is dropped, so
//! a failing test leaves no chromium behind.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long chromedriver may take to listen and chromium to start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a page condition may take (a loaded machine, real controllers).
pub(crate) const PAGE_DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

pub(crate) struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// A free loopback port (chromedriver takes a port, not a listener).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port")
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless chromium of `width` x `height`.
    pub(crate) async fn start(width: u32, height: u32) -> Self {
        Self::start_with(width, height, &[]).await
    }

    /// [`Browser::start`] with a dark system theme: pages see
    /// `prefers-color-scheme: dark`.
    pub(crate) async fn start_dark(width: u32, height: u32) -> Self {
        Self::start_with(
            width,
            height,
            &[
                "--force-dark-mode",
                "--blink-settings=preferredColorScheme=0",
            ],
        )
        .await
    }

    async fn start_with(width: u32, height: u32, extra_args: &[&str]) -> Self {
        let profile = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = profile.path().join("chromedriver.log");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver (apt-get install chromium-driver)");
        let driver_url = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + START_DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "chromedriver did not listen on {port}"
            );
            tokio::time::sleep(POLL).await;
        }
        let data_dir = profile.path().join("profile");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--no-first-run".into(),
            "--disable-extensions".into(),
            "--hide-scrollbars".into(),
            format!("--user-data-dir={}", data_dir.display()),
            format!("--window-size={width},{height}"),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium(),
                "args": args,
            }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        let connect = builder.capabilities(caps).connect(&driver_url);
        let client = match tokio::time::timeout(START_DEADLINE, connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!(
                "chromium session: {e}; chromedriver log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
            Err(_) => panic!("chromium did not start within {START_DEADLINE:?}"),
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Ends the session (chromium quits) before the driver is killed.
    pub(crate) async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(20), client.close()).await;
        kill_group(&mut self.driver);
    }

    /// Waits until `check` returns Some, polling; panics with `what` at the
    /// deadline. Errors (an element re-rendered under us) count as "not yet".
    pub(crate) async fn wait<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let end = Instant::now() + PAGE_DEADLINE;
        loop {
            if let Some(v) = check(self.client.clone()).await {
                return v;
            }
            if Instant::now() >= end {
                let body = self.text("body").await.unwrap_or_default();
                panic!("timed out after {PAGE_DEADLINE:?} waiting for {what}; page text:\n{body}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the first element matching `css`, if there is one.
    pub(crate) async fn text(&self, css: &str) -> Option<String> {
        text(&self.client, css).await
    }

    /// Waits for an element matching `css` and clicks it (retrying when
    /// the page re-renders it between finding and clicking).
    pub(crate) async fn click(&self, css: &str) {
        self.wait(&format!("a clickable {css}"), |c| async move {
            let e = c.find(Locator::Css(css)).await.ok()?;
            e.click().await.ok()
        })
        .await;
    }

    /// Waits for an element matching `css`.
    pub(crate) async fn element(&self, css: &str) -> Element {
        self.wait(&format!("an element {css}"), |c| async move {
            c.find(Locator::Css(css)).await.ok()
        })
        .await
    }

    /// How many elements match `css` now.
    pub(crate) async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |v| v.len())
    }

    /// Runs a script in the page and returns its value.
    pub(crate) async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("execute script")
    }

    /// The page's computed background colour as `[r, g, b]`.
    pub(crate) async fn background(&self) -> [u8; 3] {
        let colour = self
            .eval("return getComputedStyle(document.body).backgroundColor;")
            .await;
        let text = colour.as_str().unwrap_or_default().to_string();
        let channels: Vec<u8> = text
            .trim_start_matches("rgba(")
            .trim_start_matches("rgb(")
            .trim_end_matches(')')
            .split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect();
        match channels.as_slice() {
            [r, g, b, ..] => [*r, *g, *b],
            _ => panic!("not an rgb() colour: {colour}"),
        }
    }

    /// Saves a PNG of the page as `name`.png under target/ui-screenshots/
    /// and, with SLOTH_UPDATE_SCREENSHOTS=1, under docs/ui/ too.
    pub(crate) async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let mut dirs = vec![screenshot_dir()];
        if std::env::var("SLOTH_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            dirs.push(workspace().join("docs").join("ui"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).expect("screenshot dir");
            std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// The text of the first element matching `css` in `client`'s page.
pub(crate) async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// SIGKILL to the process group the driver leads (chromium included).
fn kill_group(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
        let _ = child.wait();
    }
}

/// Debian's chromium (or CHROMIUM_BIN).
fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `$CARGO_TARGET_DIR/ui-screenshots`, else next to this test binary's
/// `target/<profile>/deps`.
pub(crate) fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            workspace().join(dir)
        };
        return dir.join("ui-screenshots");
    }
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| workspace().join("target"), Path::to_path_buf)
        .join("ui-screenshots")
}
