//! `orrery up` (embedded Temporal and one node) and `orrery node` (a node of a cluster).

use orrery::config::{Config, Overrides};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `up` and `node` both take.
#[derive(clap::Args)]
pub struct Common {
    #[arg(long, default_value = "cluster.toml")]
    pub config: PathBuf,
    /// HTTP address of the node (web UI, APIs).
    #[arg(long)]
    pub http: Option<String>,
    /// Where the Temporal database and other state live.
    #[arg(long)]
    pub data_dir: Option<String>,
}

#[derive(clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub common: Common,
    /// Port of the embedded Temporal server (its UI gets this + 1000).
    #[arg(long)]
    pub temporal_port: Option<u16>,
}

#[derive(clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub node_id: Option<String>,
    /// Temporal frontend HOST:PORT.
    #[arg(long)]
    pub temporal: Option<String>,
    /// This node's mesh address, IP:PORT (joins the cluster; needs ORRERY_CLUSTER_COOKIE).
    #[arg(long)]
    pub cluster: Option<String>,
    /// Mesh addresses of other nodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<String>>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,temporalio_sdk_core=warn,temporalio_sdk=warn,ractor=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: &PathBuf, overrides: &Overrides) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(Config::resolve(text.as_deref(), &env, overrides)?)
}

pub async fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let overrides = Overrides {
        http: a.common.http,
        data_dir: a.common.data_dir,
        embedded: Some(true),
        temporal_address: a.temporal_port.map(|p| format!("127.0.0.1:{p}")),
        ..Default::default()
    };
    let mut config = load_config(&a.common.config, &overrides)?;
    // A node of its own keeps its own payload key (no key configured: one is made and kept).
    if config.temporal.payload_keys.is_none() {
        let path = config.data_dir.join("payload.keys");
        let keys = orrery::codec::keys::load_or_create(&path)
            .map_err(|e| anyhow::anyhow!("payload encryption key: {e}"))?;
        tracing::info!(file = %path.display(), key.id = %keys.active().id(),
            "payloads encrypted with the data directory's key");
        config.temporal.payload_keys = Some(std::sync::Arc::new(keys));
    }
    serve(config).await
}

pub async fn node(a: NodeArgs) -> anyhow::Result<ExitCode> {
    init_tracing();
    let overrides = Overrides {
        http: a.common.http,
        data_dir: a.common.data_dir,
        node_id: a.node_id,
        temporal_address: a.temporal,
        embedded: Some(false),
        cluster_listen: a.cluster,
        seeds: a.seeds,
    };
    serve(load_config(&a.common.config, &overrides)?).await
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    orrery::app::run(config)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(ExitCode::SUCCESS)
}
