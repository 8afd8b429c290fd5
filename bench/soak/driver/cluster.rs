//! The soak's cluster: a Temporal dev server on its SQLite file and `orrery node` processes on
//! their own loopback "hosts" (127.0.0.2, .3, ...), in one mesh. Nodes and Temporal can be killed
//! -9 and started again on the same addresses (and Temporal on the same database), each start
//! waited on with a deadline.

use anyhow::{Context, bail};
use orrery::temporal::EmbeddedTemporal;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

const COOKIE: &str = "soak-cookie-0123456789abcdef012345";
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Where Orrery keeps its tools (`ORRERY_HOME`, else `<repo>/.orrery`).
pub fn home() -> PathBuf {
    std::env::var_os("ORRERY_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.orrery")))
}

fn tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port(ip: &str) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}

/// One node: its fixed addresses, and the process of its current incarnation, if any.
pub struct NodeSlot {
    pub id: String,
    pub http: String,
    mesh: String,
    config: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
    /// The running process's pid; 0 while the node is down.
    pid: AtomicU32,
    /// 1 for the first process, +1 for each restart.
    incarnation: AtomicU32,
    /// When the current incarnation became ready.
    ready_at: StdMutex<Option<Instant>>,
}

impl NodeSlot {
    /// (pid, incarnation, ready at) of the running process, if the node is up.
    pub fn running(&self) -> Option<(u32, u32, Instant)> {
        let pid = self.pid.load(Ordering::SeqCst);
        let ready = *self.ready_at.lock().unwrap_or_else(|p| p.into_inner());
        (pid != 0).then_some(())?;
        Some((pid, self.incarnation.load(Ordering::SeqCst), ready?))
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

pub struct Cluster {
    dir: tempfile::TempDir,
    cli: PathBuf,
    port: u16,
    temporal: Mutex<Option<EmbeddedTemporal>>,
    pub nodes: Vec<NodeSlot>,
}

impl Cluster {
    /// Starts Temporal and `n` nodes with `config`, and waits until every node is ready and sees
    /// the others up.
    pub async fn start(n: usize, config: &str) -> anyhow::Result<Cluster> {
        let home = home();
        let cli = orrery::setup::ensure_temporal_cli(&home)?;
        let dir = tempfile::tempdir()?;
        let port = free_port("127.0.0.1")?;
        let mut nodes = Vec::new();
        let mut seeds = Vec::new();
        for i in 0..n {
            let ip = format!("127.0.0.{}", i + 2);
            seeds.push(format!("{ip}:{}", free_port(&ip)?));
            let id = format!("n{}", i + 2);
            let config_path = dir.path().join(format!("{id}.toml"));
            std::fs::write(&config_path, config)?;
            nodes.push(NodeSlot {
                http: format!("http://{ip}:{}", free_port(&ip)?),
                mesh: seeds[i].clone(),
                log: dir.path().join(format!("{id}.log")),
                config: config_path,
                id,
                child: Mutex::new(None),
                pid: AtomicU32::new(0),
                incarnation: AtomicU32::new(0),
                ready_at: StdMutex::new(None),
            });
        }
        let cluster = Cluster {
            dir,
            cli,
            port,
            temporal: Mutex::new(None),
            nodes,
        };
        cluster.start_temporal().await?;
        let seeds = seeds.join(",");
        for i in 0..n {
            cluster.start_node(i, &seeds).await?;
        }
        cluster.wait_mesh_up().await?;
        Ok(cluster)
    }

    fn seeds(&self) -> String {
        let seeds: Vec<&str> = self.nodes.iter().map(|n| n.mesh.as_str()).collect();
        seeds.join(",")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("temporal.db")
    }

    /// The last lines of the Temporal server's log (beside its database).
    pub fn temporal_log_tail(&self, lines: usize) -> String {
        tail(&self.db().with_extension("log"), lines)
    }

    pub fn temporal_address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn start_temporal(&self) -> anyhow::Result<()> {
        // The dev server's start can be slow on a loaded machine: try twice.
        let mut last = None;
        for _ in 0..2 {
            match EmbeddedTemporal::start(&self.cli, self.port, None, &self.db()).await {
                Ok(t) => {
                    *self.temporal.lock().await = Some(t);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        bail!("temporal dev server did not start on its database: {last:?}")
    }

    /// Kills Temporal (-9), keeps it down for `down`, then starts it again on the same port and
    /// database.
    pub async fn crash_and_restart_temporal(&self, down: Duration) -> anyhow::Result<()> {
        if let Some(mut t) = self.temporal.lock().await.take() {
            t.crash().await;
        }
        // The pacing of the chaos: how long the outage lasts.
        tokio::time::sleep(down).await;
        self.start_temporal().await
    }

    /// Starts node `i` and waits until it answers `/ready`.
    async fn start_node(&self, i: usize, seeds: &str) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orrery"));
        cmd.arg("node")
            .arg("--config")
            .arg(&node.config)
            .args(["--node-id", &node.id, "--http"])
            .arg(node.http.trim_start_matches("http://"))
            .args(["--temporal", &self.temporal_address()])
            .arg("--data-dir")
            .arg(self.dir.path().join(&node.id))
            .args(["--cluster", &node.mesh, "--seeds", seeds])
            .env("ORRERY_HOME", home())
            .env("ORRERY_LOG", "warn")
            .env("ORRERY_CLUSTER_COOKIE", COOKIE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; a soak that dies leaves no node behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting node {}", node.id))?;
        let pid = child.id().unwrap_or(0);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(r) = http.get(format!("{}/ready", node.http)).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "node {} exited at start ({status}):\n{}",
                    node.id,
                    node.log_tail(30)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "node {} not ready after {READY_WITHIN:?}:\n{}",
                    node.id,
                    node.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        *node.child.lock().await = Some(child);
        node.incarnation.fetch_add(1, Ordering::SeqCst);
        *node.ready_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        node.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// Kills node `i` (-9) and starts it again on the same addresses and data directory.
    pub async fn kill_and_restart_node(&self, i: usize) -> anyhow::Result<()> {
        let node = &self.nodes[i];
        node.pid.store(0, Ordering::SeqCst);
        if let Some(mut child) = node.child.lock().await.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.start_node(i, &self.seeds()).await
    }

    /// Waits until the first node's cluster view shows every node up.
    pub async fn wait_mesh_up(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = reqwest::Client::new();
        let mut last = String::new();
        loop {
            let view = http
                .get(format!("{}/api/cluster", self.nodes[0].http))
                .send()
                .await;
            if let Ok(r) = view
                && let Ok(v) = r.json::<serde_json::Value>().await
            {
                let rows = v["nodes"].as_array().cloned().unwrap_or_default();
                let up = |id: &str| rows.iter().any(|r| r["node"] == id && r["state"] == "up");
                if self.nodes.iter().all(|n| up(&n.id)) {
                    return Ok(());
                }
                last = v.to_string();
            }
            if Instant::now() > deadline {
                bail!("the mesh never showed every node up; last view: {last}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops every node and Temporal.
    pub async fn stop(&self) {
        for node in &self.nodes {
            node.pid.store(0, Ordering::SeqCst);
            if let Some(mut child) = node.child.lock().await.take() {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
        }
        if let Some(t) = self.temporal.lock().await.take() {
            t.stop().await;
        }
    }
}
