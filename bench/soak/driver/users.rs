//! The soak's users: WebSocket users (one socket each, one ask at a time, a think time between
//! asks) and OpenAI-API stream users (one streamed chat completion at a time). Each user moves to
//! the next node when its node is down, and records how every ask it sent ended.

use super::asks::{Api, AskRecord, Broken, Clock, End, Expect, failed, judge_done, recover};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// What every user shares.
pub struct Ctx {
    /// The nodes' HTTP base URLs (fixed across restarts).
    pub nodes: Vec<String>,
    /// No ask is sent after this.
    pub stop_at: Instant,
    /// Longest an ask may take, from sending it to its end.
    pub deadline: Duration,
    pub tokens: (u32, u32),
    pub think: (Duration, Duration),
    pub http: reqwest::Client,
    pub counts: Counts,
}

/// Running totals for the progress line.
#[derive(Default)]
pub struct Counts {
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub broken: AtomicU64,
    /// Connection attempts a down node refused (no ask was sent on them).
    pub refused: AtomicU64,
}

impl Counts {
    fn ended(&self, end: &End) {
        let c = match end {
            End::Done | End::Recovered => &self.done,
            End::Failed(..) => &self.failed,
            End::Broken(..) => &self.broken,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

impl Ctx {
    fn think(&self) -> Duration {
        let (lo, hi) = (
            self.think.0.as_millis() as u64,
            self.think.1.as_millis() as u64,
        );
        Duration::from_millis(rand::rng().random_range(lo..=hi.max(lo)))
    }

    /// The next ask of user `user`: a seed no other ask has (never 0, which the synthetic engine
    /// leaves untagged) and a random length.
    fn next_ask(&self, user: usize, seq: u64) -> Expect {
        let seed = ((user as u64 + 1) << 24) | (seq & 0xff_ffff);
        let n = rand::rng().random_range(self.tokens.0..=self.tokens.1.max(self.tokens.0));
        Expect::new(seed, n)
    }

    /// Pacing between users' asks; false once the soak stops sending.
    async fn pause(&self, d: Duration) -> bool {
        tokio::time::sleep_until((Instant::now() + d).min(self.stop_at).into()).await;
        Instant::now() < self.stop_at
    }
}

/// How long a user whose node died keeps trying it before moving to another.
const HOME_COMES_BACK: Duration = Duration::from_secs(5);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(http: &str) -> Option<Ws> {
    let url = orrery::client::ws_url(http);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    let hello = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .ok()??
        .ok()?;
    let hello: Value = serde_json::from_str(hello.to_text().ok()?).ok()?;
    (hello["type"] == "hello").then_some(ws)
}

/// A WebSocket user: `user` is its index among all users (it makes the seeds unique).
pub async fn websocket_user(ctx: std::sync::Arc<Ctx>, user: usize) -> Vec<AskRecord> {
    let mut records = Vec::new();
    // A user's own node, as a sticky load balancer would keep it: when it dies the user waits
    // a few seconds for it to come back before moving on, so the restarted process gets its
    // users back and every node keeps about a third of the sockets (its RSS then says
    // something about leaks, not about sockets piling up on the survivors).
    let home = user % ctx.nodes.len();
    let mut node = home;
    let mut lost_at: Option<Instant> = None;
    let mut socket: Option<Ws> = None;
    // Asks this socket made and saw end: a late frame of one of them is no cross-talk.
    let mut mine: HashSet<String> = HashSet::new();
    // Users start spread over the first think period.
    let mut wait = ctx.think().mul_f64(rand::rng().random_range(0.0..1.0));
    let mut seq = 0;
    loop {
        // Think, connected and reading the socket: a node that dies now is noticed now (not
        // when the next ask is written into a dead socket), and its users reconnect elsewhere
        // and go on thinking, as people would, rather than all asking at that moment.
        let until = (Instant::now() + wait).min(ctx.stop_at);
        while Instant::now() < until {
            let Some(ws) = socket.as_mut() else {
                match connect(&ctx.nodes[node]).await {
                    Some(ws) => {
                        mine.clear();
                        socket = Some(ws);
                        lost_at = None;
                    }
                    None => {
                        ctx.counts.refused.fetch_add(1, Ordering::Relaxed);
                        let waited = lost_at.get_or_insert_with(Instant::now).elapsed();
                        if node != home || waited > HOME_COMES_BACK {
                            node = (node + 1) % ctx.nodes.len();
                        }
                        // Pacing between connection attempts while a node restarts.
                        let retry = Instant::now() + Duration::from_millis(200);
                        tokio::time::sleep_until(retry.min(until).into()).await;
                    }
                }
                continue;
            };
            match watch(ws, &mine, until).await {
                Ok(true) => {}
                Ok(false) => {
                    socket = None;
                    node = home;
                }
                Err(why) => {
                    let end = End::Broken(Broken::CrossTalk, why);
                    ctx.counts.ended(&end);
                    let at = Instant::now();
                    records.push(Clock::default().record(Api::WebSocket, end, None, at));
                }
            }
        }
        if Instant::now() >= ctx.stop_at {
            break;
        }
        wait = ctx.think();
        let Some(ws) = socket.as_mut() else {
            // No node took the connection during the think time: try again shortly.
            wait = Duration::from_millis(200);
            continue;
        };
        seq += 1;
        let expect = ctx.next_ask(user, seq);
        ctx.counts.sent.fetch_add(1, Ordering::Relaxed);
        let (record, socket_ok) = ws_ask(&ctx, ws, node, &expect, seq, &mut mine).await;
        ctx.counts.ended(&record.end);
        records.push(record);
        if !socket_ok {
            socket = None;
            node = home;
        }
    }
    records
}

/// The cluster view every socket gets whenever it changes: not worth parsing here (1 000 users
/// share two cores with the cluster).
fn is_cluster_view(frame: &str) -> bool {
    frame.starts_with(r#"{"type":"cluster""#)
}

/// Reads an idle socket until `until`: Ok(false) if it closed, Err if a frame of an ask not of
/// this socket came.
async fn watch(ws: &mut Ws, mine: &HashSet<String>, until: Instant) -> Result<bool, String> {
    loop {
        match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => return Ok(true),
            Ok(None) | Ok(Some(Err(_))) => return Ok(false),
            Ok(Some(Ok(Message::Text(t)))) => {
                if is_cluster_view(&t) {
                    continue;
                }
                let f: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                if let Some(r) = f["request_id"].as_str()
                    && !mine.contains(r)
                {
                    return Err(format!("frame of request {r} on an idle socket: {f}"));
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// One ask on an open socket. Returns its record, and whether the socket is still usable.
async fn ws_ask(
    ctx: &Ctx,
    ws: &mut Ws,
    node: usize,
    expect: &Expect,
    seq: u64,
    mine: &mut HashSet<String>,
) -> (AskRecord, bool) {
    let sent = Instant::now();
    let deadline = sent + ctx.deadline;
    let client_id = format!("a{seq}");
    let frame = json!({"type": "ask", "model": super::MODEL, "prompt": "count", "max_tokens": expect.max_tokens,
                       "temperature": 0, "seed": expect.seed, "client_id": client_id});
    let mut clock = Clock::default();
    let record =
        |clock: Clock, end: End, attempts| clock.record(Api::WebSocket, end, attempts, sent);
    if ws
        .send(Message::Text(frame.to_string().into()))
        .await
        .is_err()
    {
        let end = failed(
            "connection_lost",
            "the socket closed before the ask was sent",
        );
        return (record(clock, end, None), false);
    }
    let mut rid: Option<String> = None;
    let mut shown: Vec<char> = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), ws.next()).await;
        let msg = match next {
            Err(_) => {
                let why = format!("no end within {:?} (request {rid:?})", ctx.deadline);
                return (record(clock, End::Broken(Broken::Lost, why), None), false);
            }
            Ok(Some(Ok(Message::Text(t)))) if !is_cluster_view(&t) => t,
            Ok(Some(Ok(_))) => continue,
            // The socket broke: its node died. The ask may go on in Temporal.
            Ok(None) | Ok(Some(Err(_))) => {
                let Some(id) = rid else {
                    let end = failed(
                        "connection_lost",
                        "the node went away before it accepted the ask",
                    );
                    return (record(clock, end, None), false);
                };
                let shown: String = shown.iter().collect();
                let (end, attempts) =
                    recover(&ctx.http, &ctx.nodes, node, &id, expect, &shown, deadline).await;
                return (record(clock, end, attempts), false);
            }
        };
        let Ok(f) = serde_json::from_str::<Value>(&msg) else {
            continue;
        };
        let kind = f["type"].as_str().unwrap_or_default();
        let frame_rid = f["request_id"].as_str();
        if kind == "accepted" {
            if f["client_id"] != client_id.as_str() || rid.is_some() {
                let why = format!("accepted frame of another ask: {f}");
                return (
                    record(clock, End::Broken(Broken::CrossTalk, why), None),
                    true,
                );
            }
            rid = frame_rid.map(String::from);
            continue;
        }
        if let Some(r) = frame_rid
            && Some(r) != rid.as_deref()
        {
            if mine.contains(r) {
                continue;
            }
            let why = format!("frame of request {r} on the socket of {rid:?}: {f}");
            return (
                record(clock, End::Broken(Broken::CrossTalk, why), None),
                true,
            );
        }
        let end = match kind {
            "chunk" => {
                let offset = f["offset"].as_u64().unwrap_or(u64::MAX) as usize;
                let text = f["text"].as_str().unwrap_or_default();
                if offset > shown.len() {
                    let why = format!("chunk at {offset} after {} chars", shown.len());
                    End::Broken(Broken::WrongText, why)
                } else {
                    shown.truncate(offset);
                    shown.extend(text.chars());
                    clock.text(sent);
                    continue;
                }
            }
            "done" => {
                let shown: String = shown.iter().collect();
                let text = f["text"].as_str().unwrap_or_default();
                judge_done(expect, text, &shown, End::Done)
            }
            "failed" => failed(
                f["error"]["code"].as_str().unwrap_or_default(),
                f["error"]["message"].as_str().unwrap_or_default(),
            ),
            "cancelled" => End::Broken(Broken::Cancelled, f.to_string()),
            // An error frame answers our ask (the only thing this user sends).
            "error" => failed(
                f["code"].as_str().unwrap_or_default(),
                f["message"].as_str().unwrap_or_default(),
            ),
            _ => continue,
        };
        if let Some(id) = rid {
            mine.insert(id);
        }
        return (record(clock, end, f["attempts"].as_u64()), true);
    }
}

/// An OpenAI-API stream user: `user` is its index among all users.
pub async fn openai_user(ctx: std::sync::Arc<Ctx>, user: usize) -> Vec<AskRecord> {
    let mut records = Vec::new();
    // Each ask goes to the user's own node, or the next one while it is down.
    let home = user % ctx.nodes.len();
    let mut node = home;
    let mut wait = ctx.think().mul_f64(rand::rng().random_range(0.0..1.0));
    let mut seq = 0;
    while ctx.pause(wait).await {
        wait = ctx.think();
        seq += 1;
        let expect = ctx.next_ask(user, seq);
        match openai_ask(&ctx, node, &expect).await {
            Some(record) => {
                ctx.counts.sent.fetch_add(1, Ordering::Relaxed);
                ctx.counts.ended(&record.end);
                records.push(record);
                node = home;
            }
            None => {
                ctx.counts.refused.fetch_add(1, Ordering::Relaxed);
                node = (node + 1) % ctx.nodes.len();
                wait = Duration::from_millis(200);
            }
        }
    }
    records
}

/// One streamed chat completion; None when the node refused the connection (nothing was sent).
async fn openai_ask(ctx: &Ctx, node: usize, expect: &Expect) -> Option<AskRecord> {
    let sent = Instant::now();
    let deadline = sent + ctx.deadline;
    let body = json!({"model": super::MODEL, "messages": [{"role": "user", "content": "count"}],
                      "max_tokens": expect.max_tokens, "temperature": 0, "seed": expect.seed,
                      "stream": true});
    let url = format!("{}/v1/chat/completions", ctx.nodes[node]);
    let mut clock = Clock::default();
    let record = |clock: Clock, end: End, attempts| clock.record(Api::OpenAi, end, attempts, sent);
    let resp = match tokio::time::timeout_at(
        deadline.into(),
        ctx.http.post(&url).json(&body).send(),
    )
    .await
    {
        Err(_) => {
            let why = "no response head by the deadline".to_string();
            return Some(record(clock, End::Broken(Broken::Lost, why), None));
        }
        Ok(Err(e)) if e.is_connect() => return None,
        Ok(Err(e)) => {
            let end = failed("connection_lost", &format!("before the response head: {e}"));
            return Some(record(clock, end, None));
        }
        Ok(Ok(r)) => r,
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        let e = &v["error"];
        let code = e["code"]
            .as_str()
            .or(e["type"].as_str())
            .unwrap_or_default();
        let message = format!("{status}: {}", e["message"].as_str().unwrap_or_default());
        return Some(record(clock, failed(code, &message), None));
    }
    let rid = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut text = String::new();
    let mut finished = false;
    loop {
        let next = tokio::time::timeout_at(deadline.into(), stream.next()).await;
        let bytes = match next {
            Err(_) => {
                let why = format!("stream of {rid} had no end within {:?}", ctx.deadline);
                return Some(record(clock, End::Broken(Broken::Lost, why), None));
            }
            Ok(Some(Ok(b))) => b,
            // The stream broke (its node died), or ended without [DONE].
            Ok(Some(Err(_))) | Ok(None) => {
                let (end, attempts) =
                    recover(&ctx.http, &ctx.nodes, node, &rid, expect, &text, deadline).await;
                return Some(record(clock, end, attempts));
            }
        };
        buf.extend_from_slice(&bytes);
        for data in super::sse::take_data(&mut buf) {
            if data == "[DONE]" {
                let end = if finished {
                    judge_done(expect, &text, &text, End::Done)
                } else {
                    End::Broken(
                        Broken::WrongText,
                        format!("[DONE] before a finish: {text:?}"),
                    )
                };
                return Some(record(clock, end, None));
            }
            let Ok(v) = serde_json::from_str::<Value>(&data) else {
                let why = format!("not JSON: {data}");
                return Some(record(clock, End::Broken(Broken::WrongText, why), None));
            };
            if v.get("error").is_some() {
                let e = &v["error"];
                let code = e["code"]
                    .as_str()
                    .or(e["type"].as_str())
                    .unwrap_or_default();
                let message = e["message"].as_str().unwrap_or_default();
                return Some(record(clock, failed(code, message), None));
            }
            if v["id"] != rid.as_str() {
                let why = format!("chunk of {} in the stream of {rid}", v["id"]);
                return Some(record(clock, End::Broken(Broken::CrossTalk, why), None));
            }
            let choice = &v["choices"][0];
            if let Some(t) = choice["delta"]["content"].as_str()
                && !t.is_empty()
            {
                text.push_str(t);
                clock.text(sent);
            }
            if choice["finish_reason"].is_string() {
                finished = true;
            }
        }
    }
}

/// One WebSocket ask and one OpenAI stream on node `i`, after the load: does it serve?
pub async fn probe(ctx: &Ctx, i: usize) -> Vec<AskRecord> {
    let user = 1_000_000 + i;
    let refused = || {
        let end = failed("connection_refused", &format!("{} refused", ctx.nodes[i]));
        Clock::default().record(Api::WebSocket, end, None, Instant::now())
    };
    let ws = match connect(&ctx.nodes[i]).await {
        Some(mut ws) => {
            let expect = ctx.next_ask(user, 1);
            ws_ask(ctx, &mut ws, i, &expect, 1, &mut HashSet::new())
                .await
                .0
        }
        None => refused(),
    };
    let api = openai_ask(ctx, i, &ctx.next_ask(user, 2))
        .await
        .unwrap_or_else(refused);
    vec![ws, api]
}
