//! Queues that move: an ask waiting here for a slot goes back to placement when it can start
//! sooner elsewhere — another node has a free sequence of its model (a replica just loaded
//! there, or its answers finished), or this node drains while another holds the model. The first
//! in line (priority, then arrival) move first; the workflow plans them again, and their users
//! see the new node's position and estimate, or their answer starting.

use super::NodeHandle;
use super::mesh;
use super::model_holder::{ModelHolderMsg, ModelStats};
use crate::protocol::{ModelLoad, NodeId, NodeSnapshot};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often this node looks for a better place for what waits here.
const EVERY: Duration = Duration::from_secs(1);

/// Watches this node's queues until `stop`.
pub fn spawn(node: NodeId, handle: NodeHandle, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => rebalance(&node, &handle).await,
            }
        }
    })
}

async fn rebalance(node: &NodeId, handle: &NodeHandle) {
    // The mesh is asked only while something waits here.
    let mut waiting = Vec::new();
    for (model, holder) in handle.holders().all() {
        if let Ok(s) = ractor::call_t!(holder, ModelHolderMsg::Stats, 500)
            && s.queued > 0
        {
            waiting.push((model, holder, s));
        }
    }
    if waiting.is_empty() {
        return;
    }
    let snapshots = mesh::snapshots(Duration::from_millis(800)).await;
    let draining = snapshots.iter().any(|s| &s.node == node && s.draining);
    for (model, holder, stats) in waiting {
        let others: Vec<&ModelLoad> = elsewhere(&snapshots, node, &model);
        let (n, why) = movable(&stats, &others, draining);
        if n > 0 {
            let _ = holder.cast(ModelHolderMsg::Release(n, why));
        }
    }
}

/// `model`'s load on every other node that takes work.
fn elsewhere<'a>(
    snapshots: &'a [NodeSnapshot],
    node: &NodeId,
    model: &crate::protocol::ModelId,
) -> Vec<&'a ModelLoad> {
    snapshots
        .iter()
        .filter(|s| &s.node != node && !s.draining)
        .filter_map(|s| s.models.iter().find(|m| &m.model == model))
        .collect()
}

/// How many of the asks waiting here should move, and why: while this node drains, all of
/// them (when another node holds the model); otherwise as many as other nodes have sequences
/// free with nobody waiting for them.
fn movable(here: &ModelStats, others: &[&ModelLoad], draining: bool) -> (usize, &'static str) {
    if others.is_empty() {
        return (0, "");
    }
    if draining {
        return (here.queued, "this node is draining");
    }
    let free: u32 = others
        .iter()
        .map(|m| m.max_sequences.saturating_sub(m.active + m.queued))
        .sum();
    (
        here.queued.min(free as usize),
        "a sequence is free on another node",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineInfo;
    use crate::protocol::ModelId;

    fn load(active: u32, queued: u32) -> ModelLoad {
        ModelLoad::test("m", active, queued)
    }

    fn here(queued: usize) -> ModelStats {
        ModelStats {
            model: ModelId::new("m"),
            info: EngineInfo {
                model_id: "m".into(),
                kind: "synthetic".into(),
                context_len: 2048,
                memory_bytes: 0,
                max_sequences: 4,
            },
            active: 4,
            queued,
            idle_since_ms: None,
            est_wait_ms: 0,
            cached_marks: Vec::new(),
        }
    }

    #[test]
    fn waiting_asks_move_to_free_sequences_elsewhere_and_all_of_them_on_drain() {
        let (idle, half, full) = (load(0, 0), load(2, 0), load(3, 1));
        // (waiting here, others, draining, moved)
        let cases: Vec<(usize, Vec<&ModelLoad>, bool, usize)> = vec![
            (3, vec![], false, 0),
            (3, vec![], true, 0),
            (3, vec![&full], false, 0),
            (3, vec![&half], false, 2),
            (3, vec![&half, &idle], false, 3),
            (1, vec![&idle], false, 1),
            (5, vec![&full], true, 5),
        ];
        for (i, (queued, others, draining, want)) in cases.into_iter().enumerate() {
            let (n, why) = movable(&here(queued), &others, draining);
            assert_eq!(n, want, "case {i}");
            assert_eq!(why.is_empty(), others.is_empty(), "case {i}");
        }
    }
}
