//! One ask as the soak judges it: the text it must end with, how it ended, and its timings; and
//! the recovery of an ask whose stream broke with its node, from the durable result on another.

use serde_json::Value;
use std::time::{Duration, Instant};

/// The front door an ask came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Api {
    WebSocket,
    OpenAi,
}

/// A broken promise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Broken {
    /// No end (done, failed) within the deadline.
    Lost,
    /// Ended done, but the text (streamed or final) is not exactly the expected one: repeated,
    /// missing or foreign text.
    WrongText,
    /// A frame or chunk of another ask.
    CrossTalk,
    /// Ended cancelled, though nobody cancelled it.
    Cancelled,
    /// Failed with no code or message.
    NoReason,
}

impl Broken {
    pub fn name(self) -> &'static str {
        match self {
            Broken::Lost => "lost (no end by the deadline)",
            Broken::WrongText => "wrong text",
            Broken::CrossTalk => "cross-talk",
            Broken::Cancelled => "cancelled unasked",
            Broken::NoReason => "failed without a reason",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// The whole expected text, streamed to its end.
    Done,
    /// The stream broke with its node; the durable result, read from another node, holds the
    /// whole expected text (and what was streamed before the break is a prefix of it).
    Recovered,
    /// Failed, with `(code, message)`.
    Failed(String, String),
    Broken(Broken, String),
}

/// One ask's record.
#[derive(Clone, Debug)]
pub struct AskRecord {
    pub api: Api,
    pub end: End,
    /// Placements the answer took (2+: it moved to another node mid-answer), when known.
    pub attempts: Option<u64>,
    /// Ask sent → first text.
    pub first_token_ms: Option<f64>,
    /// Between consecutive texts of the answer, as the client received them.
    pub gaps_ms: Vec<f64>,
    /// Ask sent → its end.
    pub latency_ms: f64,
}

/// What one ask asks for, and the only text it may end with.
#[derive(Clone, Debug)]
pub struct Expect {
    pub seed: u64,
    pub max_tokens: u32,
    pub text: String,
}

impl Expect {
    /// The synthetic engine's answer to an ask with `seed` and `max_tokens`: every word tagged
    /// with the seed, so an answer carrying another ask's words shows.
    pub fn new(seed: u64, max_tokens: u32) -> Expect {
        let text = (0..max_tokens)
            .map(|k| orrery::engine::synthetic_word(k, seed))
            .collect();
        Expect {
            seed,
            max_tokens,
            text,
        }
    }
}

/// Timings of one answer as it arrives.
#[derive(Default)]
pub struct Clock {
    first: Option<f64>,
    last: Option<Instant>,
    gaps: Vec<f64>,
}

impl Clock {
    /// A text arrived, for an ask sent at `sent`.
    pub fn text(&mut self, sent: Instant) {
        let now = Instant::now();
        match self.last {
            None => self.first = Some(ms(now - sent)),
            Some(last) => self.gaps.push(ms(now - last)),
        }
        self.last = Some(now);
    }

    pub fn record(self, api: Api, end: End, attempts: Option<u64>, sent: Instant) -> AskRecord {
        AskRecord {
            api,
            end,
            attempts,
            first_token_ms: self.first,
            gaps_ms: self.gaps,
            latency_ms: ms(sent.elapsed()),
        }
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A failure, checked for its reason.
pub fn failed(code: &str, message: &str) -> End {
    if code.is_empty() && message.is_empty() {
        End::Broken(Broken::NoReason, String::new())
    } else {
        End::Failed(code.to_string(), message.to_string())
    }
}

/// Judges a final text: exactly the expected one, and `shown` (what was streamed) the same.
pub fn judge_done(expect: &Expect, text: &str, shown: &str, end: End) -> End {
    if text != expect.text {
        return End::Broken(
            Broken::WrongText,
            format!("final text {text:?}, expected {:?}", expect.text),
        );
    }
    if shown != text {
        return End::Broken(
            Broken::WrongText,
            format!("streamed {shown:?}, final {text:?}"),
        );
    }
    end
}

/// After a stream broke mid-ask (its node died): reads the ask's durable result from the other
/// nodes until it ends or `deadline` passes. What was streamed before the break must be a prefix
/// of the expected text.
pub async fn recover(
    http: &reqwest::Client,
    nodes: &[String],
    first: usize,
    request_id: &str,
    expect: &Expect,
    shown: &str,
    deadline: Instant,
) -> (End, Option<u64>) {
    if !expect.text.starts_with(shown) {
        let why = format!(
            "streamed {shown:?} before the break, expected {:?}",
            expect.text
        );
        return (End::Broken(Broken::WrongText, why), None);
    }
    let mut i = first;
    let mut last = String::from("no node answered");
    while Instant::now() < deadline {
        i = (i + 1) % nodes.len();
        // A long wait: each time one runs out the node answers with the ask's status, which
        // for an ask still planning counts the running asks in Temporal's visibility store.
        let url = format!("{}/api/asks/{request_id}/result?wait=30", nodes[i]);
        let resp = http.get(&url).timeout(Duration::from_secs(40)).send().await;
        let (status, body) = match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json::<Value>().await.unwrap_or(Value::Null))
            }
            Err(e) => {
                last = format!("{}: {e}", nodes[i]);
                // Pacing between tries while nodes restart, not a readiness wait.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        match (status, body["status"].as_str()) {
            (200, Some("completed")) => {
                let text = body["text"].as_str().unwrap_or_default();
                let end = judge_done(expect, text, text, End::Recovered);
                return (end, body["attempts"].as_u64());
            }
            (200, Some("failed")) => {
                let e = &body["error"];
                let end = failed(
                    e["code"].as_str().unwrap_or_default(),
                    e["message"].as_str().unwrap_or_default(),
                );
                return (end, None);
            }
            (200, Some("cancelled")) => {
                return (End::Broken(Broken::Cancelled, request_id.into()), None);
            }
            // Its node died before the workflow started: it never began.
            (404, _) => {
                let why = "its node died before the ask's workflow started".to_string();
                return (End::Failed("not_started".into(), why), None);
            }
            // 202: still running; 5xx: Temporal or the node is not back yet.
            (s, _) => {
                last = format!("{}: {s} {body}", nodes[i]);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let why = format!("ask {request_id} had no end by the deadline; last: {last}");
    (End::Broken(Broken::Lost, why), None)
}
