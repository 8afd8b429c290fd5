//! Activities of the scaling loop: `collect` (any node) gathers the cluster's view; `load_model`
//! and `unload_model` run on the target node's own queue and go to its Autoscaler.

use super::non_retryable;
use crate::actors::autoscaler::AutoscalerMsg;
use crate::config::Config;
use crate::ids::{ModelId, actor_names};
use crate::policy::{ClusterView, ModelSpec, NodeView, ReplicaLoad};
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
    let snaps = crate::cluster::snapshots(Duration::from_millis(1500)).await;
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
                memory_bytes: seen
                    .unwrap_or_else(|| crate::actors::autoscaler::estimate_bytes(config, &m.id)),
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
}

pub struct NodeScalingActivities;

async fn autoscale(
    model: String,
    msg: fn(ModelId, ractor::RpcReplyPort<Result<(), String>>) -> AutoscalerMsg,
) -> Result<(), ActivityError> {
    let a = crate::actors::lookup::<AutoscalerMsg>(actor_names::AUTOSCALER)
        .ok_or_else(|| ActivityError::from(anyhow::anyhow!("the autoscaler is not running")))?;
    match ractor::call_t!(a, msg, 240_000, ModelId::new(model)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(non_retryable("ScalingRefused", e)),
        Err(e) => Err(ActivityError::from(anyhow::anyhow!("autoscaler: {e}"))),
    }
}

#[activities]
impl NodeScalingActivities {
    #[activity]
    pub async fn load_model(_ctx: ActivityContext, model: String) -> Result<(), ActivityError> {
        autoscale(model, AutoscalerMsg::Load).await
    }

    #[activity]
    pub async fn unload_model(_ctx: ActivityContext, model: String) -> Result<(), ActivityError> {
        autoscale(model, AutoscalerMsg::Unload).await
    }
}
