//! The OpenAI-compatible API: `GET /v1/models`, `GET /v1/models/{model}`,
//! `POST /v1/chat/completions` (server-sent events ending in `data: [DONE]`, or one JSON answer)
//! (the legacy `POST /v1/completions` is `completions.rs`, `POST /v1/embeddings` is
//! `embeddings.rs`, both routed from `http/mod.rs`).
//! Each completion is an AskWorkflow like any other; errors use OpenAI's shape
//! `{"error": {"message", "type", "param", "code"}}`. Documented in docs/openai.md.

use super::AppState;
use super::error::ApiError;
use super::follow::{self, Delta};
use super::formats::{self, OpenAiFormat};
pub use super::openai_error::{OpenAiCaller, OpenAiError};
use super::tool_params::{self, InTool, InToolCall};
use crate::asks::{AskEnd, AskRequest};
use crate::engine::{ChatMessage, Role, SamplingParams, TokenLogprob};
use crate::protocol::tools::{self, CallStream, ToolCall, ToolSpec};
use crate::workflows::AskOutcome;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/models/{model}", get(get_model))
        .route("/v1/chat/completions", post(chat_completions))
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// When this node first listed its models: the `created` of every model object.
static LISTED_AT: LazyLock<u64> = LazyLock::new(unix_now);

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": *LISTED_AT, "owned_by": "orrery"})
}

async fn list_models(State(s): State<AppState>, _c: OpenAiCaller) -> Json<Value> {
    let data: Vec<Value> = s
        .asks
        .config
        .models
        .iter()
        .map(|m| model_object(m.id.as_str()))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

async fn get_model(
    State(s): State<AppState>,
    _c: OpenAiCaller,
    Path(model): Path<String>,
) -> Result<Json<Value>, OpenAiError> {
    s.asks
        .config
        .models
        .iter()
        .find(|m| m.id.as_str() == model)
        .map(|m| Json(model_object(m.id.as_str())))
        .ok_or_else(|| ApiError::unknown_model(&model).into())
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    content: Option<Content>,
    /// An assistant turn's calls.
    tool_calls: Option<Vec<InToolCall>>,
    /// A tool turn's call.
    tool_call_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest {
    model: Option<String>,
    messages: Option<Vec<InMessage>>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<Stop>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    n: Option<u32>,
    tools: Option<Vec<InTool>>,
    tool_choice: Option<Value>,
    parallel_tool_calls: Option<bool>,
    logprobs: Option<bool>,
    top_logprobs: Option<u8>,
    response_format: Option<OpenAiFormat>,
    /// Everything else OpenAI accepts (penalties, logit_bias, user, metadata, ...) is ignored.
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

fn to_messages(msgs: Vec<InMessage>) -> Result<Vec<ChatMessage>, OpenAiError> {
    msgs.into_iter()
        .map(|m| {
            let role = match m.role.as_str() {
                "system" | "developer" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                "tool" => Role::Tool,
                other => {
                    return Err(OpenAiError::invalid(
                        format!(
                            "messages with role `{other}` are not supported: use system, \
                             developer, user, assistant or tool"
                        ),
                        Some("messages"),
                        "unsupported_role",
                    ));
                }
            };
            if role == Role::Tool && m.tool_call_id.is_none() {
                return Err(OpenAiError::invalid(
                    "a message with role `tool` needs the `tool_call_id` it answers",
                    Some("messages"),
                    "missing_required_parameter",
                ));
            }
            let tool_calls = tool_params::calls(m.tool_calls.unwrap_or_default());
            let content = match m.content {
                None => String::new(),
                Some(Content::Text(t)) => t,
                Some(Content::Parts(parts)) => {
                    let mut text = String::new();
                    for p in parts {
                        if p.kind != "text" {
                            return Err(OpenAiError::invalid(
                                format!(
                                    "content parts of type `{}` are not supported; only text",
                                    p.kind
                                ),
                                Some("messages"),
                                "unsupported_content",
                            ));
                        }
                        text.push_str(p.text.as_deref().unwrap_or(""));
                    }
                    text
                }
            };
            Ok(ChatMessage {
                tool_calls,
                tool_call_id: m.tool_call_id,
                ..ChatMessage::new(role, content)
            })
        })
        .collect()
}

/// A chat request as asks: the ask, and how to answer it.
#[derive(Debug)]
pub(crate) struct ChatAsk {
    pub ask: AskRequest,
    pub stream: bool,
    pub include_usage: bool,
    /// Choices wanted (OpenAI's `n`): each is an ask of its own, with seeds `seed`, `seed + 1`, ...
    pub n: u32,
}

/// A chat request as an ask, or the OpenAI error that says what is wrong with it.
pub(crate) fn to_ask(r: ChatRequest) -> Result<ChatAsk, OpenAiError> {
    let Some(model) = r.model.filter(|m| !m.is_empty()) else {
        return Err(OpenAiError::invalid(
            "you must provide a model parameter",
            Some("model"),
            "missing_required_parameter",
        ));
    };
    let Some(messages) = r.messages else {
        return Err(OpenAiError::invalid(
            "you must provide a messages parameter",
            Some("messages"),
            "missing_required_parameter",
        ));
    };
    let n = r.n.unwrap_or(1);
    if n == 0 {
        return Err(OpenAiError::invalid(
            "n must be at least 1",
            Some("n"),
            "invalid_value",
        ));
    }
    let tools = tool_params::spec(r.tools, r.tool_choice, r.parallel_tool_calls)
        .map_err(|e| OpenAiError::invalid(e.message, Some(e.param), "invalid_value"))?;
    let logprobs = match (r.logprobs == Some(true), r.top_logprobs) {
        (false, Some(_)) => {
            return Err(OpenAiError::invalid(
                "top_logprobs needs logprobs: true",
                Some("top_logprobs"),
                "invalid_value",
            ));
        }
        (false, None) => None,
        (true, top) => Some(top.unwrap_or(0)),
    };
    let mut response_format = formats::from_openai(r.response_format)
        .map_err(|e| OpenAiError::invalid(e.message, Some("response_format"), e.code))?;
    // A forced call is the form of the whole answer.
    if let Some(call) = tools.as_ref().and_then(ToolSpec::call_format) {
        response_format = Some(call);
    }
    let d = SamplingParams::default();
    let params = SamplingParams {
        max_tokens: r
            .max_completion_tokens
            .or(r.max_tokens)
            .unwrap_or(d.max_tokens),
        temperature: r.temperature.unwrap_or(d.temperature),
        top_p: r.top_p.or(d.top_p),
        seed: r.seed.unwrap_or(d.seed),
        stop: match r.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        response_format: response_format.map(Box::new),
        tools: tools.map(Box::new),
        logprobs,
        ..d
    };
    let include_usage = r.stream_options.unwrap_or_default().include_usage == Some(true);
    let ask = AskRequest {
        user: String::new(),
        model: Some(model),
        messages: to_messages(messages)?,
        params,
        priority: None,
    };
    Ok(ChatAsk {
        ask,
        stream: r.stream == Some(true),
        include_usage,
        n,
    })
}

/// Compiles the request's response format (off the runtime) so an unsupported schema is a 400
/// before the ask starts.
async fn check_format(ask: &AskRequest) -> Result<(), OpenAiError> {
    formats::check(ask.params.response_format.as_deref())
        .await
        .map_err(|e| OpenAiError::invalid(e.message, Some("response_format"), e.code))
}

pub(super) fn finish_reason(o: &AskOutcome) -> &'static str {
    match o.finish_reason {
        crate::engine::FinishReason::Length => "length",
        _ => "stop",
    }
}

pub(super) fn end_error(end: AskEnd) -> OpenAiError {
    match end {
        AskEnd::Failed { code, message } => ApiError::new(&code, message).into(),
        AskEnd::Cancelled => ApiError::new("cancelled", "the ask was cancelled").into(),
        AskEnd::Done(_) => ApiError::new("internal", "not an error").into(),
    }
}

async fn chat_completions(
    State(s): State<AppState>,
    OpenAiCaller(caller): OpenAiCaller,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let req: ChatRequest = serde_json::from_slice(&body).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => "invalid_type",
            _ => "invalid_json",
        };
        OpenAiError::invalid(
            format!("the request body is not a valid chat completion request: {e}"),
            None,
            code,
        )
    })?;
    let ChatAsk {
        ask,
        stream,
        include_usage,
        n,
    } = to_ask(req)?;
    check_format(&ask).await?;
    let asks = choices(&s, ask, n)?;
    let tools = asks[0].params.tools.clone().filter(|t| t.active());
    let asked_logprobs = asks[0].params.logprobs.is_some();
    let (started, rx) = follow::start_many(&s, &caller, asks, "openai").await?;
    let ids: Vec<String> = started.iter().map(|a| a.id.to_string()).collect();
    let id = ids[0].clone();
    let model = started[0].model.to_string();
    let created = unix_now();
    let fingerprint = format!("orrery-{}", s.asks.config.node_id);
    let request_id = HeaderValue::from_str(&id).ok();
    let n = ids.len();

    let mut resp = if stream {
        let chunk = move |index: usize, delta: Value, finish: Option<&str>| {
            let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "system_fingerprint": fingerprint,
                "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]});
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let first: Vec<Value> = (0..n)
            .map(|i| chunk(i, json!({"role": "assistant", "content": ""}), None))
            .collect();
        let mut held: Vec<Option<CallStream>> = (0..n)
            .map(|_| tools.is_some().then(CallStream::default))
            .collect();
        let mut totals = Totals::default();
        let mut pending: Vec<Vec<TokenLogprob>> = vec![Vec::new(); n];
        let events = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).flat_map(move |(i, d)| {
            let text_chunk = |t: &str| chunk(i, json!({"content": t}), None);
            let out: Vec<Value> = match d {
                Delta::Logprobs(l) => {
                    if let Some(p) = pending.get_mut(i) {
                        p.extend(l);
                    }
                    vec![]
                }
                Delta::Text(t) => match held.get_mut(i).and_then(Option::as_mut) {
                    None => {
                        let mut c = text_chunk(&t);
                        if let Some(p) = pending.get_mut(i).filter(|p| !p.is_empty()) {
                            let entries = fit(std::mem::take(p), t.len());
                            c["choices"][0]["logprobs"] = logprobs_json(&entries);
                        }
                        vec![c]
                    }
                    Some(calls) => {
                        let now = calls.push(&t);
                        if now.is_empty() {
                            vec![]
                        } else {
                            vec![text_chunk(now)]
                        }
                    }
                },
                Delta::End {
                    end: AskEnd::Done(o),
                    ..
                } => {
                    let mut v = Vec::new();
                    let mut finish = finish_reason(&o);
                    if let Some(calls) = held.get_mut(i).and_then(Option::take) {
                        let (rest, found) = calls.finish(tools.as_deref(), &ids[i]);
                        if !rest.is_empty() {
                            v.push(text_chunk(&rest));
                        }
                        for (index, call) in found.iter().enumerate() {
                            v.push(chunk(i, json!({"tool_calls": [{"index": index, "id": call.id,
                                "type": "function", "function": {"name": call.name, "arguments": ""}}]}),
                                None));
                            v.push(chunk(i, json!({"tool_calls": [{"index": index,
                                "function": {"arguments": call.arguments}}]}), None));
                        }
                        if !found.is_empty() {
                            finish = "tool_calls";
                        }
                    }
                    v.push(chunk(i, json!({}), Some(finish)));
                    v.extend(totals.end_choice(&o, n, include_usage, chunk(i, json!({}), None)));
                    v
                }
                Delta::End { end, .. } => vec![end_error(end).body()],
            };
            futures::stream::iter(out)
        });
        sse(futures::stream::iter(first).chain(events))
    } else {
        let (outcomes, totals) = collect_done(rx, n).await?;
        let mut out = Vec::with_capacity(n);
        for (index, o) in outcomes.iter().enumerate() {
            let answer = tools::calls_of(&o.text, tools.as_deref(), &ids[index]);
            let mut message =
                json!({"role": "assistant", "content": answer.content, "refusal": null});
            let mut finish = finish_reason(o);
            if !answer.calls.is_empty() {
                finish = "tool_calls";
                message["tool_calls"] = answer.calls.iter().map(call_json).collect();
                if answer.content.is_empty() {
                    message["content"] = Value::Null;
                }
            }
            let logprobs = if asked_logprobs {
                logprobs_json(&fit(o.logprobs.clone(), o.text.len()))
            } else {
                Value::Null
            };
            out.push(
                json!({"index": index, "message": message, "logprobs": logprobs,
                            "finish_reason": finish}),
            );
        }
        Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "system_fingerprint": fingerprint, "choices": out, "usage": totals.usage(),
        }))
        .into_response()
    };
    if let Some(v) = request_id {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// `n` copies of an ask, seeds `seed`, `seed + 1`, ...: each choice is an ask of its own, placed,
/// durable and counted under the caller's limits like any other. At most `limits.max_choices`.
pub(super) fn choices(
    s: &AppState,
    ask: AskRequest,
    n: u32,
) -> Result<Vec<AskRequest>, OpenAiError> {
    let max = s.asks.config.limits.max_choices;
    if n > max {
        return Err(OpenAiError::invalid(
            format!("n is {n}; this cluster answers at most {max} choices per request"),
            Some("n"),
            "invalid_value",
        ));
    }
    Ok((0..u64::from(n))
        .map(|i| {
            let mut a = ask.clone();
            a.params.seed = a.params.seed.wrapping_add(i);
            a
        })
        .collect())
}

/// Token counts over a request's choices: the prompt once (the choices share it), the
/// completions summed.
#[derive(Default)]
pub(super) struct Totals {
    prompt: u32,
    cached: u32,
    completion: u32,
    pub ended: usize,
}

impl Totals {
    pub fn add(&mut self, o: &AskOutcome) {
        self.prompt = self.prompt.max(o.prompt_tokens);
        self.cached = self.cached.max(o.cached_tokens);
        self.completion += o.completion_tokens;
        self.ended += 1;
    }

    /// Adds a choice that ended; with `include_usage`, the usage chunk (made from `template`)
    /// when it was the last of `n`.
    pub fn end_choice(
        &mut self,
        o: &AskOutcome,
        n: usize,
        include_usage: bool,
        mut template: Value,
    ) -> Option<Value> {
        self.add(o);
        (include_usage && self.ended == n).then(|| {
            template["choices"] = json!([]);
            template["usage"] = self.usage();
            template
        })
    }

    pub fn usage(&self) -> Value {
        json!({"prompt_tokens": self.prompt, "completion_tokens": self.completion,
               "total_tokens": self.prompt + self.completion,
               "prompt_tokens_details": {"cached_tokens": self.cached}})
    }
}

/// The outcomes of `n` asks started with `follow::start_many`, in order, and their token
/// counts; the first that did not end done is the error.
pub(super) async fn collect_done(
    rx: tokio::sync::mpsc::UnboundedReceiver<(usize, Delta)>,
    n: usize,
) -> Result<(Vec<AskOutcome>, Totals), OpenAiError> {
    let mut totals = Totals::default();
    let mut outcomes = Vec::with_capacity(n);
    for (end, _) in follow::collect_many(rx, n).await {
        let AskEnd::Done(o) = end else {
            return Err(end_error(end));
        };
        totals.add(&o);
        outcomes.push(o);
    }
    Ok((outcomes, totals))
}

/// Server-sent events of `events`, then `data: [DONE]`.
pub(super) fn sse(events: impl futures::Stream<Item = Value> + Send + 'static) -> Response {
    let events = events
        .map(|v| Event::default().data(v.to_string()))
        .chain(futures::stream::once(async {
            Event::default().data("[DONE]")
        }))
        .map(Ok::<_, Infallible>);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The leading entries whose tokens fit in `len` bytes of answer: a stop string cuts the answer
/// inside the tokens that spelled it, and their log-probabilities go with them.
pub(super) fn fit(mut entries: Vec<TokenLogprob>, len: usize) -> Vec<TokenLogprob> {
    let mut used = 0;
    let keep = entries
        .iter()
        .take_while(|e| {
            used += e.bytes.len();
            used <= len
        })
        .count();
    entries.truncate(keep);
    entries
}

/// Chat's `logprobs`: `{"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}`.
fn logprobs_json(entries: &[TokenLogprob]) -> Value {
    let content: Vec<Value> = entries
        .iter()
        .map(|e| {
            let top: Vec<Value> = e
                .top
                .iter()
                .map(|t| json!({"token": t.token, "logprob": t.logprob, "bytes": t.bytes}))
                .collect();
            json!({"token": e.token, "logprob": e.logprob, "bytes": e.bytes, "top_logprobs": top})
        })
        .collect();
    json!({"content": content, "refusal": null})
}

/// A call as OpenAI returns it in `message.tool_calls`.
fn call_json(call: &ToolCall) -> Value {
    json!({"id": call.id, "type": "function",
           "function": {"name": call.name, "arguments": call.arguments}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ToolChoice;

    fn parse(v: Value) -> Result<(AskRequest, bool, bool), OpenAiError> {
        to_ask(serde_json::from_value(v).unwrap()).map(|c| (c.ask, c.stream, c.include_usage))
    }

    #[test]
    fn requests_map_to_asks() {
        let (ask, stream, usage) = parse(json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "developer", "content": "Be brief."},
                         {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}],
            "max_tokens": 5, "max_completion_tokens": 7, "temperature": 0, "top_p": 0.5, "seed": 3,
            "stop": "\n", "presence_penalty": 0, "user": "ignored"
        }))
        .unwrap();
        assert!(stream && usage);
        assert_eq!(ask.model.as_deref(), Some("m"));
        assert_eq!(ask.messages[0].role, Role::System);
        assert_eq!(ask.messages[1].content, "Hi!");
        assert_eq!(ask.params.max_tokens, 7);
        assert_eq!(ask.params.top_p, Some(0.5));
        assert_eq!(ask.params.seed, 3);
        assert_eq!(ask.params.stop, vec!["\n".to_string()]);
        let (ask, stream, _) =
            parse(json!({"model": "m", "messages": [], "stop": ["a", "b"]})).unwrap();
        assert!(!stream);
        assert_eq!(ask.params.stop.len(), 2);
    }

    #[test]
    fn tools_and_tool_turns_map_to_the_ask() {
        let ChatAsk { ask, .. } = to_ask(serde_json::from_str(r#"{
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "a": {"type": "integer"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false
        }"#).unwrap())
        .unwrap();
        let m = &ask.messages;
        assert_eq!(m[1].tool_calls[0].name, "get_weather");
        assert_eq!(m[1].tool_calls[0].arguments, r#"{"city": "Paris"}"#);
        assert_eq!(m[2].role, Role::Tool);
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_1"));
        let spec = ask.params.tools.as_deref().unwrap();
        assert_eq!(spec.choice, ToolChoice::Named("get_weather".into()));
        assert!(!spec.parallel);
        // Key order kept: "city" before "a".
        assert!(
            spec.tools[0].parameters_text.find("city")
                < spec.tools[0].parameters_text.find("\"a\"")
        );
        // A forced call is the answer's format.
        assert!(ask.params.response_format.is_some());
    }

    #[tokio::test]
    async fn an_unsupported_schema_names_keyword_and_place() {
        let req: ChatRequest = serde_json::from_str(
            r#"{"model": "m", "messages": [], "response_format": {"type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "object",
                "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}}}}"#,
        )
        .unwrap();
        let ChatAsk { ask, .. } = to_ask(req).unwrap();
        let e = check_format(&ask).await.unwrap_err();
        assert_eq!(e.status.as_u16(), 400);
        assert_eq!(e.param, Some("response_format"));
        assert!(
            e.message.contains("pattern") && e.message.contains("#/properties/id"),
            "{}",
            e.message
        );
    }

    #[test]
    fn unsupported_requests_say_which_parameter() {
        // (request, wanted status, wanted param)
        let table = [
            (json!({"messages": []}), 400, Some("model")),
            (json!({"model": "m"}), 400, Some("messages")),
            (
                json!({"model": "m", "messages": [], "n": 0}),
                400,
                Some("n"),
            ),
            (
                json!({"model": "m", "messages": [], "tools": [{"type": "retrieval"}]}),
                400,
                Some("tools"),
            ),
            (
                json!({"model": "m", "messages": [], "tools": [{"type": "function", "function": {"name": "has space"}}]}),
                400,
                Some("tools"),
            ),
            (
                json!({"model": "m", "messages": [], "tool_choice": "required"}),
                400,
                Some("tool_choice"),
            ),
            (
                json!({"model": "m", "messages": [], "tool_choice": "sometimes",
                       "tools": [{"type": "function", "function": {"name": "f"}}]}),
                400,
                Some("tool_choice"),
            ),
            (
                json!({"model": "m", "messages": [], "tool_choice": {"type": "function", "function": {"name": "g"}},
                       "tools": [{"type": "function", "function": {"name": "f"}}]}),
                400,
                Some("tools"),
            ),
            (
                json!({"model": "m", "messages": [], "top_logprobs": 2}),
                400,
                Some("top_logprobs"),
            ),
            (
                json!({"model": "m", "messages": [], "response_format": {"type": "xml"}}),
                400,
                Some("response_format"),
            ),
            (
                json!({"model": "m", "messages": [{"role": "function", "content": "x"}]}),
                400,
                Some("messages"),
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                400,
                Some("messages"),
            ),
        ];
        for (req, status, param) in table {
            let e = parse(req.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), status, "{req}");
            assert_eq!(e.param, param, "{req}");
            assert_eq!(e.kind, "invalid_request_error");
        }
    }
}
