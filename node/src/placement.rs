//! Placement: the pure choice of the node that serves an ask, from the nodes' snapshots.

use crate::protocol::NodeSnapshot;
use crate::protocol::{ModelId, NodeId};

/// The node to run `model` on: among nodes that hold it and are not draining, the one with the
/// fewest active and queued sequences, then the most free memory, then by name (stable). Nodes in
/// `excluded` (they failed this ask) are chosen only when no other node can serve it.
pub fn choose(snapshots: &[NodeSnapshot], model: &ModelId, excluded: &[NodeId]) -> Option<NodeId> {
    let candidates = snapshots.iter().filter(|s| !s.draining).filter_map(|s| {
        s.models
            .iter()
            .find(|m| &m.model == model)
            .map(|m| (s, m.active + m.queued))
    });
    let best = |allow_excluded: bool| {
        candidates
            .clone()
            .filter(|(s, _)| allow_excluded || !excluded.contains(&s.node))
            .min_by(|(a, la), (b, lb)| {
                la.cmp(lb)
                    .then(b.memory_available_bytes.cmp(&a.memory_available_bytes))
                    .then(a.node.cmp(&b.node))
            })
            .map(|(s, _)| s.node.clone())
    };
    best(false).or_else(|| best(true))
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
    use crate::protocol::ModelLoad;

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
                .map(|(m, active, queued)| ModelLoad {
                    model: ModelId::new(m),
                    kind: "synthetic".into(),
                    active,
                    queued,
                    max_sequences: 4,
                    memory_bytes: 0,
                    idle_since_ms: None,
                    est_wait_ms: 0,
                })
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
