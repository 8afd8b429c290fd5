//! What nodes report of themselves: the input of placement, the scaling policy and the cluster
//! view.

use super::ids::{ModelId, NodeId};
use serde::{Deserialize, Serialize};

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
    /// The conversations this model's prefix cache holds here ([`super::PrefixMark`] hashes):
    /// what cache-aware placement looks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cached_marks: Vec<u64>,
}

impl ModelLoad {
    /// A synthetic model's load with 4 sequences (tests of placement and queues).
    #[cfg(test)]
    pub fn test(model: &str, active: u32, queued: u32) -> Self {
        ModelLoad {
            model: ModelId::new(model),
            kind: "synthetic".into(),
            active,
            queued,
            max_sequences: 4,
            memory_bytes: 0,
            idle_since_ms: None,
            est_wait_ms: 0,
            cached_marks: Vec::new(),
        }
    }
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

impl NodeRow {
    /// The row as anyone who may use the node sees it: without the node's mesh address (that is
    /// for operators: the admin API shows it).
    pub fn public(mut self) -> Self {
        self.addr = None;
        self
    }
}

/// One row of the cluster view: a node that answers, or one that was seen and went away.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeRow {
    pub node: String,
    /// up | draining | joining | down
    pub state: String,
    pub addr: Option<String>,
    pub cpu_percent: Option<f32>,
    pub memory_available_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub models: Vec<ModelLoad>,
}
