//! The pure scaling decision function: from one snapshot of the cluster, the admin's overrides and
//! what earlier ticks left behind, the directives of this tick and the reason for each.
//!
//! `ResourceManagementWorkflow` calls [`decide`] once per tick and carries the returned
//! [`PolicyState`] to the next tick (and across continue-as-new). Nothing here reads a clock, a
//! random source or the network: time is `ClusterView::now_ms` from the workflow's deterministic
//! clock, and every collection is iterated in sorted order, so the same inputs give the same
//! outputs on replay.
//!
//! # Rules, in the order a tick applies them
//! - A model's replicas are the nodes holding it that are neither draining (`NodeView::draining`)
//!   nor drained by the admin (`Overrides::drained`); such nodes are no capacity and never receive
//!   a load or an unload (taking models off them is the node's own drain).
//! - Bounds are `[min_replicas, max(min_replicas, max_replicas)]`, or `[n, n]` for an admin replica
//!   override `n`; memory clamps the override: loads stop, with a note, when no node fits.
//! - At most one load or unload per model per tick, and none within `cooldown_ms` of the last one.
//! - Below the minimum → load. Above the maximum → unload the least-loaded unpinned replica.
//! - Asks waiting (`ClusterView::pending`) for a model with no replica → load at once.
//! - Queue per replica (queued + pending) above `scale_up_queue_per_replica` for
//!   `scale_up_ticks` consecutive ticks → load; the count restarts after each scale-up.
//! - Loads go to a node that is not excluded, does not hold the model and has
//!   `budget - used - (what this tick already loaded there) >= memory_bytes`: pinned nodes first,
//!   then most free memory, then name. Minimums are served before scale-ups, hottest first.
//! - A replica idle for at least `idle_keepalive_ms` is unloaded (the longest idle first) while the
//!   model has more than its minimum, is not hot, and the replica is not pinned.
//! - Route to the model's fallback backend when its wait exceeds `fallback_wait_ms` and no
//!   capacity can be added (at the maximum, or no node has the memory). The wait is the *smallest*
//!   `est_wait_ms` of its replicas (placement sends a new ask to the least-loaded one), and
//!   unbounded when asks are pending with no replica. Back to local after `fallback_clear_ticks`
//!   consecutive ticks with replicas whose wait is within the bound, or at once when the model has
//!   no replica but one could be loaded (nothing local to measure; the pending asks then load it),
//!   or when the fallback backend is removed from the model's spec.
//! - Paused: no directives; counters still advance; one note when pausing and one when resuming.
//! - Non-actions an operator wants to see (hot but at the maximum, no node with the memory, above
//!   the maximum but every replica pinned) are noted when they begin, not every tick, so the
//!   bounded decision log keeps its room for actions. Cooldown waits are not noted.
//!
//! Memory freed by an unload is not reused in the same tick (unloads take time), and a load
//! issued last tick may not show in this tick's snapshot yet: the cooldown keeps the policy from
//! loading the same model twice, and the node's Autoscaler refuses loads beyond its budget.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

mod decide;
mod facts;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use decide::decide;

/// A node's name, as the cluster knows it (the caller converts from its id type).
pub type NodeName = String;
/// A model's name, as users ask for it.
pub type ModelName = String;
/// A remote backend's name, from the cluster config.
pub type BackendName = String;

/// The tunable thresholds of the scaling loop (`PUT /admin/policy`); missing fields keep their
/// defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Queue depth per replica above which a model is hot.
    pub scale_up_queue_per_replica: f64,
    /// Consecutive hot ticks before a scale-up.
    pub scale_up_ticks: u32,
    /// How long a replica must be idle (nothing active or queued) before it may be unloaded.
    pub idle_keepalive_ms: u64,
    /// The quiet time after a load or unload of a model before its next one.
    pub cooldown_ms: u64,
    /// Estimated wait above which a model with no capacity to add goes to its fallback backend.
    pub fallback_wait_ms: u64,
    /// Consecutive ticks with the wait within the bound before routing back to local.
    pub fallback_clear_ticks: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            scale_up_queue_per_replica: 2.0,
            scale_up_ticks: 2,
            idle_keepalive_ms: 300_000,
            cooldown_ms: 30_000,
            fallback_wait_ms: 20_000,
            fallback_clear_ticks: 3,
        }
    }
}

/// Why an admin's policy was refused; every problem at once.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid policy: {}", .0.join("; "))]
pub struct InvalidPolicy(pub Vec<String>);

impl Policy {
    /// Checks what [`decide`] cannot make sense of. `decide` itself stays total: it reads tick
    /// counts of 0 as 1, and a threshold that is not a number makes no model hot.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let mut problems = Vec::new();
        if !(self.scale_up_queue_per_replica.is_finite() && self.scale_up_queue_per_replica >= 0.0)
        {
            problems.push(format!(
                "scale_up_queue_per_replica must be a finite number >= 0, not {}",
                self.scale_up_queue_per_replica
            ));
        }
        if self.scale_up_ticks == 0 {
            problems.push("scale_up_ticks must be at least 1".to_string());
        }
        if self.fallback_clear_ticks == 0 {
            problems.push("fallback_clear_ticks must be at least 1".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidPolicy(problems))
        }
    }
}

/// A model the cluster may serve, from the cluster config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    pub model: ModelName,
    /// Memory one replica takes on a node.
    pub memory_bytes: u64,
    pub min_replicas: u32,
    /// Read as `max(min_replicas, max_replicas)`.
    pub max_replicas: u32,
    /// The remote backend that takes the model's asks when local capacity cannot keep up.
    #[serde(default)]
    pub fallback: Option<BackendName>,
}

/// One loaded model on one node, from that node's ResourceManager.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicaLoad {
    pub model: ModelName,
    /// Sequences generating now.
    pub active: u32,
    /// Asks accepted by this replica and waiting for a sequence slot.
    pub queued: u32,
    pub max_sequences: u32,
    /// Since when the replica has had nothing active or queued; `None` while busy.
    pub idle_since_ms: Option<u64>,
    /// The node's estimate of how long a new ask would wait here before its first token.
    pub est_wait_ms: u64,
}

/// One node's snapshot. A node reports each model at most once; later entries are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node: NodeName,
    /// What models may take on this node.
    pub memory_budget_bytes: u64,
    /// What loaded models take now.
    pub memory_used_bytes: u64,
    /// The node is leaving (shutdown or admin drain): no capacity, no loads.
    pub draining: bool,
    pub replicas: Vec<ReplicaLoad>,
}

/// What the scaling loop sees on one tick. Node names are unique; a repeated node or model
/// spec is ignored after its first occurrence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The workflow's deterministic clock.
    pub now_ms: u64,
    pub nodes: Vec<NodeView>,
    pub models: Vec<ModelSpec>,
    /// Asks waiting for a model that no replica has accepted (typically: it has no replica).
    /// They count as queue depth, and make a model with no replica need one now.
    #[serde(default)]
    pub pending: BTreeMap<ModelName, u32>,
}

/// The admin's signals to the scaling loop.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Overrides {
    /// No loads, unloads or route changes at all.
    pub paused: bool,
    /// Model → a fixed replica count, replacing both of its bounds (memory still applies).
    pub replicas: BTreeMap<ModelName, u32>,
    /// Model → nodes where it is never unloaded and which are chosen first for its loads.
    /// A pin alone loads nothing: combine it with a replica count for that.
    pub pinned: BTreeMap<ModelName, Vec<NodeName>>,
    /// Nodes that are no capacity and never receive a load, as if draining.
    pub drained: BTreeSet<NodeName>,
}

/// Where a model's asks go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Route {
    /// To the cluster's own replicas.
    #[default]
    Local,
    /// To a remote backend from the cluster config.
    Fallback { backend: BackendName },
}

/// One thing for the scaling workflow to carry out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Directive {
    /// An activity on `node`'s queue: load the model there.
    Load { model: ModelName, node: NodeName },
    /// An activity on `node`'s queue: unload the model there.
    Unload { model: ModelName, node: NodeName },
    /// A change of the model's route, held in the workflow and read by placement.
    SetRoute { model: ModelName, route: Route },
}

impl Directive {
    pub fn model(&self) -> &str {
        match self {
            Directive::Load { model, .. }
            | Directive::Unload { model, .. }
            | Directive::SetRoute { model, .. } => model,
        }
    }
}

/// One entry of the decision log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: u64,
    /// `None` for a cluster-wide note (pause, resume).
    pub model: Option<ModelName>,
    /// `None` for a noted non-action.
    pub directive: Option<Directive>,
    /// What drove it, with the numbers.
    pub reason: String,
}

/// What one tick hands the next.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyState {
    /// Whether the last tick was paused (to note the pause and the resume once).
    pub paused: bool,
    /// Per model of the cluster config; models that leave the config are dropped.
    pub models: BTreeMap<ModelName, ModelState>,
}

impl PolicyState {
    /// The route the policy has set for `model` (local unless it set a fallback).
    pub fn route(&self, model: &str) -> &Route {
        const LOCAL: &Route = &Route::Local;
        self.models.get(model).map_or(LOCAL, |m| &m.route)
    }
}

/// The counters and memory of one model between ticks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelState {
    /// Consecutive ticks with the queue per replica above the threshold.
    pub hot_ticks: u32,
    /// Consecutive ticks with replicas whose wait is within the fallback bound.
    pub clear_ticks: u32,
    /// When the last load or unload of the model was decided.
    pub last_change_ms: Option<u64>,
    pub route: Route,
    /// The non-action noted last and still standing, so it is noted once.
    pub note: Option<Note>,
}

/// The kinds of noted non-action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Note {
    /// Hot (or asks waiting with no replica) but at the maximum replica count.
    AtMax,
    /// A load is wanted but no node has the memory.
    NoMemory,
    /// Above the maximum but every replica is pinned.
    AllPinned,
}
