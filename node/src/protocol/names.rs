//! The names that must agree across nodes and processes: Temporal task queues, workflow ids and
//! queries, search attributes, actor names and process groups. One function or constant each;
//! nothing else in the crate builds or parses these strings.

use super::ids::{ModelId, NodeId};

/// The cluster-wide task queue: workflows and activities any node may run.
pub const CLUSTER_TASK_QUEUE: &str = "orrery";

/// The task queue of activities that must run on one node (generate, load, unload).
pub fn node_task_queue(node: &NodeId) -> String {
    format!("orrery.node.{node}")
}

pub use super::ids::ASK_WORKFLOW_PREFIX;

/// The id of the cluster's one scaling workflow.
pub const RESOURCE_WORKFLOW_ID: &str = "orrery-resource-management";

/// The query of the scaling workflow that answers where each model's asks go now.
pub const ROUTES_QUERY: &str = "routes";

/// The keyword search attribute that records an ask's user, so history is filtered by Temporal.
pub const USER_SEARCH_ATTRIBUTE: &str = "OrreryUser";

/// Registry names of a node's actors (local to the node; for logs and ractor's own tooling —
/// the node finds its actors through `actors::NodeHandle`, never by name).
pub mod actor_names {
    use super::ModelId;

    pub const SUPERVISOR: &str = "orrery.supervisor";
    pub const RESOURCE_MANAGER: &str = "orrery.resource_manager";
    pub const MODELS: &str = "orrery.models";
    pub const BROADCASTER: &str = "orrery.broadcaster";
    pub const WORKER_HOST: &str = "orrery.worker_host";
    pub const MEMBERSHIP: &str = "orrery.membership";
    pub const LIMIT_KEEPER: &str = "orrery.limit_keeper";

    const MODEL_HOLDER_PREFIX: &str = "orrery.model.";

    /// The ModelHolder of `model`.
    pub fn model_holder(model: &ModelId) -> String {
        format!("{MODEL_HOLDER_PREFIX}{model}")
    }

    /// The model a ModelHolder's name names, or None for any other actor.
    pub fn model_of_holder(name: &str) -> Option<ModelId> {
        name.strip_prefix(MODEL_HOLDER_PREFIX).map(ModelId::new)
    }
}

/// Process groups (ractor `pg`, visible across the mesh) through which nodes reach each other.
pub mod groups {
    use super::NodeId;

    /// Every node's ResourceManager.
    pub const RESOURCES: &str = "orrery.resources";

    /// The ResourceManager of one node.
    pub fn resources(node: &NodeId) -> String {
        format!("orrery.resources.{node}")
    }

    /// The Broadcaster of one node (where its users' live events go).
    pub fn broadcast(node: &NodeId) -> String {
        format!("orrery.broadcast.{node}")
    }

    const LIMITS_PREFIX: &str = "orrery.limits.";

    /// The LimitKeeper of one node (per-user counters); the live ones choose each user's keeper.
    pub fn limits(node: &NodeId) -> String {
        format!("{LIMITS_PREFIX}{node}")
    }

    /// The node whose LimitKeeper group this is, or None for any other group.
    pub fn node_of_limits(group: &str) -> Option<NodeId> {
        group.strip_prefix(LIMITS_PREFIX).map(NodeId::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_queue_names_the_node() {
        assert_eq!(node_task_queue(&NodeId::new("n1")), "orrery.node.n1");
    }

    #[test]
    fn a_holder_name_round_trips_and_nothing_else_parses() {
        let m = ModelId::new("smollm2-135m");
        let name = actor_names::model_holder(&m);
        assert_eq!(actor_names::model_of_holder(&name), Some(m));
        assert_eq!(actor_names::model_of_holder(actor_names::MODELS), None);
    }
}
