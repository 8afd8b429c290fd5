//! Multi-turn chat: 8 users, 5 turns each, every turn sending the whole conversation so far (the
//! history grows by a question and an answer per turn). Time to first token per turn with
//! Orrery's prefix cache on and off, and llama-server `--parallel 8` with `cache_prompt: true`
//! beside it; aggregate tokens/s of each.

use crate::load;
use crate::peer::Peer;
use crate::sandbox::{NodeSpec, Sandbox};
use crate::stats::{ms, percentile, ratio, round};
use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub const USERS: usize = 8;
pub const TURNS: usize = 5;
const ANSWER_TOKENS: u32 = 48;

/// What every conversation starts with: a system prompt of ~200 tokens, as assistants carry.
const SYSTEM: &str = "You are a patient travel assistant for a small agency. You answer in two or \
three sentences, plainly, without lists. The agency sells trips to Portugal, Norway, Japan, Peru, \
Kenya and New Zealand; each trip lasts ten to fourteen days, includes flights from the traveller's \
home city, hotels with breakfast, one guided day in each region and a local phone card. Prices \
depend on the season: spring and autumn are the cheapest, summer the dearest, winter is only \
offered for Japan and New Zealand. Travellers can change dates up to thirty days before leaving \
at no cost; after that a fee of ten percent applies. Travel insurance is sold separately. When a \
traveller asks for something the agency does not offer, say so kindly and suggest the closest \
trip it does offer.";

const QUESTIONS: [&str; TURNS] = [
    "Which trip would you suggest for someone who loves mountains?",
    "How long would that trip last, and what is included?",
    "When is the cheapest time to go?",
    "Can I change my dates later if I need to?",
    "Thanks. Summarize what we discussed in one sentence.",
];

/// One user's conversation so far, as chat messages: the system prompt, then the turns.
fn messages(user: usize, answers: &[String]) -> Vec<Value> {
    let mut m = vec![
        json!({"role": "system", "content": format!("{SYSTEM} You are talking to traveller number {user}.")}),
    ];
    for (i, q) in QUESTIONS.iter().enumerate().take(answers.len() + 1) {
        m.push(json!({"role": "user", "content": q}));
        if let Some(a) = answers.get(i) {
            m.push(json!({"role": "assistant", "content": a}));
        }
    }
    m
}

/// One answered turn.
#[derive(Clone, Debug)]
struct Turn {
    turn: usize,
    ttft_ms: f64,
    tokens: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    /// p50 time to first token of each turn (1..=5) over the users.
    pub ttft_p50_ms: Vec<f64>,
    pub aggregate_tps: f64,
    pub errors: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct MultiturnReport {
    pub users: usize,
    pub turns: usize,
    pub answer_tokens: u32,
    pub cached: Run,
    pub uncached: Run,
    pub llama_server: Run,
    /// Turn-5 time to first token with the prefix cache ÷ without.
    pub prefix_ttft_ratio: f64,
    /// Orrery (cache on) ÷ llama-server (cache_prompt), aggregate tokens/s.
    pub vs_llama_server_multiturn: f64,
}

fn summarize(turns: &[Turn], errors: usize, secs: f64) -> Run {
    let ttft_p50_ms = (1..=TURNS)
        .map(|t| {
            let v: Vec<f64> = turns
                .iter()
                .filter(|x| x.turn == t)
                .map(|x| x.ttft_ms)
                .collect();
            round(percentile(&v, 50.0), 1)
        })
        .collect();
    let tokens: u64 = turns.iter().map(|t| u64::from(t.tokens)).sum();
    Run {
        ttft_p50_ms,
        aggregate_tps: round(tokens as f64 / secs.max(1e-9), 1),
        errors,
    }
}

/// Runs every user's conversation at once through `turn` (user, conversation → answer text,
/// time to first token, tokens).
async fn users<F, Fut>(turn: F) -> Run
where
    F: Fn(usize, Vec<Value>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<(String, f64, u32)>> + Send,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..USERS)
        .map(|u| {
            let turn = turn.clone();
            tokio::spawn(async move {
                let (mut answers, mut done, mut errors) = (Vec::new(), Vec::new(), 0);
                for t in 1..=TURNS {
                    match turn(u, messages(u, &answers)).await {
                        Ok((text, ttft_ms, tokens)) => {
                            answers.push(text);
                            done.push(Turn {
                                turn: t,
                                ttft_ms,
                                tokens,
                            });
                        }
                        Err(e) => {
                            eprintln!("multiturn: user {u} turn {t}: {e:#}");
                            errors += 1;
                            break;
                        }
                    }
                }
                (done, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        match t.await {
            Ok((d, e)) => {
                all.extend(d);
                errors += e;
            }
            Err(_) => errors += 1,
        }
    }
    summarize(&all, errors, t0.elapsed().as_secs_f64())
}

/// One turn over Orrery's WebSocket.
async fn orrery_turn(url: String, conversation: Vec<Value>) -> anyhow::Result<(String, f64, u32)> {
    let mut ws = load::connect(&url).await?;
    let ask = json!({"type": "ask", "messages": conversation, "max_tokens": ANSWER_TOKENS, "temperature": 0});
    let t0 = Instant::now();
    ws.send(Message::Text(ask.to_string().into())).await?;
    let mut ttft = None;
    loop {
        let m = ws.next().await.context("socket closed")??;
        let Message::Text(t) = m else { continue };
        let f: Value = serde_json::from_str(&t)?;
        match f["type"].as_str().unwrap_or_default() {
            "chunk" if ttft.is_none() => ttft = Some(ms(t0.elapsed())),
            "done" => {
                let text = f["text"].as_str().unwrap_or_default().to_string();
                let tokens = f["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32;
                return Ok((text, ttft.unwrap_or(ms(t0.elapsed())), tokens));
            }
            "failed" | "error" | "cancelled" => bail!("ask ended: {f}"),
            _ => {}
        }
    }
}

/// One turn on llama-server's OpenAI endpoint, streamed, with its prompt cache on.
async fn llama_turn(
    http: reqwest::Client,
    url: String,
    conversation: Vec<Value>,
) -> anyhow::Result<(String, f64, u32)> {
    let body = json!({
        "messages": conversation, "max_tokens": ANSWER_TOKENS, "temperature": 0, "stream": true,
        "stream_options": {"include_usage": true}, "cache_prompt": true,
    });
    let t0 = Instant::now();
    let resp = http.post(&url).json(&body).send().await?;
    if !resp.status().is_success() {
        bail!("{}", resp.status());
    }
    let mut stream = resp.bytes_stream();
    let (mut buf, mut text, mut ttft, mut tokens) = (Vec::new(), String::new(), None, 0u32);
    while let Some(bytes) = stream.next().await {
        buf.extend_from_slice(&bytes?);
        for data in crate::sse::take_data(&mut buf) {
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(&data)?;
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str()
                && !t.is_empty()
            {
                ttft.get_or_insert_with(|| ms(t0.elapsed()));
                text.push_str(t);
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                tokens = n as u32;
            }
        }
    }
    Ok((text, ttft.unwrap_or(ms(t0.elapsed())), tokens))
}

fn node_config(model: &Path, prefix_cache: bool, heartbeat_timeout_secs: u64) -> String {
    format!(
        "[[models]]\nid = \"smollm2-q\"\nsource = \"path:{}\"\ndefault = true\nload = true\n\
         max_sequences = {USERS}\nprefix_cache = {prefix_cache}\n[limits]\nmax_tokens = 1024\n\
         heartbeat_timeout_secs = {heartbeat_timeout_secs}\n[autoscaling]\nenabled = false\n{}",
        model.display(),
        crate::sandbox::UNLIMITED_USERS
    )
}

pub async fn run(
    model: &Path,
    peer: &Peer,
    threads: usize,
    heartbeat_timeout_secs: u64,
) -> anyhow::Result<MultiturnReport> {
    let mut orrery = Vec::new();
    for prefix_cache in [true, false] {
        let sb = Sandbox::start().await?;
        let config = node_config(model, prefix_cache, heartbeat_timeout_secs);
        let node = sb
            .node(NodeSpec {
                id: "bench",
                ip: "127.0.0.1",
                config: &config,
                mesh: None,
                env: &[(orrery::engine::THREADS_ENV, threads.to_string())],
            })
            .await?;
        let url = node.ws_url();
        // Warm-up: the first workflows pay for worker start-up.
        orrery_turn(url.clone(), messages(99, &[])).await?;
        let what = if prefix_cache { "on" } else { "off" };
        eprintln!("multiturn: orrery, prefix cache {what}, {USERS} users x {TURNS} turns");
        crate::quiet::settle_async(&format!("multiturn orrery cache {what}")).await;
        let run = users(move |_, c| orrery_turn(url.clone(), c)).await;
        drop(node);
        sb.stop().await;
        orrery.push(run);
    }
    let dir = tempfile::tempdir()?;
    let server = peer.server(model, USERS, 1024, threads, dir.path()).await?;
    let url = format!("{}/v1/chat/completions", server.url);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    llama_turn(http.clone(), url.clone(), messages(99, &[])).await?;
    eprintln!(
        "multiturn: llama-server --parallel {USERS}, cache_prompt, {USERS} users x {TURNS} turns"
    );
    crate::quiet::settle_async("multiturn llama-server").await;
    let llama = users(move |_, c| llama_turn(http.clone(), url.clone(), c)).await;
    server.stop().await;
    let uncached = orrery.pop().context("uncached run")?;
    let cached = orrery.pop().context("cached run")?;
    let last = |r: &Run| r.ttft_p50_ms.last().copied().unwrap_or(f64::NAN);
    Ok(MultiturnReport {
        users: USERS,
        turns: TURNS,
        answer_tokens: ANSWER_TOKENS,
        prefix_ttft_ratio: ratio(last(&cached), last(&uncached)),
        vs_llama_server_multiturn: ratio(cached.aggregate_tps, llama.aggregate_tps),
        cached,
        uncached,
        llama_server: llama,
    })
}
