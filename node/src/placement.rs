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
}
