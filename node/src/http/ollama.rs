//! Ollama-compatible endpoints, so tools written for Ollama use an Orrery cluster unchanged:
//! `POST /api/chat` and `POST /api/generate` (NDJSON streaming by default, or one JSON object),
//! `GET /api/tags`, `GET /api/ps`, `GET /api/version`. Errors are Ollama's `{"error": "..."}`.
//! Documented in docs/ollama.md.

use super::AppState;
use super::error::{ApiError, add_auth_headers};
use super::follow::{self, Delta};
use super::formats;
use super::tool_params::{self, InTool, InToolCall};
use crate::asks::records::rfc3339;
use crate::asks::{AskEnd, AskRequest};
use crate::config::{ModelConfig, ModelSource};
use crate::engine::{ChatMessage, ResponseFormat, Role, SamplingParams};
use crate::protocol::tools::{self, CallStream, ToolCall};
use crate::users::Caller;
use crate::workflows::AskOutcome;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use orrery_cpu::grammar::Json as OrderedJson;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::time::{Duration, SystemTime};

/// The Ollama API version these endpoints follow (`GET /api/version`).
pub const OLLAMA_API_VERSION: &str = "0.12.0";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/version", get(version))
}

/// An error as Ollama sends it: `{"error": "message"}` with the matching status.
#[derive(Debug)]
pub struct OllamaError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl From<ApiError> for OllamaError {
    fn from(e: ApiError) -> Self {
        let status = match e.code.as_str() {
            "unknown_model" => StatusCode::NOT_FOUND,
            _ => e.status(),
        };
        Self {
            status,
            message: e.message,
            retry_after: e.retry_after_secs,
        }
    }
}

impl OllamaError {
    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for OllamaError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": self.message}))).into_response();
        add_auth_headers(&mut resp, self.status, self.retry_after);
        resp
    }
}

/// The caller, with authentication failures in Ollama's shape.
pub struct OllamaCaller(pub Caller);

impl FromRequestParts<AppState> for OllamaCaller {
    type Rejection = OllamaError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OllamaError> {
        Caller::from_request_parts(parts, state)
            .await
            .map(OllamaCaller)
            .map_err(OllamaError::from)
    }
}

/// Ollama names models `name:tag`; ours have no tags, so `:latest` is the only one.
pub(super) fn model_id(name: &str) -> &str {
    name.strip_suffix(":latest").unwrap_or(name)
}

fn model_entry(m: &ModelConfig, size: u64) -> Value {
    let (format, family) = match m.source {
        ModelSource::Synthetic { .. } => ("synthetic", "synthetic"),
        _ => ("gguf", "llama"),
    };
    let name = format!("{}:latest", m.id);
    let digest = crate::users::keys::to_hex(&crate::users::hash_key(&format!("{:?}", m.source)));
    json!({"name": name, "model": name, "modified_at": rfc3339(SystemTime::UNIX_EPOCH),
           "size": size, "digest": digest,
           "details": {"parent_model": "", "format": format, "family": family, "families": [family],
                       "parameter_size": "", "quantization_level": format!("{:?}", m.precision).to_lowercase()}})
}

async fn tags(State(s): State<AppState>, _c: OllamaCaller) -> Json<Value> {
    let models: Vec<Value> = s
        .asks
        .config
        .models
        .iter()
        .map(|m| model_entry(m, 0))
        .collect();
    Json(json!({"models": models}))
}

async fn ps(State(s): State<AppState>, _c: OllamaCaller) -> Json<Value> {
    let status = s.node.models_status().await.unwrap_or_default();
    let mut models = Vec::new();
    for m in s
        .asks
        .config
        .models
        .iter()
        .filter(|m| status.loaded.contains(&m.id))
    {
        let size = model_memory(&s, &m.id).await;
        let mut e = model_entry(m, size);
        e["size_vram"] = json!(0);
        models.push(e);
    }
    Json(json!({"models": models}))
}

/// A loaded model's memory estimate, from its holder.
async fn model_memory(s: &AppState, id: &crate::protocol::ModelId) -> u64 {
    use crate::actors::model_holder::ModelHolderMsg;
    let Some(h) = s.node.holder(id) else {
        return 0;
    };
    ractor::call_t!(h, ModelHolderMsg::Stats, 1000)
        .map(|s| s.info.memory_bytes)
        .unwrap_or(0)
}

async fn version() -> Json<Value> {
    Json(json!({"version": OLLAMA_API_VERSION}))
}

#[derive(Debug, Default, Deserialize)]
struct Options {
    num_predict: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<Vec<String>>,
    /// Everything else (num_ctx, top_k, repeat_penalty, ...) is ignored.
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: String,
    images: Option<Vec<Value>>,
    /// An assistant turn's calls (`[{"function": {"name", "arguments": {...}}}]`).
    tool_calls: Option<Vec<InToolCall>>,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    #[serde(default)]
    messages: Vec<InMessage>,
    stream: Option<bool>,
    options: Option<Options>,
    format: Option<OrderedJson>,
    tools: Option<Vec<InTool>>,
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
struct GenerateRequest {
    model: String,
    #[serde(default)]
    prompt: String,
    system: Option<String>,
    /// The prompt as is, without the chat template (the caller wrote the whole prompt).
    raw: Option<bool>,
    stream: Option<bool>,
    options: Option<Options>,
    format: Option<OrderedJson>,
    images: Option<Vec<Value>>,
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

/// `format` as a response format whose schema compiles, or a 400 naming what is wrong.
async fn checked_format(
    format: Option<OrderedJson>,
) -> Result<Option<ResponseFormat>, OllamaError> {
    let format = formats::from_ollama(format).map_err(|e| OllamaError::bad(e.message))?;
    formats::check(format.as_ref())
        .await
        .map_err(|e| OllamaError::bad(e.message))?;
    Ok(format)
}

fn params(o: Option<Options>, format: Option<ResponseFormat>) -> SamplingParams {
    let o = o.unwrap_or_default();
    let d = SamplingParams::default();
    SamplingParams {
        // Ollama's -1 (and -2) mean "until done": the node's default cap.
        max_tokens: match o.num_predict {
            Some(n) if n > 0 => u32::try_from(n).unwrap_or(u32::MAX),
            _ => d.max_tokens,
        },
        temperature: o.temperature.unwrap_or(d.temperature),
        top_p: o.top_p.or(d.top_p),
        seed: o.seed.unwrap_or(d.seed),
        stop: o.stop.unwrap_or_default(),
        response_format: format.map(Box::new),
        ..d
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, OllamaError> {
    serde_json::from_slice(body).map_err(|e| OllamaError::bad(format!("invalid request: {e}")))
}

fn role(r: &str) -> Result<Role, OllamaError> {
    match r {
        "system" => Ok(Role::System),
        "user" => Ok(Role::User),
        "assistant" => Ok(Role::Assistant),
        "tool" => Ok(Role::Tool),
        other => Err(OllamaError::bad(format!(
            "messages with role `{other}` are not supported (no tool calling)"
        ))),
    }
}

/// Which endpoint shapes the answer: `/api/chat` (`message`) or `/api/generate` (`response`).
#[derive(Clone, Copy)]
enum Shape {
    Chat,
    Generate,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn piece(shape: Shape, model: &str, text: &str, done: bool) -> Value {
    let mut v = json!({"model": model, "created_at": rfc3339(SystemTime::now()), "done": done});
    match shape {
        Shape::Chat => v["message"] = json!({"role": "assistant", "content": text}),
        Shape::Generate => v["response"] = json!(text),
    }
    v
}

fn last_piece(shape: Shape, model: &str, text: &str, o: &AskOutcome, elapsed: Duration) -> Value {
    let mut v = piece(shape, model, text, true);
    let first = Duration::from_millis(o.first_token_ms);
    let total = Duration::from_millis(o.total_ms);
    v["done_reason"] = json!(match o.finish_reason {
        crate::engine::FinishReason::Length => "length",
        _ => "stop",
    });
    v["total_duration"] = json!(ns(elapsed));
    v["load_duration"] = json!(0);
    v["prompt_eval_count"] = json!(o.prompt_tokens);
    v["prompt_eval_duration"] = json!(ns(first));
    v["eval_count"] = json!(o.completion_tokens);
    v["eval_duration"] = json!(ns(total.saturating_sub(first)));
    v
}

/// Adds the calls to a chat piece's message, as Ollama sends them:
/// `"tool_calls": [{"function": {"name", "arguments": {...}}}]`.
fn with_calls(piece: &mut Value, calls: &[ToolCall]) {
    if calls.is_empty() || !piece["message"].is_object() {
        return;
    }
    piece["message"]["tool_calls"] = calls
        .iter()
        .map(
            |c| json!({"id": c.id, "function": {"name": c.name, "arguments": c.arguments_value()}}),
        )
        .collect();
}

fn end_error(end: AskEnd) -> OllamaError {
    match end {
        AskEnd::Failed { code, message } => ApiError::new(&code, message).into(),
        AskEnd::Cancelled => OllamaError {
            status: StatusCode::CONFLICT,
            message: "the ask was cancelled".into(),
            retry_after: None,
        },
        AskEnd::Done(_) => ApiError::new("internal", "not an error").into(),
    }
}

async fn answer(
    s: &AppState,
    caller: &Caller,
    shape: Shape,
    model_name: String,
    messages: Vec<ChatMessage>,
    params: SamplingParams,
    stream: bool,
) -> Result<Response, OllamaError> {
    let ask = AskRequest {
        user: String::new(),
        model: Some(model_id(&model_name).to_string()),
        messages,
        params,
        priority: None,
    };
    let tools = ask.params.tools.clone().filter(|t| t.active());
    let (started, rx) = follow::start_followed(s, caller, ask, "ollama").await?;
    let request_id = started.id.to_string();
    let mut resp = if stream {
        let model = model_name.clone();
        let rid = request_id.clone();
        let mut calls = tools.is_some().then(CallStream::default);
        let lines = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).flat_map(move |d| {
            let out: Vec<Value> = match d {
                Delta::Logprobs(_) => vec![],
                Delta::Text(t) => match calls.as_mut() {
                    None => vec![piece(shape, &model, &t, false)],
                    Some(held) => {
                        let now = held.push(&t);
                        if now.is_empty() {
                            vec![]
                        } else {
                            vec![piece(shape, &model, now, false)]
                        }
                    }
                },
                Delta::End {
                    end: AskEnd::Done(o),
                    elapsed,
                } => {
                    let mut v = Vec::new();
                    if let Some(held) = calls.take() {
                        let (rest, found) = held.finish(tools.as_deref(), &rid);
                        if !rest.is_empty() || !found.is_empty() {
                            let mut p = piece(shape, &model, &rest, false);
                            with_calls(&mut p, &found);
                            v.push(p);
                        }
                    }
                    v.push(last_piece(shape, &model, "", &o, elapsed));
                    v
                }
                Delta::End { end, .. } => vec![json!({"error": end_error(end).message})],
            };
            futures::stream::iter(
                out.into_iter()
                    .map(|v| Ok::<_, Infallible>(Bytes::from(format!("{v}\n")))),
            )
        });
        (
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(lines),
        )
            .into_response()
    } else {
        let (end, elapsed) = follow::collect(rx).await;
        let AskEnd::Done(o) = end else {
            return Err(end_error(end));
        };
        let answer = tools::calls_of(&o.text, tools.as_deref(), &request_id);
        let mut v = last_piece(shape, &model_name, &answer.content, &o, elapsed);
        with_calls(&mut v, &answer.calls);
        Json(v).into_response()
    };
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

async fn chat(
    State(s): State<AppState>,
    OllamaCaller(caller): OllamaCaller,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let r: ChatRequest = parse(&body)?;
    let format = checked_format(r.format).await?;
    let tools = tool_params::spec(r.tools, None, None).map_err(|e| OllamaError::bad(e.message))?;
    let mut messages = Vec::new();
    for m in r.messages {
        if m.images.is_some_and(|i| !i.is_empty()) {
            return Err(OllamaError::bad("images are not supported"));
        }
        messages.push(ChatMessage {
            tool_calls: tool_params::calls(m.tool_calls.unwrap_or_default()),
            ..ChatMessage::new(role(&m.role)?, m.content)
        });
    }
    let mut params = params(r.options, format);
    params.tools = tools.map(Box::new);
    let stream = r.stream != Some(false);
    answer(&s, &caller, Shape::Chat, r.model, messages, params, stream).await
}

async fn generate(
    State(s): State<AppState>,
    OllamaCaller(caller): OllamaCaller,
    body: Bytes,
) -> Result<Response, OllamaError> {
    let r: GenerateRequest = parse(&body)?;
    let format = checked_format(r.format).await?;
    if r.images.is_some_and(|i| !i.is_empty()) {
        return Err(OllamaError::bad("images are not supported"));
    }
    let id = model_id(&r.model);
    if s.asks
        .config
        .model(&crate::protocol::ModelId::new(id))
        .is_none()
    {
        return Err(ApiError::unknown_model(&id).into());
    }
    if r.prompt.is_empty() {
        // Ollama's way to load a model: answer at once; ours are loaded by the cluster.
        let mut v = piece(Shape::Generate, &r.model, "", true);
        v["done_reason"] = json!("load");
        return Ok(Json(v).into_response());
    }
    let raw = r.raw == Some(true);
    let mut messages = Vec::new();
    if let Some(system) = r.system.filter(|s| !s.is_empty() && !raw) {
        messages.push(ChatMessage::new(Role::System, system));
    }
    messages.push(ChatMessage::new(Role::User, r.prompt));
    let mut params = params(r.options, format);
    params.raw_prompt = raw;
    let stream = r.stream != Some(false);
    answer(
        &s,
        &caller,
        Shape::Generate,
        r.model,
        messages,
        params,
        stream,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_sampling() {
        // (options, wanted max_tokens, temperature)
        let d = SamplingParams::default();
        let table = [
            (json!({}), d.max_tokens, d.temperature),
            (json!({"num_predict": 20, "temperature": 0}), 20, 0.0),
            (
                json!({"num_predict": -1, "num_ctx": 4096, "top_k": 5}),
                d.max_tokens,
                d.temperature,
            ),
        ];
        for (o, max, temp) in table {
            let p = params(Some(serde_json::from_value(o.clone()).unwrap()), None);
            assert_eq!((p.max_tokens, p.temperature), (max, temp), "{o}");
        }
    }

    #[test]
    fn model_names_may_carry_the_latest_tag() {
        assert_eq!(model_id("smollm2-135m:latest"), "smollm2-135m");
        assert_eq!(model_id("smollm2-135m"), "smollm2-135m");
    }

    #[test]
    fn the_last_piece_carries_counts_and_durations() {
        let o = AskOutcome {
            text: "Paris.".into(),
            node: "n".into(),
            model: "m".into(),
            finish_reason: crate::engine::FinishReason::Length,
            prompt_tokens: 10,
            completion_tokens: 4,
            first_token_ms: 100,
            total_ms: 300,
            attempts: 1,
            tool_calls: Vec::new(),
            logprobs: Vec::new(),
            cached_tokens: 0,
            embeddings: Vec::new(),
        };
        let v = last_piece(
            Shape::Generate,
            "m:latest",
            "",
            &o,
            Duration::from_millis(500),
        );
        assert_eq!(v["done"], true);
        assert_eq!(v["done_reason"], "length");
        assert_eq!(v["eval_count"], 4);
        assert_eq!(v["eval_duration"], 200_000_000u64);
        assert_eq!(v["total_duration"], 500_000_000u64);
        assert!(v.get("message").is_none());
    }
}
