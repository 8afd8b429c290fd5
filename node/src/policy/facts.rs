//! The facts one tick gathers before it applies the rules: each node's capacity, each model's
//! replicas and load, and the words its decisions are written in.

use super::{
    ClusterView, ModelSpec, ModelState, NodeView, Note, Overrides, Policy, PolicyState, ReplicaLoad,
};
use std::collections::{BTreeMap, BTreeSet};

pub(super) struct Node<'a> {
    pub(super) view: &'a NodeView,
    /// Draining, or drained by the admin: no capacity, no loads.
    pub(super) excluded: bool,
    /// Free memory after the loads this tick has already placed here.
    pub(super) free: u64,
}

impl Node<'_> {
    pub(super) fn name(&self) -> &str {
        &self.view.node
    }
}

/// One model's facts for this tick, and what the tick did to it.
pub(super) struct Model<'a> {
    pub(super) spec: &'a ModelSpec,
    /// On nodes that count, one per node, sorted by node name.
    pub(super) replicas: Vec<(&'a str, &'a ReplicaLoad)>,
    /// Every node reporting the model, counted or not: never a load target.
    pub(super) holders: BTreeSet<&'a str>,
    pub(super) pinned: BTreeSet<&'a str>,
    pub(super) lo: u32,
    pub(super) hi: u32,
    /// The bounds come from an admin replica override.
    pub(super) overridden: bool,
    pub(super) pending: u32,
    /// Queued on replicas that count, plus pending.
    pub(super) queue: u64,
    /// The smallest wait of its replicas; `None` without replicas.
    pub(super) wait_ms: Option<u64>,
    /// Within the cooldown of its last load or unload.
    pub(super) cooling: bool,
    pub(super) prev: ModelState,
    pub(super) next: ModelState,
    /// A load or unload was decided this tick.
    pub(super) changed: bool,
    pub(super) loaded: bool,
    pub(super) note: Option<(Note, String)>,
}

impl Model<'_> {
    pub(super) fn count(&self) -> u32 {
        u32::try_from(self.replicas.len()).unwrap_or(u32::MAX)
    }

    /// Asks waiting and not one replica to serve them.
    pub(super) fn starving(&self) -> bool {
        self.count() == 0 && self.queue > 0
    }

    pub(super) fn per_replica(&self) -> f64 {
        match self.count() {
            0 if self.queue > 0 => f64::INFINITY,
            0 => 0.0,
            n => self.queue as f64 / f64::from(n),
        }
    }

    pub(super) fn lo_text(&self) -> String {
        let kind = if self.overridden { "override" } else { "min" };
        format!("{kind} {}", self.lo)
    }

    pub(super) fn hi_text(&self) -> String {
        let kind = if self.overridden { "override" } else { "max" };
        format!("{kind} {} {}", self.hi, plural(self.hi, "replica"))
    }

    pub(super) fn queue_text(&self) -> String {
        match self.pending {
            0 => format!("queue {}", self.queue),
            p => format!("queue {} ({p} pending)", self.queue),
        }
    }
}

/// The nodes sorted by name, the first of any repeated name kept.
pub(super) fn nodes<'a>(view: &'a ClusterView, overrides: &Overrides) -> Vec<Node<'a>> {
    let mut by_name: BTreeMap<&str, &NodeView> = BTreeMap::new();
    for n in &view.nodes {
        by_name.entry(&n.node).or_insert(n);
    }
    by_name
        .into_values()
        .map(|view| Node {
            view,
            excluded: view.draining || overrides.drained.contains(&view.node),
            free: view
                .memory_budget_bytes
                .saturating_sub(view.memory_used_bytes),
        })
        .collect()
}

/// The models of the config sorted by name, with their facts and counters for this tick.
pub(super) fn models<'a>(
    view: &'a ClusterView,
    overrides: &'a Overrides,
    state: &PolicyState,
    policy: &Policy,
    nodes: &[Node<'a>],
    now: u64,
) -> Vec<Model<'a>> {
    let mut specs: BTreeMap<&str, &ModelSpec> = BTreeMap::new();
    for s in &view.models {
        specs.entry(&s.model).or_insert(s);
    }
    specs
        .into_values()
        .map(|spec| {
            let mut replicas = Vec::new();
            let mut holders = BTreeSet::new();
            for n in nodes {
                if let Some(r) = n.view.replicas.iter().find(|r| r.model == spec.model) {
                    let name = n.view.node.as_str();
                    holders.insert(name);
                    if !n.excluded {
                        replicas.push((name, r));
                    }
                }
            }
            let (lo, hi, overridden) = match overrides.replicas.get(&spec.model) {
                Some(&n) => (n, n, true),
                None => (
                    spec.min_replicas,
                    spec.max_replicas.max(spec.min_replicas),
                    false,
                ),
            };
            let pending = view.pending.get(&spec.model).copied().unwrap_or(0);
            let queued: u64 = replicas.iter().map(|(_, r)| u64::from(r.queued)).sum();
            let prev = state.models.get(&spec.model).cloned().unwrap_or_default();
            let cooling = prev
                .last_change_ms
                .is_some_and(|t| now.saturating_sub(t) < policy.cooldown_ms);
            let mut m = Model {
                spec,
                wait_ms: replicas.iter().map(|(_, r)| r.est_wait_ms).min(),
                replicas,
                holders,
                pinned: overrides
                    .pinned
                    .get(&spec.model)
                    .map(|nodes| nodes.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
                lo,
                hi,
                overridden,
                pending,
                queue: queued + u64::from(pending),
                cooling,
                next: prev.clone(),
                prev,
                changed: false,
                loaded: false,
                note: None,
            };
            // NaN compares false: a threshold that is not a number makes nothing hot.
            let hot = m.starving() || m.per_replica() > policy.scale_up_queue_per_replica;
            let clear = m.wait_ms.is_some_and(|w| w <= policy.fallback_wait_ms);
            m.next.hot_ticks = if hot {
                m.prev.hot_ticks.saturating_add(1)
            } else {
                0
            };
            m.next.clear_ticks = if clear {
                m.prev.clear_ticks.saturating_add(1)
            } else {
                0
            };
            m
        })
        .collect()
}

pub(super) fn next_state(paused: bool, models: Vec<Model>) -> PolicyState {
    PolicyState {
        paused,
        models: models
            .into_iter()
            .map(|m| (m.spec.model.clone(), m.next))
            .collect(),
    }
}

pub(super) fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

pub(super) fn replicas(n: u32) -> String {
    format!("{n} {}", plural(n, "replica"))
}

pub(super) fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1u32 << 20))
}

pub(super) fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// For reasons: 4.5 stays 4.5, 3.3333 becomes 3.33.
pub(super) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
