//! One tick of the scaling loop: the body of [`decide`] and the facts it gathers per node and
//! per model before applying the rules of the module doc.

use super::{
    ClusterView, Decision, Directive, ModelSpec, ModelState, NodeView, Note, Overrides, Policy,
    PolicyState, ReplicaLoad, Route,
};
use std::collections::{BTreeMap, BTreeSet};

/// The directives and notes of one tick, and the state for the next one.
///
/// Total and deterministic: any view, policy and overrides give an answer, the same one every
/// time, whatever the order of nodes and models in the view.
pub fn decide(
    view: &ClusterView,
    policy: &Policy,
    overrides: &Overrides,
    state: &PolicyState,
) -> (Vec<Decision>, PolicyState) {
    let mut tick = Tick {
        now: view.now_ms,
        policy,
        nodes: nodes(view, overrides),
        log: Vec::new(),
    };
    let mut models = models(view, overrides, state, &tick);

    if overrides.paused {
        if !state.paused {
            tick.note(
                None,
                "autoscaling paused by the admin: no loads, unloads or route changes until resumed",
            );
        }
        return (tick.log, next_state(true, models));
    }
    if state.paused {
        tick.note(None, "autoscaling resumed");
    }

    // Minimums first, so that a scale-up never takes the memory a minimum needs.
    for m in models.iter_mut().filter(|m| m.count() < m.lo) {
        let why = format!("{} < {}", replicas(m.count()), m.lo_text());
        tick.load(m, why);
    }

    // Then scale-ups, the models with asks and no replica first, then the hottest.
    let scale_up_ticks = policy.scale_up_ticks.max(1);
    let mut hot: Vec<&mut Model> = models
        .iter_mut()
        .filter(|m| m.count() >= m.lo && (m.starving() || m.next.hot_ticks >= scale_up_ticks))
        .collect();
    hot.sort_by(|a, b| {
        (a.count() > 0)
            .cmp(&(b.count() > 0))
            .then(b.per_replica().total_cmp(&a.per_replica()))
            .then(a.spec.model.cmp(&b.spec.model))
    });
    for m in hot {
        let why = if m.starving() {
            format!("{} asks waiting with no replica", m.pending)
        } else {
            format!(
                "{} over {} = {:?}/replica > {:?} for {} ticks",
                m.queue_text(),
                replicas(m.count()),
                round2(m.per_replica()),
                policy.scale_up_queue_per_replica,
                m.next.hot_ticks
            )
        };
        if m.count() >= m.hi {
            m.note = Some((Note::AtMax, format!("{why}, but at {}", m.hi_text())));
        } else {
            tick.load(m, why);
        }
    }

    for m in models.iter_mut().filter(|m| !m.changed) {
        tick.scale_down(m);
    }
    for m in &mut models {
        tick.route(m);
    }
    for m in &mut models {
        let now = m.note.as_ref().map(|(kind, _)| *kind);
        if let Some((kind, reason)) = m.note.take()
            && m.prev.note != Some(kind)
        {
            tick.note(Some(&m.spec.model), &reason);
        }
        m.next.note = now;
    }
    (tick.log, next_state(false, models))
}

/// What the tick knows beyond the models, and the log it writes.
struct Tick<'a> {
    now: u64,
    policy: &'a Policy,
    /// Sorted by name.
    nodes: Vec<Node<'a>>,
    log: Vec<Decision>,
}

struct Node<'a> {
    view: &'a NodeView,
    /// Draining, or drained by the admin: no capacity, no loads.
    excluded: bool,
    /// Free memory after the loads this tick has already placed here.
    free: u64,
}

impl Node<'_> {
    fn name(&self) -> &str {
        &self.view.node
    }
}

/// One model's facts for this tick, and what the tick did to it.
struct Model<'a> {
    spec: &'a ModelSpec,
    /// On nodes that count, one per node, sorted by node name.
    replicas: Vec<(&'a str, &'a ReplicaLoad)>,
    /// Every node reporting the model, counted or not: never a load target.
    holders: BTreeSet<&'a str>,
    pinned: BTreeSet<&'a str>,
    lo: u32,
    hi: u32,
    /// The bounds come from an admin replica override.
    overridden: bool,
    pending: u32,
    /// Queued on replicas that count, plus pending.
    queue: u64,
    /// The smallest wait of its replicas; `None` without replicas.
    wait_ms: Option<u64>,
    /// Within the cooldown of its last load or unload.
    cooling: bool,
    prev: ModelState,
    next: ModelState,
    /// A load or unload was decided this tick.
    changed: bool,
    loaded: bool,
    note: Option<(Note, String)>,
}

impl Model<'_> {
    fn count(&self) -> u32 {
        u32::try_from(self.replicas.len()).unwrap_or(u32::MAX)
    }

    /// Asks waiting and not one replica to serve them.
    fn starving(&self) -> bool {
        self.count() == 0 && self.queue > 0
    }

    fn per_replica(&self) -> f64 {
        match self.count() {
            0 if self.queue > 0 => f64::INFINITY,
            0 => 0.0,
            n => self.queue as f64 / f64::from(n),
        }
    }

    fn lo_text(&self) -> String {
        let kind = if self.overridden { "override" } else { "min" };
        format!("{kind} {}", self.lo)
    }

    fn hi_text(&self) -> String {
        let kind = if self.overridden { "override" } else { "max" };
        format!("{kind} {} {}", self.hi, plural(self.hi, "replica"))
    }

    fn queue_text(&self) -> String {
        match self.pending {
            0 => format!("queue {}", self.queue),
            p => format!("queue {} ({p} pending)", self.queue),
        }
    }
}

impl Tick<'_> {
    fn note(&mut self, model: Option<&str>, reason: &str) {
        self.log.push(Decision {
            at_ms: self.now,
            model: model.map(str::to_string),
            directive: None,
            reason: reason.to_string(),
        });
    }

    fn act(&mut self, m: &mut Model, directive: Directive, reason: String) {
        if !matches!(directive, Directive::SetRoute { .. }) {
            m.changed = true;
            m.next.last_change_ms = Some(self.now);
        }
        self.log.push(Decision {
            at_ms: self.now,
            model: Some(m.spec.model.clone()),
            directive: Some(directive),
            reason,
        });
    }

    /// The node a load of `m` goes to, or why there is none.
    fn best_node(&self, m: &Model) -> Result<usize, String> {
        let need = m.spec.memory_bytes;
        let open = || {
            self.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.excluded && !m.holders.contains(n.name()))
        };
        let unpinned = |n: &Node| !m.pinned.contains(n.name());
        let best = open()
            .filter(|(_, n)| n.free >= need)
            .min_by(|(_, a), (_, b)| {
                unpinned(a)
                    .cmp(&unpinned(b))
                    .then(b.free.cmp(&a.free))
                    .then(a.name().cmp(b.name()))
            });
        if let Some((i, _)) = best {
            return Ok(i);
        }
        let most = open().min_by(|(_, a), (_, b)| b.free.cmp(&a.free).then(a.name().cmp(b.name())));
        Err(match most {
            Some((_, n)) => format!(
                "no node has {} free (most: {} with {})",
                mib(need),
                n.name(),
                mib(n.free)
            ),
            None => format!(
                "no node can take its {}: every node holds it or is draining",
                mib(need)
            ),
        })
    }

    fn load(&mut self, m: &mut Model, why: String) {
        match self.best_node(m) {
            Err(none) => m.note = Some((Note::NoMemory, format!("{why}, but {none}"))),
            Ok(_) if m.cooling => {}
            Ok(i) => {
                let node = &mut self.nodes[i];
                let reason = format!("{why}: load on {} ({} free)", node.name(), mib(node.free));
                // best_node chose it for having at least this much free.
                node.free -= m.spec.memory_bytes;
                let directive = Directive::Load {
                    model: m.spec.model.clone(),
                    node: node.view.node.clone(),
                };
                m.loaded = true;
                // The next scale-up needs hot ticks measured with this replica in service.
                m.next.hot_ticks = 0;
                self.act(m, directive, reason);
            }
        }
    }

    fn scale_down(&mut self, m: &mut Model) {
        let unpinned = m
            .replicas
            .iter()
            .filter(|(node, _)| !m.pinned.contains(node));
        if m.count() > m.hi {
            let least = unpinned.min_by_key(|(node, r)| {
                let load = u64::from(r.active) + u64::from(r.queued);
                (load, r.idle_since_ms.unwrap_or(u64::MAX), *node)
            });
            match least {
                None => {
                    let reason = format!(
                        "{} > {}, but every replica is pinned",
                        replicas(m.count()),
                        m.hi_text()
                    );
                    m.note = Some((Note::AllPinned, reason));
                }
                Some(_) if m.cooling => {}
                Some(&(node, r)) => {
                    let reason = format!(
                        "{} > {}: unload the least loaded, on {node} ({} active, {} queued)",
                        replicas(m.count()),
                        m.hi_text(),
                        r.active,
                        r.queued
                    );
                    self.unload(m, node, reason);
                }
            }
        } else if m.count() > m.lo && m.next.hot_ticks == 0 && !m.cooling {
            let keepalive = self.policy.idle_keepalive_ms;
            let idlest = unpinned
                .filter_map(|&(node, r)| r.idle_since_ms.map(|since| (since, node)))
                .filter(|&(since, _)| self.now.saturating_sub(since) >= keepalive)
                .min();
            if let Some((since, node)) = idlest {
                let reason = format!(
                    "idle {} >= keep-alive {}, {} > {}: unload on {node}",
                    secs(self.now.saturating_sub(since)),
                    secs(keepalive),
                    replicas(m.count()),
                    m.lo_text()
                );
                self.unload(m, node, reason);
            }
        }
    }

    fn unload(&mut self, m: &mut Model, node: &str, reason: String) {
        let directive = Directive::Unload {
            model: m.spec.model.clone(),
            node: node.to_string(),
        };
        self.act(m, directive, reason);
    }

    fn route(&mut self, m: &mut Model) {
        let bound = self.policy.fallback_wait_ms;
        let (over, wait) = match m.wait_ms {
            Some(w) => (w > bound, format!("est. wait {}", secs(w))),
            None => (
                m.pending > 0,
                format!("est. wait unbounded ({} asks, no replica)", m.pending),
            ),
        };
        // Why no capacity can be added, if so. A load this tick is capacity added.
        let blocked = if m.loaded {
            None
        } else if m.count() >= m.hi {
            Some(format!("at {}", m.hi_text()))
        } else {
            self.best_node(m).err()
        };
        let clear_ticks = self.policy.fallback_clear_ticks.max(1);
        let change = match (&m.next.route, &m.spec.fallback) {
            (Route::Local, None) => None,
            (Route::Fallback { .. }, None) => Some((
                Route::Local,
                "the model has no fallback backend any more: route to local".to_string(),
            )),
            (Route::Local, Some(backend)) => match blocked {
                Some(blocked) if over => Some((
                    Route::Fallback {
                        backend: backend.clone(),
                    },
                    format!(
                        "{wait} > {} and no capacity to add ({blocked}): route to fallback {backend}",
                        secs(bound)
                    ),
                )),
                _ => None,
            },
            (Route::Fallback { backend: current }, Some(backend)) => {
                if m.next.clear_ticks >= clear_ticks {
                    Some((
                        Route::Local,
                        format!(
                            "{wait} <= {} for {} ticks: route back to local",
                            secs(bound),
                            m.next.clear_ticks
                        ),
                    ))
                } else if m.count() == 0 && blocked.is_none() {
                    Some((
                        Route::Local,
                        "no replica, and capacity can be added now: route back to local"
                            .to_string(),
                    ))
                } else if current != backend {
                    Some((
                        Route::Fallback {
                            backend: backend.clone(),
                        },
                        format!("the fallback backend is now {backend}: route to it"),
                    ))
                } else {
                    None
                }
            }
        };
        if let Some((route, reason)) = change {
            m.next.route = route.clone();
            m.next.clear_ticks = 0;
            let directive = Directive::SetRoute {
                model: m.spec.model.clone(),
                route,
            };
            self.act(m, directive, reason);
        }
    }
}

/// The nodes sorted by name, the first of any repeated name kept.
fn nodes<'a>(view: &'a ClusterView, overrides: &Overrides) -> Vec<Node<'a>> {
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
fn models<'a>(
    view: &'a ClusterView,
    overrides: &'a Overrides,
    state: &PolicyState,
    tick: &Tick<'a>,
) -> Vec<Model<'a>> {
    let mut specs: BTreeMap<&str, &ModelSpec> = BTreeMap::new();
    for s in &view.models {
        specs.entry(&s.model).or_insert(s);
    }
    let policy = tick.policy;
    specs
        .into_values()
        .map(|spec| {
            let mut replicas = Vec::new();
            let mut holders = BTreeSet::new();
            for n in &tick.nodes {
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
                .is_some_and(|t| tick.now.saturating_sub(t) < policy.cooldown_ms);
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

fn next_state(paused: bool, models: Vec<Model>) -> PolicyState {
    PolicyState {
        paused,
        models: models
            .into_iter()
            .map(|m| (m.spec.model.clone(), m.next))
            .collect(),
    }
}

fn plural(n: u32, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

fn replicas(n: u32) -> String {
    format!("{n} {}", plural(n, "replica"))
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / f64::from(1u32 << 20))
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// For reasons: 4.5 stays 4.5, 3.3333 becomes 3.33.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
