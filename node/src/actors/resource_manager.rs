//! The ResourceManager: this node's resources (CPU, memory) and the load of each model it holds,
//! answered as a `NodeSnapshot` — the input of placement and, later, of the scaling policy.

use super::model_holder::{ModelHolderMsg, ModelStats};
use crate::ids::{ModelId, NodeId, RequestId, actor_names};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::Duration;

/// One model's load on one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelLoad {
    pub model: ModelId,
    pub kind: String,
    pub active: u32,
    pub queued: u32,
    pub max_sequences: u32,
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub idle_since_ms: Option<u64>,
    #[serde(default)]
    pub est_wait_ms: u64,
}

/// What a node reports of itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSnapshot {
    pub node: NodeId,
    pub cpu_percent: f32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub models: Vec<ModelLoad>,
    pub draining: bool,
    /// What models may take on this node, and what they take now.
    #[serde(default)]
    pub memory_budget_bytes: u64,
    #[serde(default)]
    pub memory_used_bytes: u64,
}

/// Messages that may come from any node of the mesh.
#[derive(RactorClusterMessage)]
pub enum ResourceManagerMsg {
    #[rpc]
    Snapshot(RpcReplyPort<NodeSnapshot>),
    ModelLoaded(ModelId),
    ModelUnloaded(ModelId),
    SetDraining(bool),
    /// Stops an ask at once if it is generating or waiting on this node (the fast path of a
    /// cancel; Temporal's cancellation is the durable one).
    CancelAsk(RequestId),
    Sample,
}

pub struct ResourceManager;

pub struct ResourceManagerState {
    node: NodeId,
    memory_budget: Option<u64>,
    system: sysinfo::System,
    models: BTreeSet<ModelId>,
    draining: bool,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const STATS_TIMEOUT: Duration = Duration::from_millis(500);

impl Actor for ResourceManager {
    type Msg = ResourceManagerMsg;
    type State = ResourceManagerState;
    /// The node and its memory budget for models (bytes; default: three quarters of RAM).
    type Arguments = (NodeId, Option<u64>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (node, memory_budget): (NodeId, Option<u64>),
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        system.refresh_cpu_usage();
        myself.send_interval(SAMPLE_EVERY, || ResourceManagerMsg::Sample);
        ractor::pg::join(
            crate::cluster::RESOURCES_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        ractor::pg::join(
            crate::cluster::resources_group(&node),
            vec![myself.get_cell()],
        );
        // A restarted ResourceManager relearns which models are loaded from the registry.
        let models = ractor::registry::registered()
            .into_iter()
            .filter_map(|n| n.strip_prefix("orrery.model.").map(ModelId::new))
            .collect();
        Ok(ResourceManagerState {
            node,
            memory_budget,
            system,
            models,
            draining: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ResourceManagerMsg::Sample => {
                state.system.refresh_memory();
                state.system.refresh_cpu_usage();
                metrics::gauge!("orrery_node_cpu_percent").set(state.system.global_cpu_usage());
                metrics::gauge!("orrery_node_memory_available_bytes")
                    .set(state.system.available_memory() as f64);
            }
            ResourceManagerMsg::CancelAsk(id) => {
                for m in &state.models {
                    if let Some(h) = super::lookup::<ModelHolderMsg>(&actor_names::model_holder(m))
                    {
                        let _ = h.cast(ModelHolderMsg::Cancel(id.clone()));
                    }
                }
            }
            ResourceManagerMsg::ModelLoaded(m) => {
                state.models.insert(m);
            }
            ResourceManagerMsg::ModelUnloaded(m) => {
                state.models.remove(&m);
            }
            ResourceManagerMsg::SetDraining(d) => {
                if d != state.draining {
                    tracing::info!(node.id = %state.node, draining = d, "drain state changed");
                }
                state.draining = d;
            }
            ResourceManagerMsg::Snapshot(reply) => {
                let mut models = Vec::new();
                for m in &state.models {
                    if let Some(s) = model_stats(m).await {
                        metrics::gauge!("orrery_active_sequences", "model" => m.to_string())
                            .set(s.active as f64);
                        metrics::gauge!("orrery_queue_depth", "model" => m.to_string())
                            .set(s.queued as f64);
                        models.push(ModelLoad {
                            model: s.model,
                            kind: s.info.kind.to_string(),
                            active: s.active as u32,
                            queued: s.queued as u32,
                            max_sequences: s.info.max_sequences as u32,
                            memory_bytes: s.info.memory_bytes,
                            idle_since_ms: s.idle_since_ms,
                            est_wait_ms: s.est_wait_ms,
                        });
                    }
                }
                let memory_used_bytes = models.iter().map(|m| m.memory_bytes).sum();
                let memory_budget_bytes = state
                    .memory_budget
                    .unwrap_or(state.system.total_memory() / 4 * 3);
                let _ = reply.send(NodeSnapshot {
                    memory_budget_bytes,
                    memory_used_bytes,
                    node: state.node.clone(),
                    cpu_percent: state.system.global_cpu_usage(),
                    memory_total_bytes: state.system.total_memory(),
                    memory_available_bytes: state.system.available_memory(),
                    models,
                    draining: state.draining,
                });
            }
        }
        Ok(())
    }
}

async fn model_stats(model: &ModelId) -> Option<ModelStats> {
    let holder = super::lookup::<ModelHolderMsg>(&actor_names::model_holder(model))?;
    ractor::call_t!(
        holder,
        ModelHolderMsg::Stats,
        STATS_TIMEOUT.as_millis() as u64
    )
    .ok()
}

/// This node's snapshot, from its ResourceManager.
pub async fn local_snapshot() -> Option<NodeSnapshot> {
    let rm = super::lookup::<ResourceManagerMsg>(actor_names::RESOURCE_MANAGER)?;
    ractor::call_t!(rm, ResourceManagerMsg::Snapshot, 2000).ok()
}
