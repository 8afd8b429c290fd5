//! `NodeHandle`: typed references to this node's actors, built at wiring time and handed to the
//! activities and the HTTP layer. The supervisor fills each slot when it starts (or restarts) the
//! actor, so a holder of the handle always reaches the current one without a registry lookup.

use super::broadcaster::BroadcasterMsg;
use super::limits::{Leases, LimitsMsg};
use super::membership::MembershipMsg;
use super::model_holder::ModelHolderMsg;
use super::models::{Holders, LoadError, ModelsMsg, ModelsStatus};
use super::resource_manager::{KnownRoutes, ResourceManagerMsg};
use crate::protocol::{ModelId, NodeSnapshot};
use ractor::rpc::CallResult;
use ractor::{ActorRef, MessagingErr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The current `ActorRef` of one actor, or None while it is not running.
pub struct Slot<M>(RwLock<Option<ActorRef<M>>>);

impl<M> Default for Slot<M> {
    fn default() -> Self {
        Slot(RwLock::new(None))
    }
}

impl<M> Slot<M> {
    pub fn get(&self) -> Option<ActorRef<M>> {
        // A write is a single assignment, so a poisoned slot still holds a whole value.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, actor: Option<ActorRef<M>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = actor;
    }
}

#[derive(Default)]
pub struct Slots {
    pub resource_manager: Slot<ResourceManagerMsg>,
    pub broadcaster: Slot<BroadcasterMsg>,
    pub models: Slot<ModelsMsg>,
    pub membership: Slot<MembershipMsg>,
    pub limit_keeper: Slot<LimitsMsg>,
}

/// This node's actors, by type. Cheap to clone.
#[derive(Clone, Default)]
pub struct NodeHandle {
    slots: Arc<Slots>,
    holders: Holders,
    /// Whether this node's Temporal workers poll now: a node without them is not ready and
    /// takes no placements.
    workers_up: Arc<AtomicBool>,
    /// The leases of asks admitted on this node (see `limits`).
    leases: Leases,
    routes: KnownRoutes,
}

impl NodeHandle {
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The slots the supervisor fills.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    pub fn resource_manager(&self) -> Option<ActorRef<ResourceManagerMsg>> {
        self.slots.resource_manager.get()
    }

    pub fn broadcaster(&self) -> Option<ActorRef<BroadcasterMsg>> {
        self.slots.broadcaster.get()
    }

    pub fn models(&self) -> Option<ActorRef<ModelsMsg>> {
        self.slots.models.get()
    }

    /// This node's mesh membership; None when the node runs alone.
    pub fn membership(&self) -> Option<ActorRef<MembershipMsg>> {
        self.slots.membership.get()
    }

    pub fn workers_up(&self) -> bool {
        self.workers_up.load(Ordering::SeqCst)
    }

    pub fn set_workers_up(&self, up: bool) {
        self.workers_up.store(up, Ordering::SeqCst);
    }

    /// The flag itself, for the ResourceManager's snapshots.
    pub fn workers_up_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.workers_up)
    }

    /// The scaling loop's routes as this node knows them.
    pub fn routes(&self) -> &KnownRoutes {
        &self.routes
    }

    /// The loaded models' holders.
    pub fn holders(&self) -> &Holders {
        &self.holders
    }

    /// The holder of `model`, if it is loaded here.
    pub fn holder(&self, model: &ModelId) -> Option<ActorRef<ModelHolderMsg>> {
        self.holders.get(model)
    }

    /// This node's snapshot, from its ResourceManager.
    pub async fn snapshot(&self) -> Option<NodeSnapshot> {
        let rm = self.resource_manager()?;
        ractor::call_t!(rm, ResourceManagerMsg::Snapshot, 2000).ok()
    }

    /// What the node has loaded, is loading and could not load.
    pub async fn models_status(&self) -> Option<ModelsStatus> {
        let m = self.models()?;
        ractor::call_t!(m, ModelsMsg::Status, 2000).ok()
    }

    /// Loads `model` here (admission checked), waiting up to `timeout` for the load.
    pub async fn load_model(&self, model: &ModelId, timeout: Duration) -> Result<(), LoadError> {
        let m = self.models().ok_or(LoadError::Unavailable)?;
        let model = model.clone();
        answer(
            m.call(|r| ModelsMsg::Load(model, Some(r)), Some(timeout))
                .await,
        )
    }

    /// Unloads `model` here.
    pub async fn unload_model(&self, model: &ModelId) -> Result<(), LoadError> {
        let m = self.models().ok_or(LoadError::Unavailable)?;
        let model = model.clone();
        let timeout = Duration::from_secs(10);
        answer(
            m.call(|r| ModelsMsg::Unload(model, Some(r)), Some(timeout))
                .await,
        )
    }
}

fn answer(
    r: Result<CallResult<Result<(), LoadError>>, MessagingErr<ModelsMsg>>,
) -> Result<(), LoadError> {
    match r {
        Ok(CallResult::Success(result)) => result,
        Ok(CallResult::Timeout) => Err(LoadError::TimedOut),
        _ => Err(LoadError::Unavailable),
    }
}
