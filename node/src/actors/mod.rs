//! The node's actors: one supervision tree per node (see ARCHITECTURE.md).

pub mod autoscaler;
pub mod broadcaster;
pub mod model_holder;
pub mod resource_manager;
pub mod supervisor;
pub mod worker_host;

use ractor::{ActorRef, Message};

/// Finds a local actor by its registry name. Callers look actors up at the moment of use, so a
/// restarted actor (new `ActorRef`, same name) is found without anyone holding a stale reference.
pub fn lookup<M: Message>(name: &str) -> Option<ActorRef<M>> {
    ractor::registry::where_is(name).map(ActorRef::from)
}
