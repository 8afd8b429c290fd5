//! Closed-loop load: N users, each sending one request at a time and waiting for the whole answer,
//! through Orrery's WebSocket protocol or an OpenAI-compatible streaming endpoint.

use crate::stats::{Latency, ms, round};
use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// One answered request.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Request sent → first streamed text.
    pub ttft_ms: f64,
    /// Request sent → answer complete.
    pub latency_ms: f64,
    pub tokens: u32,
    /// Orrery only: the engine's own first-token time, reported in the `done` frame.
    pub engine_ttft_ms: Option<f64>,
}

/// How long each user keeps asking.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    Requests(usize),
    Elapsed(Duration),
}

#[derive(Clone, Debug)]
pub struct LoadResult {
    pub samples: Vec<Sample>,
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

/// The summary printed and written for one load level.
#[derive(Clone, Debug, Serialize)]
pub struct LoadSummary {
    pub requests: usize,
    pub errors: usize,
    pub elapsed_s: f64,
    pub requests_per_s: f64,
    pub aggregate_tps: f64,
    pub tokens_per_answer: f64,
    pub ttft: Latency,
    pub latency: Latency,
}

impl LoadResult {
    pub fn summary(&self) -> LoadSummary {
        let secs = self.elapsed.as_secs_f64();
        let tokens: u64 = self.samples.iter().map(|s| u64::from(s.tokens)).sum();
        let ttft: Vec<f64> = self.samples.iter().map(|s| s.ttft_ms).collect();
        let lat: Vec<f64> = self.samples.iter().map(|s| s.latency_ms).collect();
        let n = self.samples.len();
        LoadSummary {
            requests: n,
            errors: self.errors.len(),
            elapsed_s: round(secs, 2),
            requests_per_s: round(n as f64 / secs, 2),
            aggregate_tps: round(tokens as f64 / secs, 1),
            tokens_per_answer: round(tokens as f64 / n.max(1) as f64, 1),
            ttft: Latency::of(&ttft),
            latency: Latency::of(&lat),
        }
    }
}

/// Runs `users` concurrent users, user i driven by `user(i, until)`; the clock runs until the last ends.
async fn closed_loop<F, Fut>(users: usize, until: Until, user: F) -> LoadResult
where
    F: Fn(usize, Until) -> Fut,
    Fut: std::future::Future<Output = (Vec<Sample>, Vec<String>)> + Send + 'static,
{
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..users).map(|i| tokio::spawn(user(i, until))).collect();
    let mut result = LoadResult {
        samples: Vec::new(),
        errors: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((s, e)) => {
                result.samples.extend(s);
                result.errors.extend(e);
            }
            Err(e) => result.errors.push(format!("user task: {e}")),
        }
    }
    result.elapsed = t0.elapsed();
    result
}

fn keep_going(until: Until, done: usize, t0: Instant) -> bool {
    match until {
        Until::Requests(n) => done < n,
        Until::Elapsed(d) => t0.elapsed() < d,
    }
}

/// Users on Orrery's `/ws`, spread over `ws_urls`; `ask` is the ask frame to send.
pub async fn websocket(ws_urls: &[String], users: usize, until: Until, ask: Value) -> LoadResult {
    let urls = ws_urls.to_vec();
    closed_loop(users, until, move |i, until| {
        let url = urls[i % urls.len()].clone();
        let ask = ask.clone();
        async move {
            let (mut samples, mut errors) = (Vec::new(), Vec::new());
            let mut ws = match connect(&url).await {
                Ok(ws) => ws,
                Err(e) => return (samples, vec![format!("{e:#}")]),
            };
            let t0 = Instant::now();
            let mut done = 0;
            while keep_going(until, done, t0) {
                match ws_ask(&mut ws, &ask).await {
                    Ok(s) => samples.push(s),
                    Err(e) => errors.push(format!("{e:#}")),
                }
                done += 1;
            }
            (samples, errors)
        }
    })
    .await
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(url: &str) -> anyhow::Result<Ws> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let hello = next_json(&mut ws).await?;
    if hello["type"] != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(ws)
}

async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(300), ws.next())
            .await
            .context("no frame for 300 s")?
            .context("socket closed")??;
        if let Message::Text(t) = m {
            return Ok(serde_json::from_str(&t)?);
        }
    }
}

/// One ask on an open socket, timed from sending it to its `done` frame.
pub async fn ws_ask(ws: &mut Ws, ask: &Value) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    ws.send(Message::Text(ask.to_string().into())).await?;
    let mut ttft = None;
    loop {
        let f = next_json(ws).await?;
        match f["type"].as_str().unwrap_or_default() {
            "chunk" if ttft.is_none() => ttft = Some(t0.elapsed()),
            "done" => {
                let latency = t0.elapsed();
                return Ok(Sample {
                    ttft_ms: ms(ttft.unwrap_or(latency)),
                    latency_ms: ms(latency),
                    tokens: f["usage"]["completion_tokens"].as_u64().unwrap_or(0) as u32,
                    engine_ttft_ms: f["timings"]["first_token_ms"].as_f64(),
                });
            }
            "failed" | "error" | "cancelled" => bail!("ask ended: {f}"),
            _ => {}
        }
    }
}

/// Users on an OpenAI-compatible `/v1/chat/completions` (streaming).
pub async fn openai(base_url: &str, users: usize, until: Until, body: Value) -> LoadResult {
    let url = format!("{}/v1/chat/completions", base_url.trim_end_matches('/'));
    // A fresh connection per request: llama-server closes idle keep-alive connections, and a POST
    // sent on one that is closing fails instead of being retried.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap_or_default();
    closed_loop(users, until, move |_, until| {
        let (url, body, http) = (url.clone(), body.clone(), http.clone());
        async move {
            let (mut samples, mut errors) = (Vec::new(), Vec::new());
            let t0 = Instant::now();
            let mut done = 0;
            while keep_going(until, done, t0) {
                match openai_ask(&http, &url, &body).await {
                    Ok(s) => samples.push(s),
                    Err(e) => errors.push(format!("{e:#}")),
                }
                done += 1;
            }
            (samples, errors)
        }
    })
    .await
}

async fn openai_ask(http: &reqwest::Client, url: &str, body: &Value) -> anyhow::Result<Sample> {
    let t0 = Instant::now();
    let resp = http.post(url).json(body).send().await?;
    if !resp.status().is_success() {
        bail!(
            "{}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let (mut ttft, mut chunks, mut usage) = (None, 0u32, None);
    while let Some(bytes) = stream.next().await {
        buf.extend_from_slice(&bytes?);
        for data in crate::sse::take_data(&mut buf) {
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(&data)?;
            let text = v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
            if !text.is_empty() {
                chunks += 1;
                ttft.get_or_insert_with(|| t0.elapsed());
            }
            if let Some(n) = v["usage"]["completion_tokens"].as_u64() {
                usage = Some(n as u32);
            }
        }
    }
    let latency = t0.elapsed();
    Ok(Sample {
        ttft_ms: ms(ttft.unwrap_or(latency)),
        latency_ms: ms(latency),
        tokens: usage.unwrap_or(chunks),
        engine_ttft_ms: None,
    })
}

/// The OpenAI request body equivalent to an Orrery ask of `prompt`.
pub fn openai_body(prompt: &str, max_tokens: u32) -> Value {
    json!({
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
        // Both servers with their prompt caches, as they run by default (Orrery's prefix cache,
        // llama-server's `cache_prompt`).
        "cache_prompt": true,
    })
}

pub fn orrery_ask(prompt: &str, max_tokens: u32) -> Value {
    json!({"type": "ask", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
}
