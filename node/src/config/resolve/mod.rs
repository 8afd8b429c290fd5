//! Resolution: defaults < `cluster.toml` < `ORRERY_*` environment < CLI flags. A pure function of
//! the file text, an environment map, the flags and the files the configuration names (read
//! beforehand into [`FileReads`]); it collects every problem and reports them together.

mod cluster;
mod flows;
pub use flows::DEFAULT_FONT;
mod models;
mod settings;
mod temporal;

use super::raw::RawConfig;
use super::{Config, ConfigError, Overrides};
use crate::protocol::NodeId;
use std::collections::HashMap;

/// The files the configuration names, read before resolution so that resolution stays pure.
#[derive(Clone, Debug, Default)]
pub struct FileReads {
    /// `cluster.cookie_file`: its path and its contents, or why it could not be read.
    pub cookie: Option<(String, Result<String, String>)>,
    /// The payload keys file (`[temporal] payload_keys_file`, `ORRERY_PAYLOAD_KEYS_FILE`) when
    /// `ORRERY_PAYLOAD_KEYS` does not set the keys itself.
    pub payload_keys: Option<(String, Result<String, String>)>,
}

impl FileReads {
    /// Reads what `file_text` (and the environment) name. Unreadable files are recorded, not
    /// errors here: resolution reports them with everything else.
    pub fn gather(file_text: Option<&str>, env: &HashMap<String, String>) -> Self {
        let raw = file_text
            .and_then(|t| toml::from_str::<RawConfig>(t).ok())
            .unwrap_or_default();
        let cookie_from_env = Env(env).get("ORRERY_CLUSTER_COOKIE").is_some();
        let cookie = match (&raw.cluster.cookie_file, cookie_from_env) {
            (Some(f), false) => Some((
                f.clone(),
                std::fs::read_to_string(f).map_err(|e| e.to_string()),
            )),
            _ => None,
        };
        let env = Env(env);
        let payload_keys = match (
            env.get("ORRERY_PAYLOAD_KEYS"),
            env.get("ORRERY_PAYLOAD_KEYS_FILE")
                .or(raw.temporal.payload_keys_file.clone()),
        ) {
            (None, Some(f)) => {
                let text = std::fs::read_to_string(&f).map_err(|e| e.to_string());
                Some((f, text))
            }
            _ => None,
        };
        FileReads {
            cookie,
            payload_keys,
        }
    }
}

/// The environment as resolution reads it: unset and empty are the same.
struct Env<'a>(&'a HashMap<String, String>);

impl Env<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).filter(|v| !v.is_empty()).cloned()
    }

    /// The flag, else the environment variable, else the file's value.
    fn pick(&self, cli: &Option<String>, key: &str, file: &Option<String>) -> Option<String> {
        cli.clone()
            .or_else(|| self.get(key))
            .or_else(|| file.clone())
    }
}

/// Resolves one node's configuration; every problem found is in the error.
pub fn resolve(
    file_text: Option<&str>,
    env: &HashMap<String, String>,
    overrides: &Overrides,
    reads: &FileReads,
) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let raw: RawConfig = match file_text {
        Some(text) => toml::from_str(text).unwrap_or_else(|e| {
            errors.push(format!("cluster.toml: {}", e.message()));
            RawConfig::default()
        }),
        None => RawConfig::default(),
    };
    let env = Env(env);
    let cluster_name = env
        .get("ORRERY_CLUSTER_NAME")
        .or(raw.cluster.name.clone())
        .unwrap_or_else(|| "orrery".into());
    let cluster = cluster::mesh(&raw.cluster, &env, overrides, reads, &mut errors);
    let node = cluster::node(&raw.node, &env, overrides, &mut errors);
    let temporal = temporal::resolve(&raw.temporal, &env, overrides, reads, &mut errors);
    let (models, default_model) = models::resolve(raw.models, &mut errors);
    let limits = settings::limits(&raw.limits, &mut errors);
    let auth = settings::auth(raw.auth, &env, &mut errors);
    let autoscaling = settings::autoscaling(raw.autoscaling, &env, &mut errors);
    let http_server = settings::http(raw.http, &env, &mut errors);
    let storage = flows::storage(raw.storage, &env, &node.data_dir);
    let workflows = flows::workflows(raw.workflows, &env, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigError(errors));
    }
    Ok(Config {
        admin_token: env.get("ORRERY_ADMIN_TOKEN").map(super::Secret::new),
        memory_budget_bytes: node.memory_budget_bytes,
        autoscaling,
        cluster_name,
        cluster,
        node_id: NodeId::new(node.id),
        http: node.http,
        home: node.home,
        data_dir: node.data_dir,
        temporal,
        models,
        default_model,
        limits,
        auth,
        http_server,
        storage,
        workflows,
    })
}

/// 1-64 letters, digits, '-', '_' or '.'.
fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
