//! Remote backends behind the same `Engine` trait: any OpenAI-compatible server
//! (`/v1/chat/completions`, server-sent events) and Ollama's native API (`/api/chat`, NDJSON),
//! streamed token by token, with connect and read timeouts, and retries with backoff on connection
//! errors and 5xx answers until the first token arrives (after that, a retry would repeat text).

use super::{
    ChatMessage, Engine, EngineError, EngineInfo, FinishReason, GenEvent, GenSummary,
    GenerateRequest, ResponseFormat, Role, SamplingParams,
};
use crate::protocol::chat::plain_conversation;
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio_util::task::TaskTracker;

/// The wire protocol of a remote backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteKind {
    OpenAi,
    Ollama,
}

#[derive(Clone)]
pub struct RemoteConfig {
    pub kind: RemoteKind,
    /// `http://host:port` (for OpenAI-compatible servers, with or without a trailing `/v1`).
    pub base_url: String,
    /// The model name the backend knows.
    pub remote_model: String,
    /// Sent as a bearer token; read from the environment by the caller, never logged.
    pub api_key: Option<String>,
    pub max_sequences: usize,
    pub connect_timeout: Duration,
    /// Longest silence between two chunks of an answer.
    pub read_timeout: Duration,
    /// Tries before the first token (connection errors and 5xx only).
    pub attempts: u32,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("remote_model", &self.remote_model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

pub struct RemoteEngine {
    model_id: String,
    config: RemoteConfig,
    http: reqwest::Client,
    active: Arc<AtomicUsize>,
    tasks: TaskTracker,
}

impl RemoteEngine {
    pub fn new(model_id: impl Into<String>, config: RemoteConfig) -> Result<Self, EngineError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .build()
            .map_err(|e| EngineError::Load(format!("http client: {e}")))?;
        Ok(Self {
            model_id: model_id.into(),
            config,
            http,
            active: Arc::new(AtomicUsize::new(0)),
            tasks: TaskTracker::new(),
        })
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        self.tasks.close();
    }
}

fn role(r: &Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// The conversation for the backend. Tools are described to it as to a local model without tool
/// support (a system prompt, calls and results as text), so its calls come back as text in the
/// answer and are read like any other model's.
fn messages(req: &GenerateRequest) -> Vec<Value> {
    let plain = plain_conversation(&req.messages, req.params.tools.as_deref());
    let mut m: Vec<Value> = plain
        .iter()
        .map(|msg| json!({"role": role(&msg.role), "content": msg.content}))
        .collect();
    // The partial answer of an earlier placement, for the backend to continue.
    if !req.resume_text.is_empty() {
        m.push(json!({"role": "assistant", "content": req.resume_text}));
    }
    m
}

/// The URL and JSON text of the backend request.
fn body(cfg: &RemoteConfig, req: &GenerateRequest) -> (String, String) {
    let (url, value) = body_value(cfg, req);
    let text = with_format(value, cfg.kind, req.params.response_format.as_deref());
    (url, text)
}

/// `body` with the response format added as the backend's own parameter (OpenAI's
/// `response_format`, Ollama's `format`): spliced in as text, so the schema keeps the client's
/// key order, which backends generate properties in (a `serde_json::Value` would sort them).
fn with_format(body: Value, kind: RemoteKind, format: Option<&ResponseFormat>) -> String {
    let text = body.to_string();
    let Some(format) = format else {
        return text;
    };
    // The schema text passed `SamplingParams::validate`, which parses it: it is JSON.
    let (key, raw) = match (kind, format) {
        (RemoteKind::OpenAi, ResponseFormat::JsonObject) => {
            ("response_format", r#"{"type":"json_object"}"#.to_string())
        }
        (
            RemoteKind::OpenAi,
            ResponseFormat::JsonSchema {
                name,
                schema_text,
                strict,
            },
        ) => (
            "response_format",
            format!(
                r#"{{"type":"json_schema","json_schema":{{"name":{},"strict":{strict},"schema":{schema_text}}}}}"#,
                Value::from(name.as_str())
            ),
        ),
        (RemoteKind::Ollama, ResponseFormat::JsonObject) => ("format", r#""json""#.to_string()),
        (RemoteKind::Ollama, ResponseFormat::JsonSchema { schema_text, .. }) => {
            ("format", schema_text.clone())
        }
    };
    match text.strip_suffix('}') {
        Some(open) if open.len() > 1 => format!("{open},\"{key}\":{raw}}}"),
        // Never: the bodies are non-empty objects.
        _ => text,
    }
}

fn body_value(cfg: &RemoteConfig, req: &GenerateRequest) -> (String, Value) {
    let p = &req.params;
    match cfg.kind {
        RemoteKind::OpenAi => {
            let base = cfg.base_url.trim_end_matches('/').trim_end_matches("/v1");
            let mut b = json!({
                "model": cfg.remote_model, "messages": messages(req), "stream": true,
                "max_tokens": p.max_tokens, "temperature": p.temperature, "seed": p.seed,
                "stream_options": {"include_usage": true},
            });
            if let Some(tp) = p.top_p {
                b["top_p"] = json!(tp);
            }
            if !p.stop.is_empty() {
                b["stop"] = json!(p.stop);
            }
            (format!("{base}/v1/chat/completions"), b)
        }
        RemoteKind::Ollama => {
            let base = cfg.base_url.trim_end_matches('/');
            let mut options =
                json!({"temperature": p.temperature, "seed": p.seed, "num_predict": p.max_tokens});
            if let Some(tp) = p.top_p {
                options["top_p"] = json!(tp);
            }
            if !p.stop.is_empty() {
                options["stop"] = json!(p.stop);
            }
            (
                format!("{base}/api/chat"),
                json!({"model": cfg.remote_model, "messages": messages(req), "stream": true, "options": options}),
            )
        }
    }
}

/// What one line of the stream said.
#[derive(Debug, PartialEq)]
enum Line {
    Text(String),
    Finish(FinishReason),
    Usage { prompt: u32, completion: u32 },
    End,
    Nothing,
}

/// Parses one line of an OpenAI SSE stream or an Ollama NDJSON stream.
fn parse_line(kind: RemoteKind, line: &str) -> Result<Vec<Line>, EngineError> {
    let bad = |e: serde_json::Error| EngineError::Inference(format!("backend sent bad JSON: {e}"));
    let finish = |r: &str| match r {
        "length" => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    match kind {
        RemoteKind::OpenAi => {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                return Ok(vec![Line::Nothing]);
            };
            if data == "[DONE]" {
                return Ok(vec![Line::End]);
            }
            let v: Value = serde_json::from_str(data).map_err(bad)?;
            if let Some(err) = v.get("error") {
                return Err(EngineError::Inference(format!("backend error: {err}")));
            }
            let mut out = Vec::new();
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str()
                && !c.is_empty()
            {
                out.push(Line::Text(c.to_string()));
            }
            if let Some(r) = v["choices"][0]["finish_reason"].as_str() {
                out.push(Line::Finish(finish(r)));
            }
            if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                out.push(Line::Usage {
                    prompt: u["prompt_tokens"].as_u64().unwrap_or(0) as u32,
                    completion: u["completion_tokens"].as_u64().unwrap_or(0) as u32,
                });
            }
            Ok(out)
        }
        RemoteKind::Ollama => {
            if line.trim().is_empty() {
                return Ok(vec![Line::Nothing]);
            }
            let v: Value = serde_json::from_str(line).map_err(bad)?;
            if let Some(err) = v.get("error") {
                return Err(EngineError::Inference(format!("backend error: {err}")));
            }
            let mut out = Vec::new();
            if let Some(c) = v["message"]["content"].as_str()
                && !c.is_empty()
            {
                out.push(Line::Text(c.to_string()));
            }
            if v["done"].as_bool() == Some(true) {
                out.push(Line::Usage {
                    prompt: v["prompt_eval_count"].as_u64().unwrap_or(0) as u32,
                    completion: v["eval_count"].as_u64().unwrap_or(0) as u32,
                });
                out.push(Line::Finish(finish(
                    v["done_reason"].as_str().unwrap_or("stop"),
                )));
                out.push(Line::End);
            }
            Ok(out)
        }
    }
}

/// Sends the request, retrying connection errors and 5xx with backoff.
async fn connect(
    http: &reqwest::Client,
    cfg: &RemoteConfig,
    url: &str,
    body: &str,
) -> Result<reqwest::Response, EngineError> {
    let mut delay = Duration::from_millis(200);
    let mut last = String::new();
    for attempt in 1..=cfg.attempts.max(1) {
        let mut rb = http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned());
        if let Some(k) = &cfg.api_key {
            rb = rb.bearer_auth(k);
        }
        match rb.send().await {
            Ok(r) if r.status().is_success() => return Ok(r),
            Ok(r) if r.status().is_server_error() => {
                last = format!("{url} answered {}", r.status())
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(EngineError::Inference(format!(
                    "{url} answered {status}: {}",
                    text.chars().take(300).collect::<String>()
                )));
            }
            Err(e) => last = format!("{url}: {e}"),
        }
        if attempt < cfg.attempts {
            tracing::debug!(attempt, error = %last, "backend call failed; retrying");
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(EngineError::Inference(format!(
        "backend unreachable: {last}"
    )))
}

async fn run(
    http: reqwest::Client,
    cfg: RemoteConfig,
    req: GenerateRequest,
    tx: UnboundedSender<GenEvent>,
) {
    let started = Instant::now();
    let (url, body) = body(&cfg, &req);
    let mut first_token = None;
    let mut usage = (0, 0);
    let mut finish = FinishReason::Stop;
    let mut produced = 0u32;
    let result: Result<(), EngineError> = async {
        let resp = tokio::select! {
            r = connect(&http, &cfg, &url, &body) => r?,
            _ = req.cancel.cancelled() => { finish = FinishReason::Cancelled; return Ok(()); }
        };
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                c = stream.next() => c,
                _ = req.cancel.cancelled() => { finish = FinishReason::Cancelled; return Ok(()); }
            };
            let Some(chunk) = chunk else { return Ok(()) };
            buf.extend_from_slice(
                &chunk.map_err(|e| EngineError::Inference(format!("backend stream: {e}")))?,
            );
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                let line = String::from_utf8_lossy(&line);
                for l in parse_line(cfg.kind, line.trim_end())? {
                    match l {
                        Line::Text(t) => {
                            first_token.get_or_insert_with(|| started.elapsed());
                            produced += 1;
                            if tx.send(GenEvent::Token { text: t }).is_err() {
                                finish = FinishReason::Cancelled;
                                return Ok(());
                            }
                        }
                        Line::Finish(f) => finish = f,
                        Line::Usage { prompt, completion } => usage = (prompt, completion),
                        Line::End => return Ok(()),
                        Line::Nothing => {}
                    }
                }
            }
        }
    }
    .await;
    let _ = tx.send(match result {
        Ok(()) => GenEvent::Done(GenSummary {
            finish_reason: finish,
            prompt_tokens: usage.0,
            cached_tokens: 0,
            completion_tokens: if usage.1 > 0 { usage.1 } else { produced },
            time_to_first_token: first_token.unwrap_or_default(),
            total: started.elapsed(),
        }),
        Err(e) => GenEvent::Failed(e),
    });
}

impl Engine for RemoteEngine {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            model_id: self.model_id.clone(),
            kind: match self.config.kind {
                RemoteKind::OpenAi => "remote-openai",
                RemoteKind::Ollama => "remote-ollama",
            }
            .into(),
            context_len: 0,
            memory_bytes: 0,
            max_sequences: self.config.max_sequences,
        }
    }

    fn count_tokens(
        &self,
        messages: &[ChatMessage],
        _params: &SamplingParams,
    ) -> Result<u32, EngineError> {
        // The backend tokenizes; a rough count (4 bytes a token) is all that is known here.
        Ok(messages
            .iter()
            .map(|m| m.content.len() as u32 / 4 + 4)
            .sum())
    }

    fn generate(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent> {
        let (tx, rx) = unbounded_channel();
        if let Err(e) = req.params.validate() {
            let _ = tx.send(GenEvent::Failed(e.into()));
            return rx;
        }
        if req.params.raw_prompt {
            let _ = tx.send(GenEvent::Failed(EngineError::Unsupported(
                "raw prompts (legacy completions, Ollama's raw mode) on a remote backend".into(),
            )));
            return rx;
        }
        let (http, cfg, active) = (self.http.clone(), self.config.clone(), self.active.clone());
        active.fetch_add(1, Ordering::SeqCst);
        self.tasks.spawn(async move {
            run(http, cfg, req, tx).await;
            active.fetch_sub(1, Ordering::SeqCst);
        });
        rx
    }

    fn active_sequences(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn queued(&self) -> usize {
        0
    }
}

#[cfg(test)]
#[path = "remote_tests.rs"]
mod tests;
