//! The plan activity: where should this ask run?

use super::non_retryable;
use crate::actors::autoscaler::AutoscalerMsg;
use crate::ids::{ModelId, NodeId, RequestId, actor_names};
use crate::placement;
use crate::policy::Route;
use crate::workflows::ask::{NO_CAPACITY, UNKNOWN_MODEL};
use crate::workflows::{RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow};
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
    /// The model to generate with: the one asked for, or its fallback while the scaling loop
    /// routes it there.
    pub model: ModelId,
}

pub struct ClusterActivities {
    node: NodeId,
}

impl ClusterActivities {
    pub fn new(node: NodeId) -> Self {
        Self { node }
    }

    /// Where the scaling loop sends `model`'s asks now (the fallback model, if routed there).
    /// Asked of the loop on every plan: a cached route would send asks the wrong way for as long
    /// as it is kept, and the query costs a few milliseconds.
    async fn routed(&self, ctx: &ActivityContext, model: &ModelId) -> ModelId {
        let status = ctx
            .client()
            .get_workflow_handle::<ResourceManagementWorkflow>(RESOURCE_WORKFLOW_ID)
            .query(ResourceManagementWorkflow::routes, (), Default::default())
            .await;
        // Without the loop (disabled or not started yet) everything stays local.
        let routes = status.unwrap_or_default();
        match routes.get(model.as_str()) {
            Some(Route::Fallback { backend }) => {
                metrics::counter!("orrery_fallback_requests_total", "model" => model.to_string())
                    .increment(1);
                ModelId::new(backend)
            }
            _ => model.clone(),
        }
    }
}

#[activities]
impl ClusterActivities {
    #[activity]
    pub async fn plan(
        self: std::sync::Arc<Self>,
        ctx: ActivityContext,
        input: PlanInput,
    ) -> Result<Placement, ActivityError> {
        let model = self.routed(&ctx, &input.model).await;
        let snapshots = crate::cluster::snapshots(std::time::Duration::from_millis(1500)).await;
        if let Some(node) = placement::choose(&snapshots, &model, &input.excluded) {
            return Ok(Placement { node, model });
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
                model,
            }),
            Err(e) if e.contains("not configured") => Err(non_retryable(
                UNKNOWN_MODEL,
                format!("model `{model}` is not served by this cluster"),
            )),
            Err(e) => Err(non_retryable(NO_CAPACITY, e)),
        }
    }
}
