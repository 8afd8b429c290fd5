//! The NodeSupervisor: the root of a node's supervision tree. It starts the node's actors, owns the
//! ModelHolders (started and stopped on the Autoscaler's request), and restarts a child that
//! crashes, with backoff and a limit.

use super::autoscaler::Autoscaler;
use super::broadcaster::{Broadcaster, Followers};
use super::model_holder::{ModelHolder, ModelHolderArgs};
use super::resource_manager::{ResourceManager, ResourceManagerMsg};
use super::worker_host::{WorkerHost, WorkerHostArgs};
use crate::cluster::membership::{Membership, MembershipArgs};
use crate::config::{Config, ModelConfig};
use crate::ids::{ModelId, actor_names};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::RactorMessage;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Restarts allowed per child within `RESTART_WINDOW` before the supervisor gives up on it.
const MAX_RESTARTS: usize = 5;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

#[derive(RactorMessage)]
pub enum SupervisorMsg {
    StartModel(ModelConfig, Option<RpcReplyPort<Result<(), String>>>),
    StopModel(ModelId, Option<RpcReplyPort<Result<(), String>>>),
    /// Restart the named child (sent to itself after a backoff).
    Restart(String),
    Status(RpcReplyPort<NodeStatus>),
}

/// What the node has started, for readiness and the UI.
#[derive(Clone, Debug, Default)]
pub struct NodeStatus {
    pub models_loaded: Vec<ModelId>,
    pub models_failed: BTreeMap<ModelId, String>,
    pub models_loading: Vec<ModelId>,
}

pub struct NodeSupervisor;

pub struct SupervisorArgs {
    pub config: Arc<Config>,
    pub workers: WorkerHostArgs,
    pub followers: Followers,
}

pub struct SupervisorState {
    config: Arc<Config>,
    workers: WorkerHostArgs,
    followers: Followers,
    models: HashMap<ModelId, ModelConfig>,
    failed: BTreeMap<ModelId, String>,
    loading: HashSet<ModelId>,
    stopping_models: HashSet<ModelId>,
    restarts: HashMap<String, Vec<Instant>>,
}

impl NodeSupervisor {
    async fn spawn_child(
        &self,
        name: &str,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<ActorCell, ActorProcessingErr> {
        let sup = myself.get_cell();
        let n = Some(name.to_string());
        let cell = match name {
            actor_names::RESOURCE_MANAGER => Actor::spawn_linked(
                n,
                ResourceManager,
                (
                    state.config.node_id.clone(),
                    state.config.memory_budget_bytes,
                ),
                sup,
            )
            .await?
            .0
            .get_cell(),
            actor_names::BROADCASTER => Actor::spawn_linked(
                n,
                Broadcaster,
                (state.config.node_id.clone(), state.followers.clone()),
                sup,
            )
            .await?
            .0
            .get_cell(),
            actor_names::MEMBERSHIP => {
                let c = &state.config.cluster;
                let (Some(listen), Some(cookie)) = (c.listen, c.cookie.clone()) else {
                    return Err("the cluster mesh is not configured".into());
                };
                let args = MembershipArgs {
                    node: state.config.node_id.clone(),
                    listen,
                    seeds: c.seeds.clone(),
                    cookie,
                };
                Actor::spawn_linked(n, Membership, args, sup)
                    .await?
                    .0
                    .get_cell()
            }
            actor_names::AUTOSCALER => {
                Actor::spawn_linked(n, Autoscaler, state.config.clone(), sup)
                    .await?
                    .0
                    .get_cell()
            }
            actor_names::WORKER_HOST => {
                Actor::spawn_linked(n, WorkerHost, state.workers.clone(), sup)
                    .await?
                    .0
                    .get_cell()
            }
            other => {
                let model = other
                    .strip_prefix("orrery.model.")
                    .map(ModelId::new)
                    .ok_or_else(|| format!("unknown child {other}"))?;
                let config = state
                    .models
                    .get(&model)
                    .cloned()
                    .ok_or_else(|| format!("model {model} has no configuration"))?;
                let args = ModelHolderArgs {
                    config,
                    home: state.config.home.clone(),
                };
                // A model that cannot load says why in its own words, not as ractor's "Actor
                // panicked during startup" wrapper around them.
                let cell = Actor::spawn_linked(n, ModelHolder, args, sup)
                    .await
                    .map_err(|e| match e {
                        ractor::SpawnErr::StartupFailed(why) => why,
                        other => Box::new(other) as ActorProcessingErr,
                    })?
                    .0
                    .get_cell();
                if let Some(rm) = super::lookup::<ResourceManagerMsg>(actor_names::RESOURCE_MANAGER)
                {
                    let _ = rm.cast(ResourceManagerMsg::ModelLoaded(model));
                }
                cell
            }
        };
        Ok(cell)
    }

    /// Records a restart of `name` and says how long to wait before it, or None past the limit.
    fn restart_delay(state: &mut SupervisorState, name: &str) -> Option<Duration> {
        let now = Instant::now();
        let times = state.restarts.entry(name.to_string()).or_default();
        times.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if times.len() >= MAX_RESTARTS {
            return None;
        }
        times.push(now);
        Some(Duration::from_millis(100 * (1 << (times.len() - 1))))
    }

    async fn child_exited(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        cell: &ActorCell,
        why: String,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(name) = cell.get_name() else {
            return Ok(());
        };
        if let Some(model) = name.strip_prefix("orrery.model.").map(ModelId::new) {
            if let Some(rm) = super::lookup::<ResourceManagerMsg>(actor_names::RESOURCE_MANAGER) {
                let _ = rm.cast(ResourceManagerMsg::ModelUnloaded(model.clone()));
            }
            if state.stopping_models.remove(&model) {
                state.models.remove(&model);
                return Ok(());
            }
        }
        match Self::restart_delay(state, &name) {
            Some(delay) => {
                tracing::warn!(actor = %name, reason = %why, delay_ms = delay.as_millis() as u64, "child exited; restarting");
                let n = name.clone();
                myself.send_after(delay, move || SupervisorMsg::Restart(n));
                Ok(())
            }
            None if name.starts_with("orrery.model.") => {
                let model = ModelId::new(name.trim_start_matches("orrery.model."));
                tracing::error!(model.id = %model, reason = %why, "model holder keeps failing; giving it up");
                state.failed.insert(model.clone(), why);
                state.models.remove(&model);
                Ok(())
            }
            None => Err(format!("{name} failed {MAX_RESTARTS} times in a minute: {why}").into()),
        }
    }
}

impl Actor for NodeSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = SupervisorState {
            config: args.config,
            workers: args.workers,
            followers: args.followers,
            models: HashMap::new(),
            failed: BTreeMap::new(),
            loading: HashSet::new(),
            stopping_models: HashSet::new(),
            restarts: HashMap::new(),
        };
        let mut children = vec![
            actor_names::RESOURCE_MANAGER,
            actor_names::BROADCASTER,
            actor_names::AUTOSCALER,
        ];
        if state.config.cluster.listen.is_some() {
            children.push(actor_names::MEMBERSHIP);
        }
        children.push(actor_names::WORKER_HOST);
        for name in children {
            self.spawn_child(name, &myself, &mut state).await?;
        }
        for m in state.config.models.iter().filter(|m| m.load) {
            state.loading.insert(m.id.clone());
            myself.cast(SupervisorMsg::StartModel(m.clone(), None))?;
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("node stopping".into()), Some(Duration::from_secs(30)))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::StartModel(spec, reply) => {
                let id = spec.id.clone();
                let name = actor_names::model_holder(&id);
                if state.models.contains_key(&id)
                    && ractor::registry::where_is(name.clone()).is_some()
                {
                    state.loading.remove(&id);
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                    return Ok(());
                }
                state.models.insert(id.clone(), spec);
                let result = self.spawn_child(&name, &myself, state).await;
                state.loading.remove(&id);
                let result = match result {
                    Ok(_) => {
                        state.failed.remove(&id);
                        Ok(())
                    }
                    Err(e) => {
                        let why = e.to_string();
                        tracing::error!(model.id = %id, error = %why, "model failed to load");
                        state.models.remove(&id);
                        state.failed.insert(id, why.clone());
                        Err(why)
                    }
                };
                if let Some(r) = reply {
                    let _ = r.send(result);
                }
            }
            SupervisorMsg::StopModel(id, reply) => {
                let name = actor_names::model_holder(&id);
                let result = match ractor::registry::where_is(name) {
                    Some(cell) => {
                        state.stopping_models.insert(id);
                        cell.stop(Some("unloaded".into()));
                        Ok(())
                    }
                    None => Err(format!("model `{id}` is not loaded here")),
                };
                if let Some(r) = reply {
                    let _ = r.send(result);
                }
            }
            SupervisorMsg::Restart(name) => {
                if let Err(e) = self.spawn_child(&name, &myself, state).await {
                    // Count the failed start as another crash, so the limit still applies.
                    let why = e.to_string();
                    match Self::restart_delay(state, &name) {
                        Some(delay) => {
                            tracing::warn!(actor = %name, error = %why, "restart failed; retrying");
                            myself.send_after(delay, move || SupervisorMsg::Restart(name));
                        }
                        None => return Err(format!("{name} cannot be restarted: {why}").into()),
                    }
                } else {
                    tracing::info!(actor = %name, "child restarted");
                }
            }
            SupervisorMsg::Status(reply) => {
                let mut loaded: Vec<ModelId> = state
                    .models
                    .keys()
                    .filter(|m| ractor::registry::where_is(actor_names::model_holder(m)).is_some())
                    .cloned()
                    .collect();
                loaded.sort();
                let _ = reply.send(NodeStatus {
                    models_loaded: loaded,
                    models_failed: state.failed.clone(),
                    models_loading: state.loading.iter().cloned().collect(),
                });
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                self.child_exited(&myself, &cell, err.to_string(), state)
                    .await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = reason.unwrap_or_else(|| "stopped".into());
                self.child_exited(&myself, &cell, why, state).await
            }
            _ => Ok(()),
        }
    }
}
