//! The plan activity: where should this ask run?

use super::non_retryable;
use crate::actors::autoscaler::AutoscalerMsg;
use crate::ids::{ModelId, NodeId, RequestId, actor_names};
use crate::placement;
use crate::workflows::ask::{NO_CAPACITY, UNKNOWN_MODEL};
use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanInput {
    pub request_id: RequestId,
    pub model: ModelId,
    pub origin: NodeId,
    /// Nodes that already failed this ask; used only when nothing else can serve it.
    pub excluded: Vec<NodeId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Placement {
    pub node: NodeId,
}

pub struct ClusterActivities {
    node: NodeId,
}

impl ClusterActivities {
    pub fn new(node: NodeId) -> Self {
        Self { node }
    }
}

#[activities]
impl ClusterActivities {
    #[activity]
    pub async fn plan(
        self: std::sync::Arc<Self>,
        _ctx: ActivityContext,
        input: PlanInput,
    ) -> Result<Placement, ActivityError> {
        let snapshots = crate::cluster::snapshots(std::time::Duration::from_millis(1500)).await;
        if let Some(node) = placement::choose(&snapshots, &input.model, &input.excluded) {
            return Ok(Placement { node });
        }
        // Nobody can serve the model: load it here if this node is configured for it (and is
        // not draining).
        if snapshots.iter().any(|s| s.node == self.node && s.draining) {
            return Err(ActivityError::from(anyhow::anyhow!(
                "no node serves `{}` and this node is draining",
                input.model
            )));
        }
        let Some(autoscaler) = crate::actors::lookup::<AutoscalerMsg>(actor_names::AUTOSCALER)
        else {
            return Err(ActivityError::from(anyhow::anyhow!(
                "autoscaler unavailable"
            )));
        };
        let loaded = ractor::call_t!(
            autoscaler,
            AutoscalerMsg::Load,
            120_000,
            input.model.clone()
        )
        .map_err(|e| ActivityError::from(anyhow::anyhow!("autoscaler: {e}")))?;
        match loaded {
            Ok(()) => Ok(Placement {
                node: self.node.clone(),
            }),
            Err(e) if e.contains("not configured") => Err(non_retryable(
                UNKNOWN_MODEL,
                format!("model `{}` is not served by this cluster", input.model),
            )),
            Err(e) => Err(non_retryable(NO_CAPACITY, e)),
        }
    }
}
