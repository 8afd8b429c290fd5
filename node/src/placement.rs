//! Placement: the pure choice of the node that serves an ask, from the nodes' snapshots.

use crate::protocol::{ModelId, ModelLoad, NodeId, NodeSnapshot, PrefixMark};

/// Prompt tokens a cached conversation must save to be worth one more sequence of load on its
/// node. One more answer in a node's batch slows every answer there a little for its whole
/// length; a prompt read from the cache saves its prefill once. About 256 tokens of prefill (a
/// second or two on a CPU) is what an answer of a few hundred tokens costs its neighbours.
pub const TOKENS_PER_SEQUENCE: i64 = 256;

/// Characters per token, roughly, for English text and code (what a mark's size is turned into).
const CHARS_PER_TOKEN: u32 = 4;

/// Where an ask goes, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub node: NodeId,
    /// Characters of the conversation the node's prefix cache holds (0: none).
    pub cached_chars: u32,
    pub why: String,
}

struct Candidate<'a> {
    snap: &'a NodeSnapshot,
    load: u32,
    /// Characters of the ask's conversation this node holds (its deepest mark).
    cached_chars: u32,
    /// Prefill tokens a hit saves, counted only where a sequence is free (an ask never queues
    /// for a cache).
    bonus: i64,
}

impl Candidate<'_> {
    fn score(&self) -> i64 {
        self.bonus - TOKENS_PER_SEQUENCE * i64::from(self.load)
    }
}

fn candidate<'a>(snap: &'a NodeSnapshot, m: &ModelLoad, marks: &[PrefixMark]) -> Candidate<'a> {
    let load = m.active + m.queued;
    let cached_chars = marks
        .iter()
        .rev()
        .find(|k| m.cached_marks.contains(&k.hash))
        .map_or(0, |k| k.chars);
    let bonus = if load < m.max_sequences {
        i64::from(cached_chars / CHARS_PER_TOKEN)
    } else {
        0
    };
    Candidate {
        snap,
        load,
        cached_chars,
        bonus,
    }
}

/// The node to run `model` on: among nodes that hold it and are not draining, the one with the
/// fewest active and queued sequences, then the most free memory, then by name (stable). Nodes in
/// `excluded` (they failed this ask) are chosen only when no other node can serve it.
pub fn choose(snapshots: &[NodeSnapshot], model: &ModelId, excluded: &[NodeId]) -> Option<NodeId> {
    choose_for(snapshots, model, excluded, &[]).map(|c| c.node)
}

/// Cache-aware placement: like [`choose`], but a node whose prefix cache holds the start of the
/// ask's conversation (`marks`, one per message) is worth the prompt tokens it saves, against
/// [`TOKENS_PER_SEQUENCE`] per sequence of load, where it has a sequence free. So a follow-up
/// turn goes back to the node that answered the turn before unless that node is busier by more
/// than the cache saves, and a shared system prompt does not pull every ask to one node.
pub fn choose_for(
    snapshots: &[NodeSnapshot],
    model: &ModelId,
    excluded: &[NodeId],
    marks: &[PrefixMark],
) -> Option<Choice> {
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .filter(|s| !s.draining)
        .filter_map(|s| {
            let m = s.models.iter().find(|m| &m.model == model)?;
            Some(candidate(s, m, marks))
        })
        .collect();
    let best = |allow_excluded: bool| {
        candidates
            .iter()
            .filter(|c| allow_excluded || !excluded.contains(&c.snap.node))
            .min_by(|a, b| {
                b.score()
                    .cmp(&a.score())
                    .then(a.load.cmp(&b.load))
                    .then(
                        b.snap
                            .memory_available_bytes
                            .cmp(&a.snap.memory_available_bytes),
                    )
                    .then(a.snap.node.cmp(&b.snap.node))
            })
    };
    let chosen = best(false).or_else(|| best(true))?;
    let least = candidates.iter().map(|c| c.load).min().unwrap_or(0);
    let why = if chosen.bonus > 0 {
        format!(
            "holds ~{} tokens of this conversation in its prefix cache, at load {} (least {least})",
            chosen.bonus, chosen.load
        )
    } else {
        format!("least loaded: load {}", chosen.load)
    };
    Some(Choice {
        node: chosen.snap.node.clone(),
        cached_chars: chosen.cached_chars,
        why,
    })
}

/// What a codegen workflow allocates: `model` on `node` (None: no node holds it yet; the ask's
/// plan will load it), and whether that is the fallback.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub model: ModelId,
    pub node: Option<NodeId>,
    pub fallback: bool,
}

fn has_room(snapshots: &[NodeSnapshot], model: &ModelId) -> bool {
    snapshots.iter().filter(|s| !s.draining).any(|s| {
        s.models
            .iter()
            .any(|m| &m.model == model && m.active + m.queued < m.max_sequences)
    })
}

/// The local model when some node has a free sequence for it; else its fallback (when it has
/// one and room for it) for users below the high tier, who would otherwise queue; else the local
/// model, queued behind the others.
pub fn allocate(
    snapshots: &[NodeSnapshot],
    model: &ModelId,
    fallback: Option<&ModelId>,
    high_priority: bool,
) -> Allocation {
    let local = Allocation {
        model: model.clone(),
        node: choose(snapshots, model, &[]),
        fallback: false,
    };
    if has_room(snapshots, model) || high_priority {
        return local;
    }
    match fallback {
        Some(f) if has_room(snapshots, f) => Allocation {
            model: f.clone(),
            node: choose(snapshots, f, &[]),
            fallback: true,
        },
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(
        node: &str,
        model: Option<(&str, u32, u32)>,
        free: u64,
        draining: bool,
    ) -> NodeSnapshot {
        NodeSnapshot {
            node: NodeId::new(node),
            cpu_percent: 0.0,
            memory_total_bytes: 1 << 34,
            memory_available_bytes: free,
            models: model
                .map(|(m, active, queued)| ModelLoad::test(m, active, queued))
                .into_iter()
                .collect(),
            draining,
            memory_budget_bytes: 0,
            memory_used_bytes: 0,
        }
    }

    #[test]
    fn placement_table() {
        let m = ModelId::new("m");
        let cases: Vec<(Vec<NodeSnapshot>, Vec<&str>, Option<&str>)> = vec![
            (vec![], vec![], None),
            (
                vec![snap("a", Some(("other", 0, 0)), 10, false)],
                vec![],
                None,
            ),
            (
                vec![
                    snap("a", Some(("m", 2, 0)), 10, false),
                    snap("b", Some(("m", 1, 0)), 5, false),
                ],
                vec![],
                Some("b"),
            ),
            (
                vec![
                    snap("a", Some(("m", 1, 0)), 10, false),
                    snap("b", Some(("m", 1, 0)), 50, false),
                ],
                vec![],
                Some("b"),
            ),
            (
                vec![
                    snap("a", Some(("m", 0, 0)), 10, true),
                    snap("b", Some(("m", 3, 2)), 5, false),
                ],
                vec![],
                Some("b"),
            ),
            (
                vec![
                    snap("a", Some(("m", 0, 0)), 10, false),
                    snap("b", Some(("m", 3, 2)), 5, false),
                ],
                vec!["a"],
                Some("b"),
            ),
            (
                vec![snap("a", Some(("m", 0, 0)), 10, false)],
                vec!["a"],
                Some("a"),
            ),
        ];
        for (i, (snaps, excluded, want)) in cases.into_iter().enumerate() {
            let excluded: Vec<NodeId> = excluded.into_iter().map(NodeId::new).collect();
            assert_eq!(
                choose(&snaps, &m, &excluded).as_ref().map(|n| n.as_str()),
                want,
                "case {i}"
            );
        }
    }

    #[test]
    fn a_cached_conversation_draws_its_follow_up_unless_its_node_is_busier_than_it_saves() {
        let m = ModelId::new("m");
        // A conversation of three messages: ~50, ~300 and ~600 tokens in.
        let marks = [
            PrefixMark {
                hash: 1,
                chars: 200,
            },
            PrefixMark {
                hash: 2,
                chars: 1200,
            },
            PrefixMark {
                hash: 3,
                chars: 2400,
            },
        ];
        let with = |node: &str, active: u32, cached: &[u64]| {
            let mut s = snap(node, Some(("m", active, 0)), 10, false);
            s.models[0].cached_marks = cached.to_vec();
            s
        };
        // (snapshots, wanted node, wanted cached chars)
        let cases: Vec<(Vec<NodeSnapshot>, &str, u32)> = vec![
            // Idle nodes: the one holding the deepest prefix.
            (vec![with("a", 0, &[1]), with("b", 0, &[1, 3])], "b", 2400),
            // Busier by one: ~600 tokens saved beat one sequence (256), not three (768).
            (vec![with("a", 0, &[]), with("b", 1, &[3])], "b", 2400),
            (vec![with("a", 0, &[]), with("b", 3, &[3])], "a", 0),
            // A shared system prompt (~50 tokens) does not draw asks to a busier node.
            (vec![with("a", 0, &[]), with("b", 1, &[1])], "a", 0),
            // A full node's cache counts for nothing: the ask would queue.
            (vec![with("a", 1, &[]), with("b", 4, &[3])], "a", 0),
            // Marks of other conversations do not count.
            (vec![with("a", 0, &[]), with("b", 1, &[7, 8])], "a", 0),
        ];
        for (i, (snaps, node, chars)) in cases.into_iter().enumerate() {
            let c = choose_for(&snaps, &m, &[], &marks).expect("a node");
            assert_eq!((c.node.as_str(), c.cached_chars), (node, chars), "case {i}");
            assert_eq!(
                c.why.contains("prefix cache"),
                chars > 0,
                "case {i}: {}",
                c.why
            );
        }
        // Without marks it is plain least-load placement.
        let snaps = [with("a", 1, &[3]), with("b", 0, &[])];
        assert_eq!(choose_for(&snaps, &m, &[], &[]).unwrap().node.as_str(), "b");
    }

    #[test]
    fn allocation_prefers_local_room_then_the_fallback_below_high_priority() {
        let (m, f) = (ModelId::new("m"), ModelId::new("f"));
        let busy = snap("a", Some(("m", 3, 2)), 10, false);
        let free = snap("b", Some(("m", 1, 0)), 10, false);
        let mut spare = snap("c", Some(("f", 0, 0)), 10, false);
        spare.models[0].model = f.clone();
        // (snapshots, fallback, high priority, wanted model, wanted node)
        type Case<'a> = (
            Vec<NodeSnapshot>,
            Option<&'a ModelId>,
            bool,
            &'a str,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                vec![busy.clone(), free.clone()],
                Some(&f),
                false,
                "m",
                Some("b"),
            ),
            (
                vec![busy.clone(), spare.clone()],
                Some(&f),
                false,
                "f",
                Some("c"),
            ),
            (
                vec![busy.clone(), spare.clone()],
                Some(&f),
                true,
                "m",
                Some("a"),
            ),
            (vec![busy.clone()], Some(&f), false, "m", Some("a")),
            (
                vec![busy.clone(), spare.clone()],
                None,
                false,
                "m",
                Some("a"),
            ),
            (vec![], None, false, "m", None),
        ];
        for (i, (snaps, fb, high, want_model, want_node)) in cases.into_iter().enumerate() {
            let a = allocate(&snaps, &m, fb, high);
            assert_eq!(a.model.as_str(), want_model, "case {i}");
            assert_eq!(a.node.as_ref().map(|n| n.as_str()), want_node, "case {i}");
            assert_eq!(a.fallback, want_model == "f", "case {i}");
        }
    }
}
