//! The chaos schedule (a pure function of the options) and the task that carries it out: one
//! action at a time, so a node is never restarted while Temporal is down and no two restarts
//! overlap.

use super::cluster::Cluster;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chaos {
    /// kill -9 a node chosen at random, then start it again.
    KillNode,
    /// kill -9 the Temporal server, then start it again on its database.
    KillTemporal,
}

/// When each action falls due, from the start of the load: a node kill every `node_every`, and a
/// Temporal kill every `temporal_every`, half a node period off the node kills; nothing at or
/// after `duration`.
pub fn schedule(
    duration: Duration,
    node_every: Option<Duration>,
    temporal_every: Option<Duration>,
) -> Vec<(Duration, Chaos)> {
    let mut out = Vec::new();
    let mut add = |every: Duration, offset: Duration, what: Chaos| {
        let mut t = every + offset;
        while !every.is_zero() && t < duration {
            out.push((t, what));
            t += every;
        }
    };
    if let Some(every) = node_every {
        add(every, Duration::ZERO, Chaos::KillNode);
    }
    if let Some(every) = temporal_every {
        add(
            every,
            node_every.unwrap_or_default() / 2,
            Chaos::KillTemporal,
        );
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// One action carried out.
#[derive(Clone, Debug)]
pub struct Done {
    /// Seconds from the start of the load.
    pub at_s: f64,
    /// "kill -9 n3", "kill -9 temporal".
    pub what: String,
    /// Seconds from the kill until the restarted process was ready.
    pub took_s: f64,
    /// Why the restart failed, if it did.
    pub error: Option<String>,
}

/// Carries out `plan` from `t0`, each action when it falls due (or at once, if the one before
/// ran late). Returns what it did.
pub async fn run(
    cluster: Arc<Cluster>,
    plan: Vec<(Duration, Chaos)>,
    temporal_down: Duration,
    t0: Instant,
    progress: bool,
) -> Vec<Done> {
    let mut done = Vec::new();
    for (at, what) in plan {
        // The pacing of the chaos schedule, not a wait for readiness.
        tokio::time::sleep_until((t0 + at).into()).await;
        let started = Instant::now();
        let (name, result) = match what {
            Chaos::KillNode => {
                let i = rand::rng().random_range(0..cluster.nodes.len());
                let name = format!("kill -9 {}", cluster.nodes[i].id);
                (name, cluster.kill_and_restart_node(i).await)
            }
            Chaos::KillTemporal => {
                let name = "kill -9 temporal".to_string();
                (
                    name,
                    cluster.crash_and_restart_temporal(temporal_down).await,
                )
            }
        };
        let d = Done {
            at_s: (started - t0).as_secs_f64(),
            what: name,
            took_s: started.elapsed().as_secs_f64(),
            error: result.err().map(|e| format!("{e:#}")),
        };
        if progress {
            eprintln!(
                "soak: {:>5.1} s  {} (back in {:.1} s){}",
                d.at_s,
                d.what,
                d.took_s,
                d.error
                    .as_deref()
                    .map(|e| format!(": FAILED {e}"))
                    .unwrap_or_default()
            );
        }
        done.push(d);
    }
    done
}
