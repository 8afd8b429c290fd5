//! One tick of the scaling loop: the body of [`decide`] and the facts it gathers per node and
//! per model before applying the rules of the module doc.

use super::facts::{Model, Node, mib, models, next_state, nodes, replicas, round2, secs};
use super::{ClusterView, Decision, Directive, Note, Overrides, Policy, PolicyState, Route};

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
    let mut models = models(view, overrides, state, tick.policy, &tick.nodes, tick.now);

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
