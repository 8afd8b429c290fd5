//! CPU time per ask spent outside the engine (issue 14, item 3): one node serving the synthetic
//! engine, whose own cost is negligible, so what the node process and the Temporal dev server
//! use while answering is the orchestration's cost. Read from /proc/PID/stat (utime + stime).

use crate::load::{self, Until};
use crate::sandbox::{NodeSpec, Sandbox};
use crate::stats::round;
use anyhow::Context;
use serde::Serialize;
use std::time::Instant;

pub struct CpuArgs {
    pub asks: usize,
    /// Concurrent WebSocket clients, each asking in a loop.
    pub clients: usize,
    pub answer_tokens: u32,
    /// Synthetic engine rate, tokens/s of each answer.
    pub rate: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct CpuReport {
    /// Node + Temporal dev server, CPU milliseconds per ask done.
    pub cpu_ms_per_ask: f64,
    pub node_ms_per_ask: f64,
    pub temporal_ms_per_ask: f64,
    pub asks_done: usize,
    pub asks_failed: usize,
    pub clients: usize,
    pub answer_tokens: u32,
    pub rate: u32,
    pub elapsed_s: f64,
}

/// Clock ticks per second, the unit of /proc/PID/stat's CPU times.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// CPU time (user + system, all threads) that process `pid` has used, in milliseconds.
pub fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after it.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1000.0 / clock_ticks())
}

pub async fn run(a: &CpuArgs) -> anyhow::Result<CpuReport> {
    let sb = Sandbox::start().await?;
    let config = format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:{}\"\ndefault = true\nload = true\n\
         max_sequences = {}\n{}",
        a.rate,
        a.clients.max(1),
        crate::sandbox::UNLIMITED_USERS
    );
    let node = sb
        .node(NodeSpec {
            id: "cpu",
            ip: "127.0.0.1",
            config: &config,
            mesh: None,
            env: &[],
        })
        .await?;
    let urls = vec![node.ws_url()];
    let ask = load::orrery_ask("count", a.answer_tokens);
    // Warm-up: the first workflows pay for worker and cache start-up.
    let warm = load::websocket(&urls, a.clients, Until::Requests(2), ask.clone()).await;
    if let Some(e) = warm.errors.first() {
        anyhow::bail!("warm-up ask failed: {e}\n{}", node.log());
    }
    let node_pid = node.pid().context("the node exited")?;
    let temporal_pid = sb
        .temporal
        .pid()
        .context("the Temporal dev server exited")?;
    let per_client = a.asks.div_ceil(a.clients.max(1)).max(1);
    eprintln!(
        "overhead: CPU per ask, {} client(s) x {per_client} ask(s) of {} tokens at synthetic:{}",
        a.clients, a.answer_tokens, a.rate
    );
    crate::quiet::settle_async("overhead cpu per ask").await;
    let read = || -> anyhow::Result<(f64, f64)> {
        Ok((
            cpu_ms(node_pid).context("reading the node's CPU time")?,
            cpu_ms(temporal_pid).context("reading the Temporal server's CPU time")?,
        ))
    };
    let (node0, temporal0) = read()?;
    let t0 = Instant::now();
    let result = load::websocket(&urls, a.clients, Until::Requests(per_client), ask).await;
    let elapsed = t0.elapsed();
    let (node1, temporal1) = read()?;
    if let Some(e) = result.errors.first() {
        eprintln!(
            "overhead: {} ask(s) failed, first: {e}",
            result.errors.len()
        );
    }
    drop(node);
    sb.stop().await;
    let done = result.samples.len();
    let per_ask = |ms: f64| {
        if done == 0 {
            f64::NAN
        } else {
            round(ms / done as f64, 2)
        }
    };
    let (node_ms, temporal_ms) = (node1 - node0, temporal1 - temporal0);
    Ok(CpuReport {
        cpu_ms_per_ask: per_ask(node_ms + temporal_ms),
        node_ms_per_ask: per_ask(node_ms),
        temporal_ms_per_ask: per_ask(temporal_ms),
        asks_done: done,
        asks_failed: result.errors.len(),
        clients: a.clients,
        answer_tokens: a.answer_tokens,
        rate: a.rate,
        elapsed_s: round(elapsed.as_secs_f64(), 2),
    })
}
