//! The results: one JSON document (`bench/results/latest.json`) and the tables printed from it.

use crate::cluster::ClusterReport;
use crate::engine::EngineReport;
use crate::fanout::FanoutReport;
use crate::machine::Machine;
use crate::multiturn::MultiturnReport;
use crate::serving::{OverheadReport, ServingReport};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Serialize)]
pub struct Results {
    pub schema: u32,
    pub machine: Machine,
    pub model: String,
    /// Load averages (1, 5, 15 min) when the run started and ended: other work on the machine
    /// makes the figures noisy.
    pub load_average_start: String,
    pub load_average_end: String,
    /// Cores other work kept busy just before each measurement.
    pub contention: Vec<crate::quiet::Contention>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<EngineReport>,
    /// The engine on a model of a real shape (random weights, Llama 3.2 1B's dimensions, Q4_K_M).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_1b: Option<EngineReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<ServingReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overhead: Option<OverheadReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multiturn: Option<MultiturnReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fanout: Option<FanoutReport>,
    pub targets: Vec<Target>,
}

/// One of the benchmark targets (issues 6, 10 and 14) and whether this run met it.
#[derive(Debug, Serialize)]
pub struct Target {
    pub figure: &'static str,
    pub value: f64,
    pub target: &'static str,
    pub met: bool,
}

impl Results {
    /// Fills `targets` from the sections that ran.
    pub fn judge(&mut self) {
        let mut t = Vec::new();
        let mut at_least = |figure, value: f64, min: f64, target| {
            t.push(Target {
                figure,
                value,
                target,
                met: value >= min,
            })
        };
        if let Some(e) = &self.engine {
            at_least("engine.tg_ratio", e.tg_ratio, 1.0, ">= 1.0");
            at_least("engine.pp_ratio", e.pp_ratio, 1.0, ">= 1.0");
        }
        if let Some(e) = &self.engine_1b {
            at_least("engine.tg_ratio_1b", e.tg_ratio, 1.0, ">= 1.0");
            at_least("engine.pp_ratio_1b", e.pp_ratio, 1.0, ">= 1.0");
        }
        if let Some(s) = &self.serving {
            at_least(
                "serving.aggregate_ratio_8_vs_1",
                s.aggregate_ratio_8_vs_1,
                3.0,
                ">= 3.0",
            );
            at_least(
                "serving.vs_llama_server_8",
                s.vs_llama_server_8,
                1.0,
                ">= 1.0",
            );
        }
        if let Some(m) = &self.multiturn {
            at_least(
                "serving.vs_llama_server_multiturn",
                m.vs_llama_server_multiturn,
                1.0,
                ">= 1.0",
            );
            t.push(Target {
                figure: "serving.prefix_ttft_ratio",
                value: m.prefix_ttft_ratio,
                target: "<= 0.3",
                met: m.prefix_ttft_ratio <= 0.3,
            });
        }
        if let Some(o) = &self.overhead {
            t.push(Target {
                figure: "overhead.p50_ms",
                value: o.p50_ms,
                target: "<= 25",
                met: o.p50_ms <= 25.0,
            });
        }
        if let Some(f) = &self.fanout {
            t.push(Target {
                figure: "fanout.delivery_p99_ms",
                value: f.delivery_p99_ms,
                target: "<= 50",
                met: f.delivery_p99_ms <= 50.0,
            });
        }
        self.targets = t;
    }

    pub fn tables(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "Machine: {} ({} cores, {} GiB, Orrery's SIMD path {}), {}, commit {}, {}; load average {} at the start, {} at the end\n",
            m.cpu,
            m.cores,
            m.memory_gib,
            m.simd,
            m.os,
            m.commit,
            m.date,
            self.load_average_start,
            self.load_average_end
        );
        if !self.contention.is_empty() {
            let busy: Vec<f64> = self.contention.iter().map(|c| c.busy_cores).collect();
            let noisy = busy.iter().filter(|b| **b > 0.3).count();
            let _ = writeln!(
                s,
                "Other work on the machine before the {} measurements: {} busy cores on average, \
                 {noisy} measurement(s) started with more than 0.3 cores busy.\n",
                busy.len(),
                crate::stats::round(crate::stats::mean(&busy), 2)
            );
        }
        if let Some(e) = &self.engine {
            engine_table(&mut s, e);
        }
        if let Some(e) = &self.engine_1b {
            engine_table(&mut s, e);
        }
        if let Some(v) = &self.serving {
            serving_table(&mut s, v);
        }
        if let Some(o) = &self.overhead {
            overhead_table(&mut s, o);
        }
        if let Some(c) = &self.cluster {
            cluster_table(&mut s, c);
        }
        if let Some(m) = &self.multiturn {
            multiturn_table(&mut s, m);
        }
        if let Some(f) = &self.fanout {
            fanout_table(&mut s, f);
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                s,
                "Targets (issues 6, 10, 14)\n\n| figure | value | target | met |\n|---|---|---|---|"
            );
            for t in &self.targets {
                let met = if t.met { "yes" } else { "no" };
                let _ = writeln!(
                    s,
                    "| `{}` | {} | {} | {met} |",
                    t.figure,
                    num(t.value),
                    t.target
                );
            }
            s.push('\n');
        }
        s
    }
}

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "–".into()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), num)
}

fn engine_table(s: &mut String, e: &EngineReport) {
    let _ = writeln!(
        s,
        "Engine, {}: prompt processing (pp, {} prompt tokens) and generation (tg, {} tokens), tokens/s\n",
        e.model, e.prompt_tokens, e.gen_tokens
    );
    let _ = writeln!(
        s,
        "| engine | threads | pp tok/s | tg tok/s | pp ÷ llama.cpp | tg ÷ llama.cpp | tg limit (bandwidth) | load s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|"
    );
    for r in &e.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.engine,
            r.threads,
            num(r.pp_tps),
            num(r.tg_tps),
            opt(r.pp_ratio),
            opt(r.tg_ratio),
            num(r.tg_limit_tps),
            opt(r.load_s),
            num(r.peak_rss_mib)
        );
    }
    let bw: Vec<String> = e
        .bandwidth_gbs
        .iter()
        .map(|(t, g)| format!("{g} GB/s at {t} thread(s)"))
        .collect();
    let _ = writeln!(
        s,
        "\nMemory read bandwidth: {}. Weights read per token: {:.1} MB quantized, {:.1} MB as f32.\n",
        bw.join(", "),
        e.weight_bytes_quantized as f64 / 1e6,
        e.weight_bytes_f32 as f64 / 1e6
    );
}

fn serving_table(s: &mut String, v: &ServingReport) {
    let _ = writeln!(
        s,
        "Serving: concurrent users streaming {}-token answers, {} threads, quantized (aggregate tokens/s, time to first token ms)\n",
        v.max_tokens, v.threads
    );
    let _ = writeln!(
        s,
        "| users | orrery tok/s | orrery TTFT p50 / p99 | llama-server tok/s | llama-server TTFT p50 / p99 | orrery ÷ llama-server | requests (orrery / llama) |\n|---|---|---|---|---|---|---|"
    );
    for l in &v.levels {
        let (o, p) = (&l.orrery, &l.llama_server);
        let _ = writeln!(
            s,
            "| {} | {} | {} / {} | {} | {} / {} | {} | {} / {} |",
            l.users,
            num(o.aggregate_tps),
            num(o.ttft.p50_ms),
            num(o.ttft.p99_ms),
            num(p.aggregate_tps),
            num(p.ttft.p50_ms),
            num(p.ttft.p99_ms),
            num(l.vs_llama_server),
            o.requests,
            p.requests
        );
    }
    let _ = writeln!(
        s,
        "\nAggregate at 8 users ÷ 1 user: {}. Orrery ÷ llama-server --parallel 8: {}.\n",
        num(v.aggregate_ratio_8_vs_1),
        num(v.vs_llama_server_8)
    );
}

fn overhead_table(s: &mut String, o: &OverheadReport) {
    let _ = writeln!(
        s,
        "Orchestration overhead: time to first token, {} sequential asks of {:?} (ms)\n",
        o.requests, o.prompt
    );
    let _ = writeln!(s, "| path | p50 | p99 |\n|---|---|---|");
    let rows = [
        ("engine called in-process", o.direct.p50_ms, o.direct.p99_ms),
        (
            "through Orrery (WebSocket → Temporal → actors → engine)",
            o.orrery.p50_ms,
            o.orrery.p99_ms,
        ),
        (
            "through Orrery − in-process, percentile by percentile",
            o.unpaired.p50_ms,
            o.unpaired.p99_ms,
        ),
        (
            "**added by Orrery**, per request: client TTFT − the engine's own TTFT",
            o.p50_ms,
            o.p99_ms,
        ),
    ];
    for (name, p50, p99) in rows {
        let _ = writeln!(s, "| {name} | {} | {} |", num(p50), num(p99));
    }
    s.push('\n');
    if let Some(c) = &o.cpu {
        let _ = writeln!(
            s,
            "CPU time per ask outside the engine: synthetic engine at {} tok/s, {}-token answers, {} WebSocket clients, {} asks done ({} failed) in {} s (CPU ms per ask)\n",
            c.rate, c.answer_tokens, c.clients, c.asks_done, c.asks_failed, c.elapsed_s
        );
        let _ = writeln!(s, "| process | CPU ms per ask |\n|---|---|");
        for (name, ms) in [
            ("orrery node", c.node_ms_per_ask),
            ("Temporal dev server", c.temporal_ms_per_ask),
            ("**both** (`overhead.cpu_ms_per_ask`)", c.cpu_ms_per_ask),
        ] {
            let _ = writeln!(s, "| {name} | {} |", num(ms));
        }
        s.push('\n');
    }
}

fn fanout_table(s: &mut String, f: &FanoutReport) {
    let _ = writeln!(
        s,
        "WebSocket fan-out: {} users on one node ({} connected), synthetic engine at {} tok/s, {}-token answers, one ask every {} ms; token delivery = engine generated → client received (ms)\n",
        f.users, f.connected, f.rate, f.answer_tokens, f.ramp_ms
    );
    let _ = writeln!(
        s,
        "| delivery p50 | delivery p99 | delivery max | peak concurrent streams | tokens received | asks done | asks failed | seconds |\n|---|---|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| {} | {} | {} | {} | {} | {} | {} | {} |",
        num(f.delivery_p50_ms),
        num(f.delivery_p99_ms),
        num(f.delivery_max_ms),
        f.peak_streams,
        f.tokens_received,
        f.asks_done,
        f.asks_failed,
        num(f.elapsed_s)
    );
    if f.unstamped_words > 0 {
        let _ = writeln!(
            s,
            "\n{} word(s) arrived without a stamp.",
            f.unstamped_words
        );
    }
    if let Some(e) = &f.first_error {
        let _ = writeln!(s, "\nFirst failure: {e}");
    }
    s.push('\n');
}

fn cluster_table(s: &mut String, c: &ClusterReport) {
    let _ = writeln!(
        s,
        "Cluster orchestration: synthetic engine at {} tok/s, {}-token answers ({} ms each), max_sequences {} per node, {} WebSocket clients, {} s per level\n",
        c.rate, c.answer_tokens, c.answer_ms, c.max_sequences, c.clients, c.duration_s
    );
    let _ = writeln!(
        s,
        "| nodes | req/s | ideal req/s | efficiency | latency p50 / p99 ms | TTFT p50 / p99 ms | requests | errors |\n|---|---|---|---|---|---|---|---|"
    );
    for l in &c.levels {
        let d = &l.load;
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
            l.nodes,
            num(d.requests_per_s),
            num(l.ideal_rps),
            num(l.efficiency),
            num(d.latency.p50_ms),
            num(d.latency.p99_ms),
            num(d.ttft.p50_ms),
            num(d.ttft.p99_ms),
            d.requests,
            d.errors
        );
    }
    s.push('\n');
}

fn multiturn_table(s: &mut String, m: &MultiturnReport) {
    let _ = writeln!(
        s,
        "Multi-turn chat: {} users x {} turns, {}-token answers, the whole conversation sent each turn (time to first token p50 per turn, ms; aggregate tokens/s)\n",
        m.users, m.turns, m.answer_tokens
    );
    let turns: Vec<String> = (1..=m.turns).map(|t| format!("turn {t}")).collect();
    let _ = writeln!(
        s,
        "| server | {} | tok/s | errors |\n|---|{}---|---|",
        turns.join(" | "),
        "---|".repeat(m.turns)
    );
    for (name, r) in [
        ("orrery, prefix cache on", &m.cached),
        ("orrery, prefix cache off", &m.uncached),
        ("llama-server, cache_prompt", &m.llama_server),
    ] {
        let ttft: Vec<String> = r.ttft_p50_ms.iter().map(|x| num(*x)).collect();
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} |",
            ttft.join(" | "),
            num(r.aggregate_tps),
            r.errors
        );
    }
    let _ = writeln!(
        s,
        "\nTurn-5 TTFT with the cache ÷ without: {}; orrery ÷ llama-server aggregate tok/s: {}\n",
        num(m.prefix_ttft_ratio),
        num(m.vs_llama_server_multiturn)
    );
}
