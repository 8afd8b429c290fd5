//! The page as a person uses it: headless Chromium (driven over the DevTools protocol) opens the
//! node's page, asks a question, and watches the answer stream in.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox, wait_for, workspace_root};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Page {
    ws: crate::harness::Ws,
    next_id: u64,
}

impl Page {
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("cdp send");
        loop {
            let m = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("cdp answer within 30 s")
                .expect("cdp socket open")
                .expect("cdp frame");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).expect("cdp json");
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method} failed: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr} threw: {r}");
        r["result"]["value"].clone()
    }

    /// Polls `expr` in the page until it gives something other than null, false or "", failing
    /// with `what` after `deadline`.
    pub async fn wait(&mut self, what: &str, deadline: Duration, expr: &str) -> Value {
        let end = std::time::Instant::now() + deadline;
        loop {
            let v = self.eval(expr).await;
            if !(v.is_null() || v == false || v == "") {
                return v;
            }
            assert!(
                std::time::Instant::now() < end,
                "timed out after {deadline:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the whole page (beyond the window too) as `target/NAME` for people to look
    /// at.
    pub async fn screenshot(&mut self, name: &str) {
        let m = self.call("Page.getLayoutMetrics", json!({})).await;
        let size = &m["cssContentSize"];
        let clip = json!({"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                          "scale": 1});
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "clip": clip, "captureBeyondViewport": true}),
            )
            .await;
        if let Some(data) = shot["data"].as_str() {
            use base64::Engine;
            if let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) {
                let dir = workspace_root().join("target");
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::write(dir.join(name), png);
            }
        }
    }
}

/// Starts headless Chromium on `url` and attaches to its page over the DevTools protocol.
pub async fn open(url: &str) -> (Browser, Page) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("Chromium is needed for the browser test: apt-get install chromium (scripts/test installs it)");
    let profile = tempfile::tempdir().unwrap();
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let browser = Browser {
        child,
        _profile: profile,
    };
    let port_file = browser._profile.path().join("DevToolsActivePort");
    let port: u16 = wait_for("chromium's DevTools port", Duration::from_secs(60), || {
        let f = port_file.clone();
        async move {
            std::fs::read_to_string(f)
                .ok()?
                .lines()
                .next()?
                .trim()
                .parse()
                .ok()
        }
    })
    .await;
    let list_url = format!("http://127.0.0.1:{port}/json/list");
    let ws_url: String = wait_for("the page target", Duration::from_secs(30), || {
        let u = list_url.clone();
        async move {
            let targets: Vec<Value> = reqwest::get(&u).await.ok()?.json().await.ok()?;
            targets
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(String::from))
        }
    })
    .await;
    let (ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .expect("cdp connect");
    (browser, Page { ws, next_id: 0 })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_asks_and_streams_an_answer() {
    let sb = Sandbox::start().await;
    // The test server runs headless; the link only has to point at where a UI would be.
    let config = format!("[temporal]\nui_url = \"http://127.0.0.1:8233\"\n{DEFAULT_MODEL_CONFIG}");
    let node = sb.node("web1", &config).await;
    let (_browser, mut page) = open(&format!("{}/", node.http)).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while page
        .eval("document.querySelector('#conn')?.textContent ?? ''")
        .await
        .as_str()
        != Some("connected")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the page never connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        page.eval("document.querySelector('#model').value").await,
        "smollm2-135m"
    );

    page.eval(
        "(() => {
            const set = (sel, v) => { const e = document.querySelector(sel); e.value = v;
                e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); };
            set('#temperature', '0'); set('#max-tokens', '48');
            set('#prompt', 'What is the capital of France?');
            document.querySelector('#ask').click();
            return true; })()",
    )
    .await;

    // Watch the card: a partial answer while generating, then the whole answer when done.
    let mut saw_partial = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let (status, answer) = loop {
        let v = page
            .eval("(() => { const c = document.querySelector('.ask-card'); if (!c) return null;
                     return [c.querySelector('.status').textContent, c.querySelector('.answer').textContent]; })()")
            .await;
        if let Some([status, answer]) = v.as_array().map(|a| {
            [
                a[0].as_str().unwrap_or("").to_string(),
                a[1].as_str().unwrap_or("").to_string(),
            ]
        }) {
            if status.starts_with("generating") && !answer.is_empty() {
                saw_partial = true;
            }
            if status.starts_with("done")
                || status.starts_with("failed")
                || status.starts_with("cancelled")
            {
                break (status, answer);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the answer never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.starts_with("done"), "status: {status}");
    assert!(answer.contains("Paris"), "answer: {answer}");
    assert!(
        saw_partial,
        "the answer streamed in (a partial answer was on the page while generating)"
    );
    let link = page
        .eval("document.querySelector('.ask-card .wf-link').href")
        .await;
    assert!(
        link.as_str().unwrap_or("").contains("/workflows/ask-"),
        "workflow link: {link}"
    );

    // Keep a screenshot for people to look at.
    page.screenshot("it-browser.png").await;
}
