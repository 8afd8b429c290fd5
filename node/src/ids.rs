//! Identifier newtypes and the names that must agree across nodes: task queues, workflow ids,
//! actor names and process groups.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }
    };
}

id_type!(
    /// A node of the cluster; also names its Temporal task queue.
    NodeId
);
id_type!(
    /// A model as users name it (`smollm2-135m`).
    ModelId
);
id_type!(
    /// One user request; it is also the id of its AskWorkflow.
    RequestId
);

impl RequestId {
    /// A fresh, unguessable request id.
    pub fn generate() -> Self {
        Self(format!(
            "{ASK_WORKFLOW_PREFIX}{}",
            uuid::Uuid::new_v4().simple()
        ))
    }
}

/// The cluster-wide task queue: workflows and activities any node may run.
pub const CLUSTER_TASK_QUEUE: &str = "orrery";

/// Every ask's workflow id starts with this; the rest is random.
pub const ASK_WORKFLOW_PREFIX: &str = "ask-";

/// The keyword search attribute that records an ask's user, so history is filtered by Temporal.
pub const USER_SEARCH_ATTRIBUTE: &str = "OrreryUser";

/// The task queue of activities that must run on one node (generate, load, unload).
pub fn node_task_queue(node: &NodeId) -> String {
    format!("orrery.node.{node}")
}

/// Registry names of a node's actors (local to the node).
pub mod actor_names {
    use super::ModelId;

    pub const SUPERVISOR: &str = "orrery.supervisor";
    pub const RESOURCE_MANAGER: &str = "orrery.resource_manager";
    pub const AUTOSCALER: &str = "orrery.autoscaler";
    pub const BROADCASTER: &str = "orrery.broadcaster";
    pub const WORKER_HOST: &str = "orrery.worker_host";
    pub const MEMBERSHIP: &str = "orrery.membership";

    pub fn model_holder(model: &ModelId) -> String {
        format!("orrery.model.{model}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_unique_and_prefixed() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with(ASK_WORKFLOW_PREFIX));
    }

    #[test]
    fn node_queue_names_the_node() {
        assert_eq!(node_task_queue(&NodeId::new("n1")), "orrery.node.n1");
    }
}
