//! The configuration file as written (`cluster.toml`), before any defaults or checks.

use crate::engine::Precision;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) cluster: RawCluster,
    #[serde(default)]
    pub(super) node: RawNode,
    #[serde(default)]
    pub(super) temporal: RawTemporal,
    #[serde(default)]
    pub(super) models: Vec<RawModel>,
    #[serde(default)]
    pub(super) limits: RawLimits,
    #[serde(default)]
    pub(super) autoscaling: RawAutoscaling,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) http: RawHttp,
    #[serde(default)]
    pub(super) storage: RawStorage,
    #[serde(default)]
    pub(super) workflows: RawWorkflows,
}

/// `[storage]`: where workflow results (report PDFs, generated code) and their metadata go.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    pub(super) database_url: Option<String>,
    pub(super) reports_dir: Option<String>,
    pub(super) font: Option<String>,
}

/// `[workflows]`: report, multi-agent and codegen settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkflows {
    pub(super) webhook_url: Option<String>,
    pub(super) review_timeout_secs: Option<u64>,
    pub(super) on_agent_failure: Option<String>,
    pub(super) max_requirements_chars: Option<usize>,
}

/// `[http]`: what the HTTP server accepts.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default)]
    pub(super) allowed_origins: Vec<String>,
    #[serde(default)]
    pub(super) allowed_hosts: Vec<String>,
    pub(super) header_read_timeout_secs: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) max_ws_per_user: Option<usize>,
    pub(super) max_ws_per_ip: Option<usize>,
    pub(super) ws_idle_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAutoscaling {
    pub(super) enabled: Option<bool>,
    pub(super) tick_secs: Option<u64>,
    pub(super) policy: Option<crate::policy::Policy>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) keys_file: Option<String>,
    pub(super) allow_anonymous: Option<bool>,
    #[serde(default)]
    pub(super) tiers: HashMap<String, RawTierLimit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTierLimit {
    pub(super) max_concurrent: Option<u32>,
    pub(super) requests_per_minute: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub(super) name: Option<String>,
    pub(super) listen: Option<String>,
    #[serde(default)]
    pub(super) seeds: Vec<String>,
    pub(super) cookie_file: Option<String>,
    pub(super) tls: Option<RawMeshTls>,
}

/// `[cluster.tls]`: mutual TLS on the mesh (PEM files).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeshTls {
    pub(super) cert: String,
    pub(super) key: String,
    pub(super) ca: String,
    pub(super) server_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    pub(super) memory_budget_mb: Option<u64>,
    pub(super) id: Option<String>,
    pub(super) http: Option<String>,
    pub(super) home: Option<String>,
    pub(super) data_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemporal {
    pub(super) embedded: Option<bool>,
    pub(super) address: Option<String>,
    pub(super) ui_url: Option<String>,
    pub(super) ui_port: Option<u16>,
    pub(super) namespace: Option<String>,
    pub(super) tls: Option<RawTls>,
    /// A file of payload encryption keys (`ID:BASE64_32_BYTES`, one a line).
    pub(super) payload_keys_file: Option<String>,
    /// Origins whose pages may call `/codec/*` (the Temporal UI's).
    pub(super) codec_origins: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) ca_cert: Option<String>,
    pub(super) client_cert: String,
    pub(super) client_key: String,
    pub(super) domain: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) id: String,
    pub(super) source: String,
    pub(super) load: Option<bool>,
    pub(super) max_sequences: Option<usize>,
    pub(super) default: Option<bool>,
    pub(super) precision: Option<Precision>,
    pub(super) context: Option<usize>,
    pub(super) prefix_cache: Option<bool>,
    pub(super) min_replicas: Option<u32>,
    pub(super) max_replicas: Option<u32>,
    pub(super) fallback: Option<String>,
    /// Remote sources: the model name the backend knows, and the env var of its API key.
    pub(super) remote_model: Option<String>,
    pub(super) api_key_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_prompt_chars: Option<usize>,
    pub(super) max_tokens: Option<u32>,
    pub(super) heartbeat_timeout_secs: Option<u64>,
    pub(super) shutdown_grace_secs: Option<u64>,
    pub(super) max_messages: Option<usize>,
    pub(super) max_choices: Option<u32>,
    pub(super) temporal_outage_secs: Option<u64>,
}
