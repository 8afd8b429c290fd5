//! Serving benchmark: N concurrent users streaming fixed-length answers through the whole path
//! (WebSocket → Temporal → actors → engine), against `llama-server --parallel N` through its
//! OpenAI endpoint on the same GGUF; and the orchestration overhead on time to first token.

use crate::engine::{LONG_ANSWER_PROMPT, ProbeSpec};
use crate::load::{self, LoadSummary, Until};
use crate::peer::Peer;
use crate::sandbox::{NodeSpec, Sandbox};
use crate::stats::{Latency, percentile, ratio, round};
use anyhow::Context;
use orrery::engine::Precision;
use serde::Serialize;
use std::path::Path;

/// The short question of the overhead benchmark: the prompt pass is small, so what Orrery adds
/// is a large part of the time to first token.
pub const SHORT_PROMPT: &str = "What is the capital of France?";

pub struct ServingArgs<'a> {
    pub model: &'a Path,
    /// Needed for the serving levels only.
    pub peer: Option<&'a Peer>,
    pub users: &'a [usize],
    /// Answer length: the prompt makes the model write at length, so answers end here.
    pub max_tokens: u32,
    pub threads: usize,
    /// Each load level runs at least this many requests in all.
    pub min_requests: usize,
    pub serving: bool,
    /// The node's `limits.heartbeat_timeout_secs` (see [`node_config`]).
    pub heartbeat_timeout_secs: u64,
    /// Sequential requests of the overhead benchmark (0: skip it).
    pub overhead_requests: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Level {
    pub users: usize,
    pub orrery: LoadSummary,
    pub llama_server: LoadSummary,
    /// Orrery ÷ llama-server aggregate tokens/s.
    pub vs_llama_server: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServingReport {
    /// Orrery's aggregate tokens/s at 8 users ÷ at 1 user.
    pub aggregate_ratio_8_vs_1: f64,
    /// Orrery ÷ llama-server --parallel 8, aggregate tokens/s at 8 users.
    pub vs_llama_server_8: f64,
    pub prompt: String,
    pub max_tokens: u32,
    pub threads: usize,
    pub levels: Vec<Level>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OverheadReport {
    /// Added to time to first token by Orrery, p50 over requests: the client's time to first
    /// token − the engine's own (from `generate` to its first token, reported in `done`).
    pub p50_ms: f64,
    /// The same at p99.
    pub p99_ms: f64,
    pub requests: usize,
    pub prompt: String,
    pub max_tokens: u32,
    /// Time to first token calling the engine directly, in-process.
    pub direct: Latency,
    /// Time to first token through Orrery, as a WebSocket client sees it.
    pub orrery: Latency,
    /// `orrery` − `direct`, percentile by percentile: the same figure from two separate runs,
    /// so it carries the engine's own run-to-run noise.
    pub unpaired: Latency,
    /// CPU milliseconds per ask outside the engine, node + Temporal dev server (see
    /// [`crate::cpu`]); NaN (null) until measured.
    pub cpu_ms_per_ask: f64,
    pub cpu: Option<crate::cpu::CpuReport>,
}

/// The node under test. Its heartbeat timeout is raised from the default 4 s (`bench/run` passes
/// 30): with 8 or more answers sharing two cores, an answer can wait longer than that for its
/// first token, the generate activity sends no heartbeat meanwhile, and such asks time out and
/// are re-planned until they fail (measured; see the README).
fn node_config(model: &Path, max_sequences: usize, heartbeat_timeout_secs: u64) -> String {
    format!(
        "[[models]]\nid = \"smollm2-q\"\nsource = \"path:{}\"\ndefault = true\nload = true\n\
         max_sequences = {max_sequences}\nprecision = \"quantized\"\n[limits]\nmax_tokens = 1024\n\
         heartbeat_timeout_secs = {heartbeat_timeout_secs}\n{}",
        model.display(),
        crate::sandbox::UNLIMITED_USERS
    )
}

pub async fn run(
    a: &ServingArgs<'_>,
) -> anyhow::Result<(Option<ServingReport>, Option<OverheadReport>)> {
    let max_sequences = a.users.iter().copied().max().unwrap_or(1).max(1);
    let sb = Sandbox::start().await?;
    let config = node_config(a.model, max_sequences, a.heartbeat_timeout_secs);
    let node = sb
        .node(NodeSpec {
            id: "bench",
            ip: "127.0.0.1",
            config: &config,
            mesh: None,
            env: &[(orrery::engine::THREADS_ENV, a.threads.to_string())],
        })
        .await?;
    let urls = vec![node.ws_url()];
    let ask = load::orrery_ask(LONG_ANSWER_PROMPT, a.max_tokens);
    // Warm-up: the first workflows pay for worker and cache start-up.
    let warm = load::websocket(
        &urls,
        1,
        Until::Requests(2),
        load::orrery_ask(SHORT_PROMPT, 4),
    );
    if let Some(e) = warm.await.errors.first() {
        anyhow::bail!("warm-up ask failed: {e}\n{}", node.log());
    }

    let mut levels = Vec::new();
    if a.serving {
        let peer = a.peer.context("the serving benchmark needs llama-server")?;
        for &n in a.users {
            let per_user = a.min_requests.div_ceil(n).max(1);
            eprintln!("serving: orrery, {n} user(s) x {per_user} request(s)");
            crate::quiet::settle_async(&format!("serving orrery {n} users")).await;
            let o = load::websocket(&urls, n, Until::Requests(per_user), ask.clone()).await;
            report_errors("orrery", &o.errors);
            eprintln!("serving: llama-server --parallel {n}, {n} user(s) x {per_user} request(s)");
            let server = peer
                .server(a.model, n, 1024, a.threads, sb.dir.path())
                .await?;
            let body = load::openai_body(LONG_ANSWER_PROMPT, a.max_tokens);
            load::openai(&server.url, 1, Until::Requests(1), body.clone()).await; // warm-up
            crate::quiet::settle_async(&format!("serving llama-server {n} users")).await;
            let l = load::openai(&server.url, n, Until::Requests(per_user), body).await;
            report_errors("llama-server", &l.errors);
            server.stop().await;
            let (o, l) = (o.summary(), l.summary());
            levels.push(Level {
                users: n,
                vs_llama_server: ratio(o.aggregate_tps, l.aggregate_tps),
                orrery: o,
                llama_server: l,
            });
        }
    }

    let mut overhead = None;
    if a.overhead_requests > 0 {
        eprintln!("overhead: {} asks through orrery", a.overhead_requests);
        crate::quiet::settle_async("overhead through orrery").await;
        let through = load::websocket(
            &urls,
            1,
            Until::Requests(a.overhead_requests),
            load::orrery_ask(SHORT_PROMPT, 8),
        )
        .await;
        report_errors("overhead", &through.errors);
        overhead = Some(through.samples);
    }
    drop(node);
    sb.stop().await;

    let overhead = match overhead {
        Some(samples) => {
            eprintln!("overhead: {} calls to the engine in-process", samples.len());
            crate::quiet::settle_async("overhead in-process").await;
            let direct = crate::engine::probe(
                &ProbeSpec {
                    model: a.model.to_path_buf(),
                    precision: Precision::Quantized,
                    prompt: SHORT_PROMPT.into(),
                    gen_tokens: 8,
                    reps: 0,
                    first_token_requests: a.overhead_requests,
                    max_sequences,
                },
                a.threads,
            )
            .context("in-process first-token probe")?;
            Some(overhead_report(
                &samples,
                &direct.ttft_ms,
                a.overhead_requests,
            ))
        }
        None => None,
    };

    let serving = a.serving.then(|| {
        let agg = |n: usize, f: fn(&Level) -> f64| {
            levels.iter().find(|l| l.users == n).map_or(f64::NAN, f)
        };
        ServingReport {
            aggregate_ratio_8_vs_1: ratio(
                agg(8, |l| l.orrery.aggregate_tps),
                agg(1, |l| l.orrery.aggregate_tps),
            ),
            vs_llama_server_8: agg(8, |l| l.vs_llama_server),
            prompt: LONG_ANSWER_PROMPT.into(),
            max_tokens: a.max_tokens,
            threads: a.threads,
            levels,
        }
    });
    Ok((serving, overhead))
}

fn overhead_report(through: &[load::Sample], direct_ms: &[f64], requests: usize) -> OverheadReport {
    let orrery: Vec<f64> = through.iter().map(|s| s.ttft_ms).collect();
    let paired: Vec<f64> = through
        .iter()
        .filter_map(|s| Some(s.ttft_ms - s.engine_ttft_ms?))
        .collect();
    let added = |p: f64| round(percentile(&orrery, p) - percentile(direct_ms, p), 1);
    let paired = Latency::of(&paired);
    OverheadReport {
        p50_ms: paired.p50_ms,
        p99_ms: paired.p99_ms,
        requests,
        prompt: SHORT_PROMPT.into(),
        max_tokens: 8,
        direct: Latency::of(direct_ms),
        orrery: Latency::of(&orrery),
        unpaired: Latency {
            p50_ms: added(50.0),
            p99_ms: added(99.0),
        },
        cpu_ms_per_ask: f64::NAN,
        cpu: None,
    }
}

fn report_errors(what: &str, errors: &[String]) {
    if let Some(e) = errors.first() {
        eprintln!("{what}: {} request(s) failed, first: {e}", errors.len());
    }
}
