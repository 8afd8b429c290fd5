//! The Models actor: owns this node's ModelHolders. It admits a load (the model is configured and
//! fits in memory), starts the holder in the background so that nothing waits on a load, restarts
//! a holder that crashes (with backoff and a limit) and unloads on request. What is loaded is
//! published in [`Holders`], which the rest of the node reads without a message.

use super::model_holder::{ModelHolder, ModelHolderArgs, ModelHolderMsg};
use super::restarts::{self, Restarts};
use crate::config::{Config, ModelSource};
use crate::protocol::{ModelId, actor_names};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::RactorMessage;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long a model that failed to load is refused before a load is tried again.
pub const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// Why a model cannot be loaded or unloaded here.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    #[error("model `{0}` is not configured")]
    NotConfigured(ModelId),
    #[error("model `{model}` needs about {need_mib} MiB, {available_mib} MiB available")]
    NoMemory {
        model: ModelId,
        need_mib: u64,
        available_mib: u64,
    },
    #[error("model `{0}` failed to load: {1}")]
    Failed(ModelId, String),
    #[error("model `{0}` is not loaded here")]
    NotLoaded(ModelId),
    #[error("the node's model manager is not running")]
    Unavailable,
    #[error("the model did not load in time")]
    TimedOut,
}

type Reply = RpcReplyPort<Result<(), LoadError>>;

/// The loaded models of this node and their holders, shared read-only with the rest of the node.
#[derive(Clone, Default)]
pub struct Holders(Arc<RwLock<BTreeMap<ModelId, ActorRef<ModelHolderMsg>>>>);

impl Holders {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ModelId, ActorRef<ModelHolderMsg>>> {
        // Every write is a single insert or remove, so a poisoned map is still consistent.
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ModelId, ActorRef<ModelHolderMsg>>> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The holder of `model`, if it is loaded here.
    pub fn get(&self, model: &ModelId) -> Option<ActorRef<ModelHolderMsg>> {
        self.read().get(model).cloned()
    }

    /// Every loaded model and its holder, by model id.
    pub fn all(&self) -> Vec<(ModelId, ActorRef<ModelHolderMsg>)> {
        self.read()
            .iter()
            .map(|(m, h)| (m.clone(), h.clone()))
            .collect()
    }
}

/// What the node has loaded, is loading and could not load, for readiness and the UI.
#[derive(Clone, Debug, Default)]
pub struct ModelsStatus {
    pub loaded: Vec<ModelId>,
    pub loading: Vec<ModelId>,
    pub failed: BTreeMap<ModelId, String>,
}

#[derive(RactorMessage)]
pub enum ModelsMsg {
    /// Loads a configured model (no-op when loaded); the reply comes once it has loaded.
    Load(ModelId, Option<Reply>),
    /// Unloads a model; the reply comes once it is stopping.
    Unload(ModelId, Option<Reply>),
    /// A background start finished (sent to itself).
    Started(ModelId, Result<ActorRef<ModelHolderMsg>, String>),
    /// Restarts a crashed holder (sent to itself after a backoff).
    Restart(ModelId),
    Status(RpcReplyPort<ModelsStatus>),
}

pub struct ModelsArgs {
    pub config: Arc<Config>,
    pub holders: Holders,
}

pub struct Models;

pub struct ModelsState {
    config: Arc<Config>,
    holders: Holders,
    /// Loads in flight and who waits for each.
    loading: HashMap<ModelId, Vec<Reply>>,
    failed: BTreeMap<ModelId, String>,
    /// When each failed load failed: a new load waits `RETRY_FAILED_AFTER` (no tight loop of
    /// loads that cannot succeed, one per ask).
    failed_at: HashMap<ModelId, Instant>,
    stopping: HashSet<ModelId>,
    restarts: Restarts<ModelId>,
}

/// Estimated resident bytes of a model: its file plus room for KV caches and scratch space.
pub fn estimate_bytes(config: &Config, model: &ModelId) -> u64 {
    let file_bytes = config
        .model(model)
        .and_then(|m| match &m.source {
            ModelSource::Path(p) => std::fs::metadata(p).ok().map(|md| md.len()),
            ModelSource::Package { package, file } => {
                std::fs::metadata(crate::setup::package_dir(&config.home, package).join(file))
                    .ok()
                    .map(|md| md.len())
            }
            ModelSource::Synthetic { .. } | ModelSource::Remote { .. } => Some(0),
            // Not known before the download; the loaded replica reports its real size.
            ModelSource::HuggingFace { .. } => Some(0),
        })
        .unwrap_or(0);
    file_bytes + file_bytes / 2 + 64 * 1024 * 1024
}

impl ModelsState {
    /// Checks that `model` may load here: configured, and its estimate fits in free memory.
    fn admit(&self, model: &ModelId) -> Result<(), LoadError> {
        if self.config.model(model).is_none() {
            return Err(LoadError::NotConfigured(model.clone()));
        }
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let need = estimate_bytes(&self.config, model);
        if need > sys.available_memory() {
            return Err(LoadError::NoMemory {
                model: model.clone(),
                need_mib: need >> 20,
                available_mib: sys.available_memory() >> 20,
            });
        }
        Ok(())
    }
}

/// Starts `model`'s holder on a task of its own (a load reads the weights: seconds), linked to
/// this actor, and reports back with `Started`.
fn start_in_background(myself: &ActorRef<ModelsMsg>, state: &ModelsState, model: ModelId) {
    let Some(config) = state.config.model(&model).cloned() else {
        let _ = myself.cast(ModelsMsg::Started(
            model.clone(),
            Err(LoadError::NotConfigured(model).to_string()),
        ));
        return;
    };
    let args = ModelHolderArgs {
        config,
        home: state.config.home.clone(),
    };
    let me = myself.clone();
    tokio::spawn(async move {
        let name = actor_names::model_holder(&model);
        let result = Actor::spawn_linked(Some(name), ModelHolder, args, me.get_cell())
            .await
            .map(|(holder, _)| holder)
            // A model that cannot load says why in its own words, not as ractor's "Actor
            // panicked during startup" wrapper around them.
            .map_err(|e| match e {
                ractor::SpawnErr::StartupFailed(why) => why.to_string(),
                other => other.to_string(),
            });
        let _ = me.cast(ModelsMsg::Started(model, result));
    });
}

impl Models {
    fn load(
        myself: &ActorRef<ModelsMsg>,
        state: &mut ModelsState,
        model: ModelId,
        reply: Option<Reply>,
    ) {
        if state.holders.get(&model).is_some() {
            if let Some(r) = reply {
                let _ = r.send(Ok(()));
            }
            return;
        }
        if let Some(waiting) = state.loading.get_mut(&model) {
            waiting.extend(reply);
            return;
        }
        if let (Some(at), Some(why)) = (state.failed_at.get(&model), state.failed.get(&model))
            && at.elapsed() < RETRY_FAILED_AFTER
        {
            // Reported once, when it failed; asked again, it is refused with the same reason.
            if let Some(r) = reply {
                let _ = r.send(Err(LoadError::Failed(model, why.clone())));
            }
            return;
        }
        if let Err(e) = state.admit(&model) {
            tracing::error!(model.id = %model, error = %e, "model not loaded");
            state.failed.insert(model, e.to_string());
            if let Some(r) = reply {
                let _ = r.send(Err(e));
            }
            return;
        }
        tracing::info!(model.id = %model, "loading model");
        state
            .loading
            .insert(model.clone(), reply.into_iter().collect());
        start_in_background(myself, state, model);
    }

    fn started(
        state: &mut ModelsState,
        model: ModelId,
        result: Result<ActorRef<ModelHolderMsg>, String>,
    ) {
        let waiting = state.loading.remove(&model).unwrap_or_default();
        let result = match result {
            Ok(holder) => {
                state.failed.remove(&model);
                state.holders.write().insert(model, holder);
                Ok(())
            }
            Err(why) => {
                // Reported once, here; the scaling loop decides whether to try again later.
                tracing::error!(model.id = %model, error = %why, "model failed to load");
                state.failed.insert(model.clone(), why.clone());
                state.failed_at.insert(model.clone(), Instant::now());
                Err(LoadError::Failed(model, why))
            }
        };
        for r in waiting {
            let _ = r.send(result.clone());
        }
    }

    fn unload(state: &mut ModelsState, model: ModelId, reply: Option<Reply>) {
        let result = match state.holders.get(&model) {
            Some(holder) => {
                state.stopping.insert(model);
                holder.stop(Some("unloaded".into()));
                Ok(())
            }
            None => Err(LoadError::NotLoaded(model)),
        };
        if let Some(r) = reply {
            let _ = r.send(result);
        }
    }

    fn holder_exited(
        myself: &ActorRef<ModelsMsg>,
        state: &mut ModelsState,
        cell: &ActorCell,
        why: String,
    ) {
        let Some(model) = cell
            .get_name()
            .and_then(|n| actor_names::model_of_holder(&n))
        else {
            return;
        };
        let current = state.holders.get(&model).map(|h| h.get_id());
        if current != Some(cell.get_id()) {
            return; // A holder that never finished starting: `Started` reports it.
        }
        state.holders.write().remove(&model);
        if state.stopping.remove(&model) {
            return;
        }
        match state.restarts.next_delay(&model) {
            Some(delay) => {
                tracing::warn!(model.id = %model, reason = %why, delay_ms = delay.as_millis() as u64, "model holder exited; restarting");
                state.loading.insert(model.clone(), Vec::new());
                myself.send_after(delay, move || ModelsMsg::Restart(model));
            }
            None => {
                tracing::error!(model.id = %model, reason = %why, "model holder keeps failing; giving it up");
                state.failed.insert(model, why);
            }
        }
    }
}

impl Actor for Models {
    type Msg = ModelsMsg;
    type State = ModelsState;
    type Arguments = ModelsArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ModelsArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        // A restarted Models actor finds its holders gone with the old one (they were linked).
        args.holders.write().clear();
        // First in the mailbox: a status asked for later counts these as loading.
        for m in args.config.models.iter().filter(|m| m.load) {
            myself.cast(ModelsMsg::Load(m.id.clone(), None))?;
        }
        Ok(ModelsState {
            config: args.config,
            holders: args.holders,
            loading: HashMap::new(),
            failed: BTreeMap::new(),
            failed_at: HashMap::new(),
            stopping: HashSet::new(),
            restarts: Restarts::default(),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("node stopping".into()), Some(Duration::from_secs(30)))
            .await;
        state.holders.write().clear();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModelsMsg::Load(model, reply) => Self::load(&myself, state, model, reply),
            ModelsMsg::Unload(model, reply) => Self::unload(state, model, reply),
            ModelsMsg::Started(model, result) => Self::started(state, model, result),
            // Counted as loading since the holder exited (see `holder_exited`).
            ModelsMsg::Restart(model) => start_in_background(&myself, state, model),
            ModelsMsg::Status(reply) => {
                let _ = reply.send(ModelsStatus {
                    loaded: state.holders.all().into_iter().map(|(m, _)| m).collect(),
                    loading: state.loading.keys().cloned().collect(),
                    failed: state.failed.clone(),
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
        if let Some((cell, why)) = restarts::exited(evt) {
            Self::holder_exited(&myself, state, &cell, why);
        }
        Ok(())
    }
}
