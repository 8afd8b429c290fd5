//! The plan activity: where should this ask run?

use super::non_retryable;
use crate::actors::models::LoadError;
use crate::actors::{NodeHandle, mesh};
use crate::placement;
use crate::policy::Route;
use crate::protocol::{ModelId, NO_CAPACITY, NodeId, RequestId, UNKNOWN_MODEL};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::Client;
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

/// Asks the scaling loop where each model's asks go now (`None` when it does not answer). Given
/// at wiring time by the workflows module, which owns the loop, so that the activities need not
/// depend on the workflows that call them.
pub type RoutesQuery =
    Arc<dyn Fn(Client) -> BoxFuture<'static, Option<BTreeMap<String, Route>>> + Send + Sync>;

pub struct ClusterActivities {
    node: NodeId,
    handle: NodeHandle,
    routes: RoutesQuery,
}

/// How long one plan waits for a model it asked this node to load: under the plan's own 30 s
/// timeout; a longer load is waited for by the plan's retries (the load goes on meanwhile).
const PLAN_LOAD_WAIT: Duration = Duration::from_secs(20);

impl ClusterActivities {
    pub fn new(node: NodeId, handle: NodeHandle, routes: RoutesQuery) -> Self {
        Self {
            node,
            handle,
            routes,
        }
    }

    /// Where the scaling loop sends `model`'s asks now (the fallback model, if routed there).
    /// Asked of the loop on every plan: a cached route would send asks the wrong way for as long
    /// as it is kept, and the query costs a few milliseconds.
    async fn routed(&self, ctx: &ActivityContext, model: &ModelId) -> ModelId {
        // Without the loop (disabled or not started yet) everything stays local.
        let routes = (self.routes)(ctx.client()).await.unwrap_or_default();
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
        let snapshots = mesh::snapshots(Duration::from_millis(1500)).await;
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
        match self.handle.load_model(&input.model, PLAN_LOAD_WAIT).await {
            Ok(()) => Ok(Placement {
                node: self.node.clone(),
                model,
            }),
            Err(LoadError::NotConfigured(_)) => Err(non_retryable(
                UNKNOWN_MODEL,
                format!("model `{model}` is not served by this cluster"),
            )),
            // Still loading (or the manager restarting): the plan's retry asks again.
            Err(e @ (LoadError::TimedOut | LoadError::Unavailable)) => {
                Err(ActivityError::from(anyhow::anyhow!("{e}")))
            }
            Err(e) => Err(non_retryable(NO_CAPACITY, e.to_string())),
        }
    }
}
