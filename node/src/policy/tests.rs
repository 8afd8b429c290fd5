//! Table tests of each rule of the scaling policy: the builders they share, then single ticks,
//! tick sequences and the JSON payloads, one file each.

use super::*;

mod payloads;
mod sequences;
mod single_tick;

const GIB: u64 = 1 << 30;

fn spec(model: &str, gib: u64, min: u32, max: u32) -> ModelSpec {
    ModelSpec {
        model: model.into(),
        memory_bytes: gib * GIB,
        min_replicas: min,
        max_replicas: max,
        fallback: None,
    }
}

fn with_fallback(spec: ModelSpec) -> ModelSpec {
    ModelSpec {
        fallback: Some("cloud".into()),
        ..spec
    }
}

/// A node with `budget` GiB for models of which `used` are taken.
fn node(name: &str, budget: u64, used: u64, replicas: Vec<ReplicaLoad>) -> NodeView {
    NodeView {
        node: name.into(),
        memory_budget_bytes: budget * GIB,
        memory_used_bytes: used * GIB,
        draining: false,
        replicas,
    }
}

fn draining(n: NodeView) -> NodeView {
    NodeView {
        draining: true,
        ..n
    }
}

fn busy(model: &str, active: u32, queued: u32) -> ReplicaLoad {
    ReplicaLoad {
        model: model.into(),
        active,
        queued,
        max_sequences: 4,
        idle_since_ms: None,
        est_wait_ms: 0,
    }
}

fn idle(model: &str, since_ms: u64) -> ReplicaLoad {
    ReplicaLoad {
        idle_since_ms: Some(since_ms),
        ..busy(model, 0, 0)
    }
}

fn waiting(r: ReplicaLoad, est_wait_ms: u64) -> ReplicaLoad {
    ReplicaLoad { est_wait_ms, ..r }
}

fn view(now_ms: u64, nodes: Vec<NodeView>, models: Vec<ModelSpec>) -> ClusterView {
    ClusterView {
        now_ms,
        nodes,
        models,
        pending: BTreeMap::new(),
    }
}

fn pending(v: ClusterView, model: &str, n: u32) -> ClusterView {
    let mut v = v;
    v.pending.insert(model.into(), n);
    v
}

fn load(model: &str, node: &str) -> Directive {
    Directive::Load {
        model: model.into(),
        node: node.into(),
    }
}

fn unload(model: &str, node: &str) -> Directive {
    Directive::Unload {
        model: model.into(),
        node: node.into(),
    }
}

fn to_fallback(model: &str) -> Directive {
    Directive::SetRoute {
        model: model.into(),
        route: Route::Fallback {
            backend: "cloud".into(),
        },
    }
}

fn to_local(model: &str) -> Directive {
    Directive::SetRoute {
        model: model.into(),
        route: Route::Local,
    }
}

fn directives(log: &[Decision]) -> Vec<Directive> {
    log.iter().filter_map(|d| d.directive.clone()).collect()
}

fn notes(log: &[Decision]) -> Vec<&str> {
    log.iter()
        .filter(|d| d.directive.is_none())
        .map(|d| d.reason.as_str())
        .collect()
}

fn pin(model: &str, nodes: &[&str]) -> Overrides {
    Overrides {
        pinned: [(model.into(), nodes.iter().map(|n| n.to_string()).collect())].into(),
        ..Overrides::default()
    }
}

/// Two replicas of `m` (max 3) with `queued` asks each and a free node `c`.
fn two_replicas(now: u64, queued: u32) -> ClusterView {
    view(
        now,
        vec![
            node("a", 8, 4, vec![busy("m", 4, queued)]),
            node("b", 8, 4, vec![busy("m", 4, queued)]),
            node("c", 8, 0, vec![]),
        ],
        vec![spec("m", 4, 1, 3)],
    )
}

/// `m` at max 2 replicas, with a fallback, every replica estimating `wait_ms`.
fn at_max_waiting(now: u64, wait_ms: u64) -> ClusterView {
    view(
        now,
        vec![
            node("a", 8, 4, vec![waiting(busy("m", 4, 0), wait_ms)]),
            node("b", 8, 4, vec![waiting(busy("m", 4, 0), wait_ms)]),
            node("c", 8, 0, vec![]),
        ],
        vec![with_fallback(spec("m", 4, 1, 2))],
    )
}

/// One tick of a sequence: the view, the directives expected, fragments of expected reasons.
type Tick = (ClusterView, Vec<Directive>, Vec<&'static str>);

/// Ticks through a sequence, carrying the state like the workflow does.
struct Sim {
    policy: Policy,
    overrides: Overrides,
    state: PolicyState,
}

impl Sim {
    fn new() -> Self {
        Self {
            policy: Policy::default(),
            overrides: Overrides::default(),
            state: PolicyState::default(),
        }
    }

    fn tick(&mut self, view: &ClusterView) -> Vec<Decision> {
        let (log, state) = decide(view, &self.policy, &self.overrides, &self.state);
        self.state = state;
        log
    }

    /// Runs `(view, expected directives, fragments every expected reason must contain)`.
    fn run(&mut self, ticks: Vec<Tick>) {
        for (i, (view, expected, reasons)) in ticks.into_iter().enumerate() {
            let log = self.tick(&view);
            assert_eq!(
                directives(&log),
                expected,
                "tick {i} at {} ms: {log:#?}",
                view.now_ms
            );
            for fragment in reasons {
                assert!(
                    log.iter().any(|d| d.reason.contains(fragment)),
                    "tick {i}: no reason contains {fragment:?}: {log:#?}"
                );
            }
        }
    }
}
