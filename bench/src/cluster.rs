//! Cluster orchestration benchmark: requests/s and latency with 1, 2 and 3 nodes serving a
//! synthetic engine of fixed token rate, under a fixed number of WebSocket clients. The engine's
//! cost is known exactly, so what the table shows is the orchestration: Temporal workflows,
//! placement, the actor mesh and the streaming path.

use crate::load::{self, LoadSummary, Until};
use crate::sandbox::{NodeSpec, Sandbox, free_port};
use crate::stats::{ratio, round};
use serde::Serialize;
use std::time::Duration;

pub struct ClusterArgs<'a> {
    pub nodes: &'a [usize],
    pub clients: usize,
    /// Synthetic engine rate, tokens/s of each answer.
    pub rate: u32,
    pub answer_tokens: u32,
    /// Answers each node generates at once; more queue.
    pub max_sequences: usize,
    pub duration: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterLevel {
    pub nodes: usize,
    /// What a zero-cost orchestration would reach: answers in flight ÷ answer duration.
    pub ideal_rps: f64,
    /// Measured requests/s ÷ ideal.
    pub efficiency: f64,
    pub load: LoadSummary,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterReport {
    pub clients: usize,
    pub rate: u32,
    pub answer_tokens: u32,
    pub max_sequences: usize,
    pub duration_s: f64,
    /// Time one answer takes in the engine alone.
    pub answer_ms: f64,
    pub levels: Vec<ClusterLevel>,
}

fn synthetic_config(rate: u32, max_sequences: usize) -> String {
    format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:{rate}\"\ndefault = true\nload = true\n\
         max_sequences = {max_sequences}\n{}",
        crate::sandbox::UNLIMITED_USERS
    )
}

pub async fn run(a: &ClusterArgs<'_>) -> anyhow::Result<ClusterReport> {
    let most = a.nodes.iter().copied().max().unwrap_or(1);
    let sb = Sandbox::start().await?;
    // Each node is its own loopback "host": 127.0.0.2, .3, .4 ...
    let ips: Vec<String> = (0..most).map(|i| format!("127.0.0.{}", i + 2)).collect();
    let seeds = ips
        .iter()
        .map(|ip| Ok(format!("{ip}:{}", free_port(ip)?)))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let config = synthetic_config(a.rate, a.max_sequences);
    let answer_s = f64::from(a.answer_tokens) / f64::from(a.rate);
    let ask = load::orrery_ask("count", a.answer_tokens);
    let mut nodes = Vec::new();
    let mut levels = Vec::new();
    for &n in a.nodes {
        // Nodes are added to the running cluster, never restarted.
        while nodes.len() < n {
            let i = nodes.len();
            let id = format!("n{}", i + 2);
            eprintln!("cluster: starting node {id} on {}", ips[i]);
            nodes.push(
                sb.node(NodeSpec {
                    id: &id,
                    ip: &ips[i],
                    config: &config,
                    mesh: Some((&seeds[i], &seeds)),
                    env: &[],
                })
                .await?,
            );
        }
        let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
        nodes[0].wait_cluster_up(&ids).await?;
        let urls: Vec<String> = nodes.iter().map(|n| n.ws_url()).collect();
        // Warm-up: every node answers a few asks before the clock starts.
        load::websocket(&urls, urls.len(), Until::Requests(2), ask.clone()).await;
        eprintln!(
            "cluster: {n} node(s), {} clients for {:?}",
            a.clients, a.duration
        );
        crate::quiet::settle_async(&format!("cluster {n} node(s)")).await;
        let result =
            load::websocket(&urls, a.clients, Until::Elapsed(a.duration), ask.clone()).await;
        if let Some(e) = result.errors.first() {
            eprintln!("cluster: {} ask(s) failed, first: {e}", result.errors.len());
        }
        let summary = result.summary();
        let in_flight = a.clients.min(n * a.max_sequences) as f64;
        let ideal_rps = round(in_flight / answer_s, 2);
        levels.push(ClusterLevel {
            nodes: n,
            ideal_rps,
            efficiency: ratio(summary.requests_per_s, ideal_rps),
            load: summary,
        });
    }
    drop(nodes);
    sb.stop().await;
    Ok(ClusterReport {
        clients: a.clients,
        rate: a.rate,
        answer_tokens: a.answer_tokens,
        max_sequences: a.max_sequences,
        duration_s: a.duration.as_secs_f64(),
        answer_ms: round(answer_s * 1000.0, 1),
        levels,
    })
}
