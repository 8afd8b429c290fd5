//! WebSocket fan-out benchmark (issue 14, item 7): many users connected to one node serving the
//! stamped synthetic engine (`synthetic:RATE/stamped`), each streaming its own long answer, with
//! the asks ramped so that most of them stream at the same time. Every word carries the time the
//! engine generated it, so each token's delivery latency (generated → received by its client) is
//! measured directly, on one machine's clock.

use crate::load::{self, connect};
use crate::sandbox::{NodeSpec, Sandbox};
use crate::stats::{percentile, round};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub struct FanoutArgs {
    pub users: usize,
    /// Synthetic engine rate, tokens/s of each answer.
    pub rate: u32,
    pub answer_tokens: u32,
    /// Time between two users' asks: the Temporal dev server starts a limited number of
    /// workflows per second, and a burst would only queue there.
    pub ramp: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct FanoutReport {
    /// Token delivery latency, engine → client, over every token received (ms).
    pub delivery_p50_ms: f64,
    pub delivery_p99_ms: f64,
    pub delivery_max_ms: f64,
    pub users: usize,
    /// Users whose socket opened.
    pub connected: usize,
    /// Most answers streaming at once, as the clients saw them (first chunk → end).
    pub peak_streams: usize,
    pub asks_done: usize,
    /// Asks that failed, and users whose socket never opened.
    pub asks_failed: usize,
    pub tokens_received: usize,
    /// Words that arrived without a stamp (0 unless the stream split or altered them).
    pub unstamped_words: usize,
    pub rate: u32,
    pub answer_tokens: u32,
    pub ramp_ms: f64,
    pub elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

/// Answers streaming now, and the most seen at once.
#[derive(Default)]
struct Streams {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Streams {
    fn started(&self) {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
    }

    fn ended(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one user saw.
#[derive(Default)]
struct UserResult {
    delivery_ms: Vec<f64>,
    unstamped: usize,
    error: Option<String>,
}

fn unix_micros() -> u64 {
    // Same clock as the engine's stamps (one machine); a clock before 1970 only spoils the figure.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn config(users: usize, rate: u32) -> String {
    // The heartbeat timeout as in the serving benchmark: a thousand answers heartbeating every
    // 3 s (the default 4 s timeout's throttle) would load the dev server for nothing.
    format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:{rate}/stamped\"\ndefault = true\nload = true\n\
         max_sequences = {users}\n[limits]\nheartbeat_timeout_secs = 30\n{}",
        crate::sandbox::UNLIMITED_USERS
    )
}

pub async fn run(a: &FanoutArgs) -> anyhow::Result<FanoutReport> {
    crate::fdlimit::raise_fd_limit();
    let sb = Sandbox::start().await?;
    let node = sb
        .node(NodeSpec {
            id: "fanout",
            ip: "127.0.0.1",
            config: &config(a.users, a.rate),
            mesh: None,
            env: &[],
        })
        .await?;
    let url = node.ws_url();
    let warm = load::websocket(
        std::slice::from_ref(&url),
        1,
        load::Until::Requests(2),
        load::orrery_ask("count", 4),
    )
    .await;
    if let Some(e) = warm.errors.first() {
        anyhow::bail!("warm-up ask failed: {e}\n{}", node.log());
    }
    eprintln!("fanout: connecting {} users", a.users);
    // A bounded number of handshakes at once, so the listener's backlog never overflows.
    let sockets: Vec<_> = futures::stream::iter(0..a.users)
        .map(|_| connect(&url))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut result = Tally::default();
    let mut open = Vec::new();
    for s in sockets {
        match s {
            Ok(ws) => open.push(ws),
            Err(e) => result.error(format!("{e:#}")),
        }
    }
    let connected = open.len();
    let answer_s = f64::from(a.answer_tokens) / f64::from(a.rate);
    eprintln!(
        "fanout: {connected} users connected; one ask every {:?}, {} tokens at {} tok/s ({answer_s} s) each",
        a.ramp, a.answer_tokens, a.rate
    );
    crate::quiet::settle_async("fanout").await;
    let streams = Arc::new(Streams::default());
    let ask = load::orrery_ask("count", a.answer_tokens);
    // Generous: the ask may queue behind the ramp in Temporal before its answer starts.
    let silence = Duration::from_secs(120);
    let t0 = Instant::now();
    let tasks: Vec<_> = open
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let (ask, streams) = (ask.clone(), streams.clone());
            let at = t0 + a.ramp * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                user(ws, &ask, &streams, silence).await
            })
        })
        .collect();
    for t in tasks {
        match t.await {
            Ok(u) => result.add(u),
            Err(e) => result.error(format!("user task: {e}")),
        }
    }
    let elapsed = t0.elapsed();
    drop(node);
    sb.stop().await;
    let d = &result.delivery_ms;
    Ok(FanoutReport {
        delivery_p50_ms: round(percentile(d, 50.0), 1),
        delivery_p99_ms: round(percentile(d, 99.0), 1),
        delivery_max_ms: round(percentile(d, 100.0), 1),
        users: a.users,
        connected,
        peak_streams: streams.peak.load(Ordering::Relaxed),
        asks_done: result.done,
        asks_failed: result.failed,
        tokens_received: d.len(),
        unstamped_words: result.unstamped,
        rate: a.rate,
        answer_tokens: a.answer_tokens,
        ramp_ms: round(a.ramp.as_secs_f64() * 1000.0, 1),
        elapsed_s: round(elapsed.as_secs_f64(), 2),
        first_error: result.first_error,
    })
}

/// Every user's results together.
#[derive(Default)]
struct Tally {
    delivery_ms: Vec<f64>,
    unstamped: usize,
    done: usize,
    failed: usize,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, u: UserResult) {
        self.delivery_ms.extend(u.delivery_ms);
        self.unstamped += u.unstamped;
        match u.error {
            None => self.done += 1,
            Some(e) => self.error(e),
        }
    }

    fn error(&mut self, e: String) {
        self.failed += 1;
        self.first_error.get_or_insert(e);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One ask on an open socket: every word's delivery latency, until its `done` frame.
async fn user(mut ws: Ws, ask: &Value, streams: &Streams, silence: Duration) -> UserResult {
    let mut r = UserResult::default();
    let mut streaming = false;
    if let Err(e) = ws.send(Message::Text(ask.to_string().into())).await {
        r.error = Some(format!("sending the ask: {e}"));
        return r;
    }
    let end = loop {
        let frame = match tokio::time::timeout(silence, ws.next()).await {
            Err(_) => break Some(format!("no frame for {silence:?}")),
            Ok(None) => break Some("socket closed".into()),
            Ok(Some(Err(e))) => break Some(format!("socket: {e}")),
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
        };
        // Taken before parsing: the frame is here.
        let received_us = unix_micros();
        let f: Value = match serde_json::from_str(&frame) {
            Ok(f) => f,
            Err(e) => break Some(format!("bad frame {frame}: {e}")),
        };
        match f["type"].as_str().unwrap_or_default() {
            "chunk" => {
                if !streaming {
                    streaming = true;
                    streams.started();
                }
                for word in f["text"].as_str().unwrap_or_default().split_whitespace() {
                    match orrery::engine::word_stamp(word) {
                        Some(at) => r
                            .delivery_ms
                            .push(received_us.saturating_sub(at) as f64 / 1000.0),
                        None => r.unstamped += 1,
                    }
                }
            }
            "done" => break None,
            "failed" | "error" | "cancelled" => break Some(format!("ask ended: {f}")),
            _ => {}
        }
    };
    if streaming {
        streams.ended();
    }
    r.error = end;
    r
}
