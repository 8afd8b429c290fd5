//! The plan activity: where should this ask run?

use super::non_retryable;
use crate::actors::autoscaler::AutoscalerMsg;
use crate::ids::{ModelId, NodeId, RequestId, actor_names};
use crate::placement;
use crate::policy::Route;
use crate::workflows::ask::{NO_CAPACITY, UNKNOWN_MODEL};
use crate::workflows::{RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
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

type Routes = BTreeMap<String, Route>;

pub struct ClusterActivities {
    node: NodeId,
    /// The scaling loop's routes, re-read at most once a second.
    routes: Mutex<Option<(Instant, Routes)>>,
}

impl ClusterActivities {
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            routes: Mutex::new(None),
        }
    }

    /// Where the scaling loop sends `model`'s asks now (the fallback model, if routed there).
    async fn routed(&self, ctx: &ActivityContext, model: &ModelId) -> ModelId {
        let cached = self.routes.lock().ok().and_then(|g| {
            g.as_ref()
                .filter(|(at, _)| at.elapsed() < Duration::from_secs(1))
                .map(|(_, r)| r.clone())
        });
        let routes = match cached {
            Some(r) => r,
            None => {
                let status = ctx
                    .client()
                    .get_workflow_handle::<ResourceManagementWorkflow>(RESOURCE_WORKFLOW_ID)
                    .query(ResourceManagementWorkflow::status, (), Default::default())
                    .await;
                // Without the loop (disabled or not started yet) everything stays local.
                let routes = status.map(|s| s.routes).unwrap_or_default();
                if let Ok(mut g) = self.routes.lock() {
                    *g = Some((Instant::now(), routes.clone()));
                }
                routes
            }
        };
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
