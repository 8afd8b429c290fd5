//! Engine benchmark: prompt processing and generation tokens/s of Orrery's candle engine against
//! llama.cpp's `llama-bench` on the same GGUF at 1 and 2 threads, with load time, peak memory and
//! the memory-bandwidth limit beside them.
//!
//! Each Orrery measurement runs in a child process of this binary (`ORRERY_BENCH_PROBE`) with its
//! thread count in `ORRERY_ENGINE_THREADS`, and a fresh process gives an
//! honest load time and peak RSS.

use crate::peer::Peer;
use crate::stats::{mean, median, round};
use anyhow::{Context, bail};
use orrery::engine::{
    ChatMessage, Engine, GenEvent, GenSummary, GenerateRequest, LocalConfig, LocalEngine,
    Precision, Role, SamplingParams,
};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Environment variable that turns this binary into an engine probe (JSON [`ProbeSpec`]).
pub const PROBE_ENV: &str = "ORRERY_BENCH_PROBE";

/// A question SmolLM2 answers at length, so greedy decoding reaches `max_tokens`.
pub const LONG_ANSWER_PROMPT: &str =
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub model: PathBuf,
    pub precision: Precision,
    pub prompt: String,
    pub gen_tokens: u32,
    pub reps: usize,
    /// When above zero, the probe instead times this many short answers (`max_tokens` =
    /// `gen_tokens`) from `generate` to the first token, with the engine configured as a node
    /// configures it: the in-process side of the overhead benchmark.
    #[serde(default)]
    pub first_token_requests: usize,
    #[serde(default)]
    pub max_sequences: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeResult {
    pub load_s: f64,
    pub peak_rss_mib: f64,
    pub prompt_tokens: u32,
    /// Mean completion tokens per repetition (below `gen_tokens` if the model stopped early).
    pub gen_tokens: f64,
    pub pp_tps: f64,
    pub tg_tps: f64,
    /// First-token times in ms (first-token mode only).
    #[serde(default)]
    pub ttft_ms: Vec<f64>,
}

/// One row of the engine table.
#[derive(Clone, Debug, Serialize)]
pub struct EngineRow {
    pub engine: String,
    pub threads: usize,
    pub pp_tps: f64,
    pub tg_tps: f64,
    pub load_s: Option<f64>,
    pub peak_rss_mib: f64,
    /// Generation limit from memory bandwidth: measured GB/s ÷ weight bytes read per token.
    pub tg_limit_tps: f64,
    /// This row ÷ llama.cpp at the same threads.
    pub pp_ratio: Option<f64>,
    pub tg_ratio: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct EngineReport {
    /// The GGUF's file name.
    pub model: String,
    /// Orrery (quantized) ÷ llama.cpp, 2 threads.
    pub tg_ratio: f64,
    pub pp_ratio: f64,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub weight_bytes_quantized: u64,
    pub weight_bytes_f32: u64,
    pub bandwidth_gbs: Vec<(usize, f64)>,
    pub rows: Vec<EngineRow>,
}

/// Runs the probe described by `spec_json` in this process and prints its result as JSON.
pub fn probe_main(spec_json: &str) -> anyhow::Result<()> {
    let spec: ProbeSpec = serde_json::from_str(spec_json).context("probe spec")?;
    let result = run_probe(&spec)?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

fn run_probe(spec: &ProbeSpec) -> anyhow::Result<ProbeResult> {
    let t0 = Instant::now();
    let config = if spec.first_token_requests > 0 {
        LocalConfig {
            max_sequences: spec.max_sequences.max(1),
            precision: spec.precision,
            // The same prompt is asked again and again: measure prefill, not the cache.
            prefix_cache: false,
            ..LocalConfig::default()
        }
    } else {
        LocalConfig {
            max_sequences: 1,
            // The whole prompt in one forward pass, as llama-bench does.
            prefill_chunk: 4096,
            precision: spec.precision,
            threads: 0,
            context: 0,
            prefix_cache: false,
        }
    };
    let engine = LocalEngine::load_with(&spec.model, "bench", config)?;
    let load_s = t0.elapsed().as_secs_f64();
    let messages = vec![ChatMessage::new(Role::User, spec.prompt.clone())];
    let prompt_tokens = engine.count_tokens(&messages, &SamplingParams::default())?;
    generate(&engine, &messages, 4)?; // warm-up: first-touch allocations, caches
    if spec.first_token_requests > 0 {
        let ttft_ms = (0..spec.first_token_requests)
            .map(|_| first_token_ms(&engine, &messages, spec.gen_tokens))
            .collect::<anyhow::Result<Vec<f64>>>()?;
        return Ok(ProbeResult {
            load_s: round(load_s, 2),
            peak_rss_mib: crate::machine::peak_rss_mib(),
            prompt_tokens,
            gen_tokens: f64::from(spec.gen_tokens),
            // Not measured in this mode (and NaN would not survive JSON).
            pp_tps: 0.0,
            tg_tps: 0.0,
            ttft_ms,
        });
    }
    let (mut pp, mut tg, mut produced) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..spec.reps {
        let s = generate(&engine, &messages, spec.gen_tokens)?;
        let ttft = s.time_to_first_token.as_secs_f64();
        pp.push(f64::from(s.prompt_tokens) / ttft);
        // The first token comes out of the prompt pass; each later one is one decode step.
        let decode = s.total.as_secs_f64() - ttft;
        if s.completion_tokens > 1 && decode > 0.0 {
            tg.push(f64::from(s.completion_tokens - 1) / decode);
        }
        produced.push(f64::from(s.completion_tokens));
    }
    Ok(ProbeResult {
        load_s: round(load_s, 2),
        peak_rss_mib: crate::machine::peak_rss_mib(),
        prompt_tokens,
        gen_tokens: mean(&produced),
        pp_tps: round(mean(&pp), 1),
        tg_tps: round(mean(&tg), 1),
        ttft_ms: Vec::new(),
    })
}

/// `generate` → first text, in ms, as a caller of the engine sees it; the answer is then finished.
fn first_token_ms(
    engine: &LocalEngine,
    messages: &[ChatMessage],
    max_tokens: u32,
) -> anyhow::Result<f64> {
    let params = SamplingParams {
        max_tokens,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let t0 = Instant::now();
    let mut rx = engine.generate(GenerateRequest::new(messages.to_vec(), params));
    let mut first = None;
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            GenEvent::Token { .. } => {
                first.get_or_insert_with(|| crate::stats::ms(t0.elapsed()));
            }
            GenEvent::Logprobs(_) => {}
            GenEvent::Done(_) => return first.context("the answer had no text"),
            GenEvent::Failed(e) => bail!("generation failed: {e}"),
        }
    }
    bail!("the engine closed the stream without a result")
}

fn generate(
    engine: &LocalEngine,
    messages: &[ChatMessage],
    max_tokens: u32,
) -> anyhow::Result<GenSummary> {
    let params = SamplingParams {
        max_tokens,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let mut rx = engine.generate(GenerateRequest::new(messages.to_vec(), params));
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            GenEvent::Token { .. } | GenEvent::Logprobs(_) => {}
            GenEvent::Done(s) => return Ok(s),
            GenEvent::Failed(e) => bail!("generation failed: {e}"),
        }
    }
    bail!("the engine closed the stream without a result")
}

/// Runs a probe in a child process with `threads` inference threads.
pub fn probe(spec: &ProbeSpec, threads: usize) -> anyhow::Result<ProbeResult> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .env(PROBE_ENV, serde_json::to_string(spec)?)
        .env(orrery::engine::THREADS_ENV, threads.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("engine probe ({threads} threads) failed: {}", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("probe output: {stdout}"))
}

/// Bytes of every tensor in the GGUF as stored, and as f32.
fn weight_bytes(model: &Path) -> anyhow::Result<(u64, u64)> {
    let mut f = std::fs::File::open(model)?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut f)?;
    let (mut stored, mut f32) = (0u64, 0u64);
    for t in content.tensor_infos.values() {
        let n = t.shape.elem_count();
        stored += (n / t.ggml_dtype.block_size() * t.ggml_dtype.type_size()) as u64;
        f32 += n as u64 * 4;
    }
    Ok((stored, f32))
}

pub struct EngineArgs<'a> {
    pub model: &'a Path,
    pub peer: &'a Peer,
    pub reps: usize,
    pub gen_tokens: u32,
    pub threads: &'a [usize],
    /// Whether to measure the engine on weights expanded to f32 too (rows "orrery f32").
    pub f32: bool,
    /// Whether to measure it with 8-bit activations for K-quant matrices too (rows "orrery
    /// int8", the node's default precision; the ratios are then this row's).
    pub int8: bool,
}

/// Medians over repetitions; ratios are medians of the ratios of neighbouring runs, so a burst of
/// load from elsewhere on the machine hits both sides of a ratio alike.
pub fn run(a: &EngineArgs) -> anyhow::Result<EngineReport> {
    let (wq, wf) = weight_bytes(a.model)?;
    let spec = |precision| ProbeSpec {
        model: a.model.to_path_buf(),
        precision,
        prompt: LONG_ANSWER_PROMPT.into(),
        gen_tokens: a.gen_tokens,
        reps: 1,
        first_token_requests: 0,
        max_sequences: 1,
    };
    let mut rows = Vec::new();
    let mut bandwidth = Vec::new();
    let mut prompt_tokens = 0;
    for &t in a.threads {
        let bw = crate::bandwidth::measure_gbs(t);
        bandwidth.push((t, round(bw, 1)));
        let limit = |bytes: u64| round(bw * 1e9 / bytes as f64, 1);
        // Interleaved: orrery quantized, llama.cpp, orrery f32 / int8, then again.
        let (mut qs, mut ls, mut fs, mut is) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for rep in 1..=a.reps.max(1) {
            eprintln!(
                "engine: {}, {t} thread(s), repetition {rep}: orrery quantized, llama-bench{}{}",
                a.model.display(),
                if a.f32 { ", orrery f32" } else { "" },
                if a.int8 { ", orrery int8" } else { "" }
            );
            crate::quiet::settle(&format!("engine {t} thread(s) repetition {rep}"));
            let q = probe(&spec(Precision::Quantized), t)?;
            prompt_tokens = q.prompt_tokens;
            if (q.gen_tokens as u32) < a.gen_tokens {
                eprintln!(
                    "engine: note: the model stopped after {:.0} of {} tokens",
                    q.gen_tokens, a.gen_tokens
                );
            }
            ls.push(
                a.peer
                    .llama_bench(a.model, q.prompt_tokens, a.gen_tokens, t, 1)?,
            );
            qs.push(q);
            if a.f32 {
                fs.push(probe(&spec(Precision::F32), t)?);
            }
            if a.int8 {
                is.push(probe(&spec(Precision::Int8), t)?);
            }
        }
        let med = |xs: Vec<f64>| round(median(&xs), 1);
        let lpp: Vec<f64> = ls.iter().map(|l| l.pp_tps).collect();
        let ltg: Vec<f64> = ls.iter().map(|l| l.tg_tps).collect();
        let paired = |xs: &[f64], ys: &[f64]| {
            let r: Vec<f64> = xs.iter().zip(ys).map(|(x, y)| x / y).collect();
            round(median(&r), 2)
        };
        let orrery_row = |name: &str, runs: &[ProbeResult], bytes: u64| {
            let pp: Vec<f64> = runs.iter().map(|r| r.pp_tps).collect();
            let tg: Vec<f64> = runs.iter().map(|r| r.tg_tps).collect();
            EngineRow {
                engine: name.into(),
                threads: t,
                pp_ratio: Some(paired(&pp, &lpp)),
                tg_ratio: Some(paired(&tg, &ltg)),
                pp_tps: med(pp),
                tg_tps: med(tg),
                load_s: Some(round(
                    median(&runs.iter().map(|r| r.load_s).collect::<Vec<_>>()),
                    2,
                )),
                peak_rss_mib: runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max),
                tg_limit_tps: limit(bytes),
            }
        };
        rows.push(orrery_row("orrery quantized", &qs, wq));
        rows.push(EngineRow {
            engine: "llama.cpp".into(),
            threads: t,
            pp_tps: med(lpp.clone()),
            tg_tps: med(ltg.clone()),
            load_s: None,
            peak_rss_mib: ls.iter().map(|l| l.peak_rss_mib).fold(0.0, f64::max),
            tg_limit_tps: limit(wq),
            pp_ratio: None,
            tg_ratio: None,
        });
        if a.f32 {
            rows.push(orrery_row("orrery f32", &fs, wf));
        }
        if a.int8 {
            rows.push(orrery_row("orrery int8", &is, wq));
        }
    }
    let headline = if a.int8 {
        "orrery int8"
    } else {
        "orrery quantized"
    };
    let at2 = rows
        .iter()
        .find(|r| r.engine == headline && r.threads == 2)
        .or_else(|| rows.iter().find(|r| r.engine == headline));
    Ok(EngineReport {
        model: a.model.file_name().map_or_else(
            || a.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        tg_ratio: at2.and_then(|r| r.tg_ratio).unwrap_or(f64::NAN),
        pp_ratio: at2.and_then(|r| r.pp_ratio).unwrap_or(f64::NAN),
        prompt_tokens,
        gen_tokens: a.gen_tokens,
        weight_bytes_quantized: wq,
        weight_bytes_f32: wf,
        bandwidth_gbs: bandwidth,
        rows,
    })
}
