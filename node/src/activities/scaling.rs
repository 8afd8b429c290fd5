//! Activities of the scaling loop: `collect` (any node) gathers the cluster's view; `load_model`
//! and `unload_model` run on the target node's own queue and go to its Models actor.

use super::non_retryable;
use crate::actors::NodeHandle;
use crate::actors::mesh;
use crate::actors::models::{LoadError, estimate_bytes};
use crate::actors::resource_manager::Fallbacks;
use crate::config::Config;
use crate::policy::{ClusterView, ModelSpec, NodeView, ReplicaLoad};
use crate::protocol::ModelId;
use std::sync::Arc;
use std::time::Duration;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub struct ScalingActivities {
    config: Arc<Config>,
}

impl ScalingActivities {
    pub fn new(config: Arc<Config>) -> Self {
        Self { config }
    }
}

/// The snapshots of every node as the policy sees them, with the configured models.
pub async fn cluster_view(config: &Config) -> ClusterView {
    let snaps = mesh::snapshots(Duration::from_millis(1500)).await;
    let nodes: Vec<NodeView> = snaps
        .iter()
        .map(|s| NodeView {
            node: s.node.to_string(),
            memory_budget_bytes: s.memory_budget_bytes,
            memory_used_bytes: s.memory_used_bytes,
            draining: s.draining,
            replicas: s
                .models
                .iter()
                .map(|m| ReplicaLoad {
                    model: m.model.to_string(),
                    active: m.active,
                    queued: m.queued,
                    max_sequences: m.max_sequences,
                    idle_since_ms: m.idle_since_ms,
                    est_wait_ms: m.est_wait_ms,
                })
                .collect(),
        })
        .collect();
    let models = config
        .models
        .iter()
        .map(|m| {
            // What a loaded replica reports is the best estimate; otherwise the file's size.
            let seen = snaps
                .iter()
                .flat_map(|s| s.models.iter())
                .filter(|l| l.model == m.id)
                .map(|l| l.memory_bytes)
                .max();
            ModelSpec {
                model: m.id.to_string(),
                memory_bytes: seen.unwrap_or_else(|| estimate_bytes(config, &m.id)),
                min_replicas: m.min_replicas,
                max_replicas: m.max_replicas,
                fallback: m.fallback.as_ref().map(|f| f.to_string()),
            }
        })
        .collect();
    ClusterView {
        now_ms: 0,
        nodes,
        models,
        pending: Default::default(),
    }
}

#[activities]
impl ScalingActivities {
    #[activity]
    pub async fn collect(
        self: Arc<Self>,
        _ctx: ActivityContext,
        _input: (),
    ) -> Result<ClusterView, ActivityError> {
        Ok(cluster_view(&self.config).await)
    }

    /// Tells every node the loop's new routes (a local activity of the loop: no trip through
    /// the server).
    #[activity]
    pub async fn publish_routes(
        self: Arc<Self>,
        _ctx: ActivityContext,
        routes: Fallbacks,
    ) -> Result<(), ActivityError> {
        mesh::push_routes(&routes);
        Ok(())
    }
}

pub struct NodeScalingActivities {
    node: NodeHandle,
}

impl NodeScalingActivities {
    pub fn new(node: NodeHandle) -> Self {
        Self { node }
    }
}

/// A refusal (not configured, no memory, failed to load) is final; the manager being away is not.
fn scaling_error(e: LoadError) -> ActivityError {
    match e {
        LoadError::Unavailable | LoadError::TimedOut => ActivityError::from(anyhow::anyhow!("{e}")),
        refused => non_retryable("ScalingRefused", refused.to_string()),
    }
}

/// How long a load directive may take (a large download or file read).
const LOAD_TIMEOUT: Duration = Duration::from_secs(240);

#[activities]
impl NodeScalingActivities {
    #[activity]
    pub async fn load_model(
        self: Arc<Self>,
        _ctx: ActivityContext,
        model: String,
    ) -> Result<(), ActivityError> {
        let model = ModelId::new(model);
        self.node
            .load_model(&model, LOAD_TIMEOUT)
            .await
            .map_err(scaling_error)
    }

    #[activity]
    pub async fn unload_model(
        self: Arc<Self>,
        _ctx: ActivityContext,
        model: String,
    ) -> Result<(), ActivityError> {
        let model = ModelId::new(model);
        self.node.unload_model(&model).await.map_err(scaling_error)
    }
}
