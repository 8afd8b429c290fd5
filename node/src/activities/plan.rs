//! The plan activity: where should this ask run?

use super::non_retryable;
use crate::actors::models::LoadError;
use crate::actors::resource_manager::Fallbacks;
use crate::actors::{NodeHandle, mesh};
use crate::placement;
use crate::policy::Route;
use crate::protocol::{ModelId, NO_CAPACITY, NodeId, PrefixMark, RequestId, UNKNOWN_MODEL};
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
    /// The conversation's marks, one per message: cache-aware placement looks for the node
    /// holding the deepest (hashes only, no text).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<PrefixMark>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Placement {
    pub node: NodeId,
    /// The model to generate with: the one asked for, or its fallback while the scaling loop
    /// routes it there.
    pub model: ModelId,
    /// Why this node (recorded with the plan in the ask's history).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
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
    /// The loop pushes its routes to every node when they change; only when what this node
    /// heard is older than [`ROUTES_FRESH`] (it joined since, or missed a push) does the plan
    /// query the loop, a round trip through Temporal on the way to the first token.
    async fn routed(&self, ctx: &ActivityContext, model: &ModelId) -> ModelId {
        let known = self.handle.routes();
        let fallbacks = match known.fresh(ROUTES_FRESH) {
            Some(f) => f,
            None => {
                metrics::counter!("orrery_route_queries_total").increment(1);
                // Bounded: a query to a loop whose worker just died waits for that worker's
                // sticky queue to time out (measured: the first ask after a node restart planned
                // for 30 s). Then, or without the loop (disabled or not started yet), the routes
                // last heard stand, else everything stays local; the loop's next push corrects it.
                let f = match tokio::time::timeout(ROUTES_QUERY_WAIT, (self.routes)(ctx.client()))
                    .await
                {
                    Ok(Some(routes)) => fallbacks(&routes),
                    Ok(None) | Err(_) => known.latest().unwrap_or_default(),
                };
                known.set(f.clone());
                f
            }
        };
        match fallbacks.get(model.as_str()) {
            Some(backend) => {
                metrics::counter!("orrery_fallback_requests_total", "model" => model.to_string())
                    .increment(1);
                ModelId::new(backend)
            }
            None => model.clone(),
        }
    }
}

/// Longest a plan waits for the scaling loop to answer the routes query.
const ROUTES_QUERY_WAIT: Duration = Duration::from_secs(2);

/// How long routes this node heard stay good without a push.
const ROUTES_FRESH: Duration = Duration::from_secs(15);

/// The models whose asks the routes send to a fallback, and where.
pub fn fallbacks(routes: &BTreeMap<String, Route>) -> Fallbacks {
    routes
        .iter()
        .filter_map(|(m, r)| match r {
            Route::Fallback { backend } => Some((m.clone(), backend.clone())),
            _ => None,
        })
        .collect()
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
        if let Some(c) = placement::choose_for(&snapshots, &model, &input.excluded, &input.marks) {
            if c.cached_chars > 0 {
                metrics::counter!("orrery_placement_cache_affinity_total", "model" => model.to_string())
                    .increment(1);
            }
            tracing::debug!(request.id = %input.request_id, node = %c.node, why = %c.why, "placed");
            return Ok(Placement {
                node: c.node,
                model,
                why: c.why,
            });
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
                why: "no node held the model: loaded here".into(),
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
