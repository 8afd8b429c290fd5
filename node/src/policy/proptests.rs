//! Property tests: random clusters driven through random tick sequences, each tick's directives
//! applied to the cluster before the next, and the invariants of the policy checked every tick.

use super::*;
use proptest::prelude::*;

const GIB: u64 = 1 << 30;
const MODELS: usize = 4;
const NODES: usize = 5;

/// The cluster the simulation carries between ticks.
#[derive(Clone, Debug)]
struct World {
    policy: Policy,
    overrides: Overrides,
    models: Vec<ModelSpec>,
    nodes: Vec<SimNode>,
}

#[derive(Clone, Debug)]
struct SimNode {
    name: String,
    budget: u64,
    draining: bool,
    /// Model and the time it became idle (`None` while busy).
    replicas: Vec<(String, Option<u64>)>,
}

/// One tick's randomness: the clock step, the admin's pause, and the load on each replica.
#[derive(Clone, Debug)]
struct Step {
    dt_ms: u64,
    paused: bool,
    /// Replica `k` of the view takes `loads[k % len]`: (active, queued, idle, est. wait).
    loads: Vec<(u32, u32, bool, u64)>,
    pending: Vec<Option<u32>>,
}

impl World {
    fn memory_of(&self, model: &str) -> u64 {
        self.models
            .iter()
            .find(|s| s.model == model)
            .map_or(0, |s| s.memory_bytes)
    }

    fn view(&mut self, now: u64, step: &Step) -> ClusterView {
        let mut k = 0;
        let mut nodes = Vec::new();
        for i in 0..self.nodes.len() {
            let mut replicas = Vec::new();
            for (model, idle_since) in &mut self.nodes[i].replicas {
                let (active, queued, idle, est_wait_ms) = step.loads[k % step.loads.len()];
                k += 1;
                *idle_since = if idle {
                    Some(idle_since.unwrap_or(now))
                } else {
                    None
                };
                replicas.push(ReplicaLoad {
                    model: model.clone(),
                    active: if idle { 0 } else { active },
                    queued: if idle { 0 } else { queued },
                    max_sequences: 4,
                    idle_since_ms: *idle_since,
                    est_wait_ms,
                });
            }
            let n = &self.nodes[i];
            nodes.push(NodeView {
                node: n.name.clone(),
                memory_budget_bytes: n.budget,
                memory_used_bytes: n.replicas.iter().map(|(m, _)| self.memory_of(m)).sum(),
                draining: n.draining,
                replicas,
            });
        }
        let pending = self
            .models
            .iter()
            .zip(&step.pending)
            .filter_map(|(s, p)| p.map(|p| (s.model.clone(), p)))
            .collect();
        ClusterView {
            now_ms: now,
            nodes,
            models: self.models.clone(),
            pending,
        }
    }

    fn apply(&mut self, log: &[Decision], now: u64) {
        for d in log {
            match &d.directive {
                Some(Directive::Load { model, node }) => {
                    let n = self.nodes.iter_mut().find(|n| &n.name == node);
                    n.expect("load on a known node")
                        .replicas
                        .push((model.clone(), Some(now)));
                }
                Some(Directive::Unload { model, node }) => {
                    let n = self.nodes.iter_mut().find(|n| &n.name == node);
                    n.expect("unload on a known node")
                        .replicas
                        .retain(|(m, _)| m != model);
                }
                _ => {}
            }
        }
    }
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        0.5f64..4.0,
        1u32..=3,
        0u64..=120_000,
        0u64..=60_000,
        0u64..=60_000,
        1u32..=3,
    )
        .prop_map(|(q, up, idle, cool, wait, clear)| Policy {
            scale_up_queue_per_replica: q,
            scale_up_ticks: up,
            idle_keepalive_ms: idle,
            cooldown_ms: cool,
            fallback_wait_ms: wait,
            fallback_clear_ticks: clear,
        })
}

fn world() -> impl Strategy<Value = World> {
    let models = prop::collection::vec((1u64..=6, 0u32..=2, 0u32..=4, any::<bool>()), 1..=MODELS);
    // Budget, draining, and a mask of the models it holds at the start (as memory allows).
    let nodes = prop::collection::vec(
        (0u64..=16, prop::bool::weighted(0.2), any::<u8>()),
        1..=NODES,
    );
    // Per node: drained by the admin. Per model: a replica override, a mask of pinned nodes.
    let drained = prop::collection::vec(prop::bool::weighted(0.15), NODES);
    let per_model = prop::collection::vec(
        (
            prop::option::weighted(0.2, 0u32..=4),
            prop::bool::weighted(0.3),
            any::<u8>(),
        ),
        MODELS,
    );
    (policy(), models, nodes, drained, per_model).prop_map(
        |(policy, models, nodes, drained, per_model)| {
            let models: Vec<ModelSpec> = models
                .into_iter()
                .enumerate()
                .map(|(i, (gib, min, max, fallback))| ModelSpec {
                    model: format!("m{i}"),
                    memory_bytes: gib * GIB,
                    min_replicas: min,
                    max_replicas: max,
                    fallback: fallback.then(|| "cloud".to_string()),
                })
                .collect();
            let nodes: Vec<SimNode> = nodes
                .into_iter()
                .enumerate()
                .map(|(i, (gib, draining, mask))| {
                    let mut used = 0;
                    let mut replicas = Vec::new();
                    for (j, s) in models.iter().enumerate() {
                        if mask & (1 << j) != 0 && used + s.memory_bytes <= gib * GIB {
                            used += s.memory_bytes;
                            replicas.push((s.model.clone(), None));
                        }
                    }
                    SimNode {
                        name: format!("n{i}"),
                        budget: gib * GIB,
                        draining,
                        replicas,
                    }
                })
                .collect();
            let mut overrides = Overrides::default();
            for (n, &d) in nodes.iter().zip(&drained) {
                if d {
                    overrides.drained.insert(n.name.clone());
                }
            }
            for (s, (replicas, pinned, mask)) in models.iter().zip(per_model) {
                if let Some(r) = replicas {
                    overrides.replicas.insert(s.model.clone(), r);
                }
                if pinned {
                    let on = nodes
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0);
                    let on = on.map(|(_, n)| n.name.clone()).collect();
                    overrides.pinned.insert(s.model.clone(), on);
                }
            }
            World {
                policy,
                overrides,
                models,
                nodes,
            }
        },
    )
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        0u64..=40_000,
        prop::bool::weighted(0.1),
        prop::collection::vec(
            (
                0u32..=4,
                0u32..=12,
                prop::bool::weighted(0.4),
                0u64..=60_000,
            ),
            8,
        ),
        prop::collection::vec(prop::option::weighted(0.3, 0u32..=5), MODELS),
    )
        .prop_map(|(dt_ms, paused, loads, pending)| Step {
            dt_ms,
            paused,
            loads,
            pending,
        });
    prop::collection::vec(step, 1..=25)
}

/// The invariants of one tick, given what the test tracked of earlier ticks.
fn check_tick(
    view: &ClusterView,
    world: &World,
    overrides: &Overrides,
    log: &[Decision],
    (state, next): (&PolicyState, &PolicyState),
    last_change: &mut BTreeMap<String, u64>,
) -> Result<(), TestCaseError> {
    let now = view.now_ms;
    let excluded = |n: &NodeView| n.draining || overrides.drained.contains(&n.node);
    let node = |name: &str| view.nodes.iter().find(|n| n.node == name);
    let holds = |n: &NodeView, m: &str| n.replicas.iter().any(|r| r.model == m);
    let pinned = |m: &str, n: &str| {
        overrides
            .pinned
            .get(m)
            .is_some_and(|p| p.iter().any(|x| x == n))
    };
    let directives: Vec<&Directive> = log.iter().filter_map(|d| d.directive.as_ref()).collect();
    prop_assert!(log.iter().all(|d| d.at_ms == now));
    if overrides.paused {
        prop_assert!(directives.is_empty(), "paused: {:?}", directives);
    }

    // Loads fit the memory left on their node, counting every load of this tick there.
    let mut loaded: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &directives {
        match d {
            Directive::Load { model, node: name } => {
                let n = node(name).expect("a load names a node of the view");
                prop_assert!(!excluded(n), "load onto excluded {}", name);
                prop_assert!(
                    !holds(n, model),
                    "load of {} onto its holder {}",
                    model,
                    name
                );
                let total = loaded.entry(name).or_default();
                *total += world.memory_of(model);
                let free = n.memory_budget_bytes.saturating_sub(n.memory_used_bytes);
                prop_assert!(*total <= free, "{} over budget on {}", model, name);
            }
            Directive::Unload { model, node: name } => {
                let n = node(name).expect("an unload names a node of the view");
                prop_assert!(!excluded(n), "unload from excluded {}", name);
                prop_assert!(
                    holds(n, model),
                    "unload of {} from {}, not holding it",
                    model,
                    name
                );
                prop_assert!(
                    !pinned(model, name),
                    "unload of pinned {} on {}",
                    model,
                    name
                );
            }
            Directive::SetRoute { model, route } => {
                let spec = view
                    .models
                    .iter()
                    .find(|s| &s.model == model)
                    .expect("a known model");
                if let Route::Fallback { backend } = route {
                    prop_assert_eq!(spec.fallback.as_ref(), Some(backend));
                }
            }
        }
    }

    for spec in &view.models {
        let m = spec.model.as_str();
        let (lo, hi) = match overrides.replicas.get(m) {
            Some(&n) => (n, n),
            None => (spec.min_replicas, spec.max_replicas.max(spec.min_replicas)),
        };
        let count = view
            .nodes
            .iter()
            .filter(|n| !excluded(n) && holds(n, m))
            .count() as u32;
        let is = |d: &&&Directive, load: bool| match d {
            Directive::Load { model, .. } => load && model == m,
            Directive::Unload { model, .. } => !load && model == m,
            Directive::SetRoute { .. } => false,
        };
        let loads = directives.iter().filter(|d| is(d, true)).count() as u32;
        let unloads = directives.iter().filter(|d| is(d, false)).count() as u32;
        prop_assert!(loads + unloads <= 1, "{} changed twice in one tick", m);

        let cooling = last_change
            .get(m)
            .is_some_and(|&t| now - t < world.policy.cooldown_ms);
        if loads + unloads > 0 {
            prop_assert!(
                !cooling,
                "{} changed at {} within cooldown of {:?}",
                m,
                now,
                last_change.get(m)
            );
            last_change.insert(m.to_string(), now);
        }

        // Never out of the bounds, and from outside only towards them.
        let after = count + loads - unloads;
        prop_assert!(
            after >= lo.min(count),
            "{}: {} -> {} under min {}",
            m,
            count,
            after,
            lo
        );
        prop_assert!(
            after <= hi.max(count),
            "{}: {} -> {} over max {}",
            m,
            count,
            after,
            hi
        );

        // Below min (or asks with no replica), free of cooldown: loaded unless nothing fits.
        // Whether a node could still take a replica once this tick's loads are placed.
        let fits = view.nodes.iter().any(|n| {
            let free = n.memory_budget_bytes.saturating_sub(n.memory_used_bytes);
            let taken = loaded.get(n.node.as_str()).copied().unwrap_or(0);
            !excluded(n) && !holds(n, m) && free - taken >= spec.memory_bytes
        });
        let pending = view.pending.get(m).copied().unwrap_or(0);
        let needs = count < lo || (count == 0 && pending > 0 && hi > 0);
        if needs && !overrides.paused && !cooling && loads == 0 {
            prop_assert!(!fits, "{} needs a replica and a node fits: {:?}", m, log);
        }
        // Above max, free of cooldown, an unpinned replica: unloaded.
        let unpinned = view
            .nodes
            .iter()
            .any(|n| !excluded(n) && holds(n, m) && !pinned(m, &n.node));
        if count > hi && unpinned && !overrides.paused && !cooling {
            prop_assert_eq!(unloads, 1, "{} above max", m);
        }

        // The carried route is the last one set, and a model only leaves for its fallback
        // when no capacity can be added: at max, or no node fits.
        let mut route = state.route(m).clone();
        for d in &directives {
            if let Directive::SetRoute { model, route: r } = d
                && model == m
            {
                if route == Route::Local {
                    prop_assert!(
                        loads == 0 && (count >= hi || !fits),
                        "{} left: {:?}",
                        m,
                        log
                    );
                }
                route = r.clone();
            }
        }
        prop_assert_eq!(next.route(m), &route);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ticks_keep_the_invariants(mut world in world(), steps in steps()) {
        let mut state = PolicyState::default();
        let mut last_change = BTreeMap::new();
        let mut now = 0;
        for step in &steps {
            now += step.dt_ms;
            let overrides = Overrides { paused: step.paused, ..world.overrides.clone() };
            let view = world.view(now, step);
            let (log, next) = decide(&view, &world.policy, &overrides, &state);

            // Deterministic, and blind to the order of nodes and models in the view.
            let again = decide(&view, &world.policy, &overrides, &state);
            prop_assert_eq!(&again, &(log.clone(), next.clone()));
            let mut reordered = view.clone();
            reordered.nodes.reverse();
            reordered.models.reverse();
            let again = decide(&reordered, &world.policy, &overrides, &state);
            prop_assert_eq!(&again, &(log.clone(), next.clone()));

            check_tick(&view, &world, &overrides, &log, (&state, &next), &mut last_change)?;

            // What crosses Temporal comes back the same.
            let json = serde_json::to_string(&next).expect("state serialises");
            prop_assert_eq!(&serde_json::from_str::<PolicyState>(&json).expect("and back"), &next);

            world.apply(&log, now);
            state = next;
        }
    }
}
