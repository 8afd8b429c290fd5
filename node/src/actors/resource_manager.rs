//! The ResourceManager: this node's resources (CPU, memory) and the load of each model it holds,
//! answered as a `NodeSnapshot` — the input of placement and, later, of the scaling policy.

use super::model_holder::{ModelHolderMsg, ModelStats};
use super::models::Holders;
use crate::protocol::{ModelLoad, NodeId, NodeSnapshot, RequestId, groups};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Model → the backend its asks go to instead (the scaling loop's fallback routes).
pub type Fallbacks = BTreeMap<String, String>;

/// The scaling loop's routes as this node last heard them (pushed by the loop when they change,
/// or read from it by a plan when what is here has grown old), so that a plan need not query the
/// loop through Temporal on every ask.
#[derive(Clone, Default)]
pub struct KnownRoutes(Arc<RwLock<Option<(Instant, Fallbacks)>>>);

impl KnownRoutes {
    /// The routes, if heard within `fresh`.
    pub fn fresh(&self, fresh: Duration) -> Option<Fallbacks> {
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        known
            .as_ref()
            .filter(|(at, _)| at.elapsed() < fresh)
            .map(|(_, r)| r.clone())
    }

    /// The routes last heard, however old.
    pub fn latest(&self) -> Option<Fallbacks> {
        let known = self.0.read().unwrap_or_else(|p| p.into_inner());
        known.as_ref().map(|(_, r)| r.clone())
    }

    pub fn set(&self, routes: Fallbacks) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), routes));
    }
}

/// Messages that may come from any node of the mesh.
#[derive(RactorClusterMessage)]
pub enum ResourceManagerMsg {
    #[rpc]
    Snapshot(RpcReplyPort<NodeSnapshot>),
    SetDraining(bool),
    /// Stops an ask at once if it is generating or waiting on this node (the fast path of a
    /// cancel; Temporal's cancellation is the durable one).
    CancelAsk(RequestId),
    Sample,
    /// The scaling loop's routes changed (sent to every node).
    SetRoutes(Fallbacks),
}

pub struct ResourceManager;

pub struct ResourceManagerArgs {
    pub node: NodeId,
    /// Bytes models may take on this node; default: three quarters of RAM.
    pub memory_budget: Option<u64>,
    /// The models loaded here (kept by the Models actor).
    pub holders: Holders,
    /// Whether the node's Temporal workers poll: without them it reports itself draining.
    pub workers_up: Arc<AtomicBool>,
    pub routes: KnownRoutes,
}

pub struct ResourceManagerState {
    node: NodeId,
    memory_budget: Option<u64>,
    system: sysinfo::System,
    holders: Holders,
    workers_up: Arc<AtomicBool>,
    draining: bool,
    routes: KnownRoutes,
}

const SAMPLE_EVERY: Duration = Duration::from_secs(2);
const STATS_TIMEOUT: Duration = Duration::from_millis(500);

impl Actor for ResourceManager {
    type Msg = ResourceManagerMsg;
    type State = ResourceManagerState;
    type Arguments = ResourceManagerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ResourceManagerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        system.refresh_cpu_usage();
        myself.send_interval(SAMPLE_EVERY, || ResourceManagerMsg::Sample);
        ractor::pg::join(groups::RESOURCES.to_string(), vec![myself.get_cell()]);
        ractor::pg::join(groups::resources(&args.node), vec![myself.get_cell()]);
        Ok(ResourceManagerState {
            node: args.node,
            memory_budget: args.memory_budget,
            system,
            holders: args.holders,
            workers_up: args.workers_up,
            draining: false,
            routes: args.routes,
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
                for (_, h) in state.holders.all() {
                    let _ = h.cast(ModelHolderMsg::Cancel(id.clone()));
                }
            }
            ResourceManagerMsg::SetRoutes(routes) => {
                tracing::debug!(?routes, "routes pushed by the scaling loop");
                state.routes.set(routes);
            }
            ResourceManagerMsg::SetDraining(d) => {
                if d != state.draining {
                    tracing::info!(node.id = %state.node, draining = d, "drain state changed");
                }
                state.draining = d;
            }
            ResourceManagerMsg::Snapshot(reply) => {
                let mut models = Vec::new();
                for (m, holder) in state.holders.all() {
                    if let Some(s) = model_stats(&holder).await {
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
                            cached_marks: s.cached_marks,
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
                    // Asks placed on a node whose workers are down would wait out their
                    // schedule-to-start timeout: it takes none until they are back.
                    draining: state.draining || !state.workers_up.load(Ordering::SeqCst),
                });
            }
        }
        Ok(())
    }
}

async fn model_stats(holder: &ActorRef<ModelHolderMsg>) -> Option<ModelStats> {
    ractor::call_t!(
        holder,
        ModelHolderMsg::Stats,
        STATS_TIMEOUT.as_millis() as u64
    )
    .ok()
}
