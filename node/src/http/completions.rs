//! OpenAI's legacy `POST /v1/completions`: a raw prompt (no chat template; control tokens in it
//! are parsed, since the caller writes the whole prompt) continued by the model. Each prompt of
//! the request, times `n`, is an ask of its own through the same AskWorkflow as chat; choice
//! `i * n + j` is prompt `i`'s `j`th answer. Documented in docs/openai.md.

use super::AppState;
use super::follow::{self, Delta};
use super::openai::{
    OpenAiCaller, OpenAiError, Totals, choices, collect_done, end_error, finish_reason, fit, sse,
};
use crate::asks::{AskEnd, AskRequest};
use crate::engine::{ChatMessage, Role, SamplingParams, TokenLogprob};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Json, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// OpenAI's default `max_tokens` for legacy completions.
const DEFAULT_MAX_TOKENS: u32 = 16;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<Value>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CompletionRequest {
    model: Option<String>,
    prompt: Option<Prompt>,
    suffix: Option<String>,
    echo: Option<bool>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<u32>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    logprobs: Option<u32>,
    best_of: Option<u32>,
    /// Everything else (penalties, logit_bias, user, ...) is ignored.
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

/// The request's prompts and the ask each starts from, or the error that says what is wrong.
pub(crate) fn to_asks(r: CompletionRequest) -> Result<(Vec<String>, AskRequest), OpenAiError> {
    let invalid = |m: &str, param| OpenAiError::invalid(m, Some(param), "invalid_value");
    let unsupported =
        |m: &str, param| OpenAiError::invalid(m, Some(param), "unsupported_parameter");
    let Some(model) = r.model.filter(|m| !m.is_empty()) else {
        return Err(OpenAiError::invalid(
            "you must provide a model parameter",
            Some("model"),
            "missing_required_parameter",
        ));
    };
    let prompts = match r.prompt {
        None => {
            return Err(OpenAiError::invalid(
                "you must provide a prompt parameter",
                Some("prompt"),
                "missing_required_parameter",
            ));
        }
        Some(Prompt::One(p)) => vec![p],
        Some(Prompt::Many(items)) => {
            let mut prompts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(p) => prompts.push(p),
                    _ => {
                        return Err(unsupported(
                            "prompts as token ids are not supported: send text",
                            "prompt",
                        ));
                    }
                }
            }
            prompts
        }
    };
    if prompts.is_empty() {
        return Err(invalid("prompt is an empty list", "prompt"));
    }
    if r.suffix.is_some_and(|s| !s.is_empty()) {
        return Err(unsupported(
            "suffix (fill in the middle) is not supported",
            "suffix",
        ));
    }
    if r.logprobs.is_some() && r.echo == Some(true) {
        return Err(unsupported(
            "echo with logprobs is not supported (the prompt's tokens have none here)",
            "logprobs",
        ));
    }
    if r.best_of.is_some_and(|b| b != r.n.unwrap_or(1)) {
        return Err(unsupported(
            "best_of is not supported (other than equal to n)",
            "best_of",
        ));
    }
    let d = SamplingParams::default();
    let params = SamplingParams {
        max_tokens: r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        temperature: r.temperature.unwrap_or(d.temperature),
        top_p: r.top_p.or(d.top_p),
        seed: r.seed.unwrap_or(d.seed),
        stop: match r.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        raw_prompt: true,
        logprobs: r.logprobs.map(|n| u8::try_from(n).unwrap_or(u8::MAX)),
        ..d
    };
    let ask = AskRequest {
        user: String::new(),
        model: Some(model),
        messages: Vec::new(),
        params,
        priority: None,
    };
    Ok((prompts, ask))
}

fn parse(body: &Bytes) -> Result<CompletionRequest, OpenAiError> {
    serde_json::from_slice(body).map_err(|e| {
        OpenAiError::invalid(
            format!("the request body is not a valid completion request: {e}"),
            None,
            "invalid_json",
        )
    })
}

pub(super) async fn completions(
    State(s): State<AppState>,
    OpenAiCaller(caller): OpenAiCaller,
    body: Bytes,
) -> Result<Response, OpenAiError> {
    let r = parse(&body)?;
    let (stream, echo, n) = (
        r.stream == Some(true),
        r.echo == Some(true),
        r.n.unwrap_or(1),
    );
    let include_usage = r.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true);
    if n == 0 {
        return Err(OpenAiError::invalid(
            "n must be at least 1",
            Some("n"),
            "invalid_value",
        ));
    }
    let (prompts, ask) = to_asks(r)?;
    let asked_logprobs = ask.params.logprobs.is_some();
    let total = u32::try_from(prompts.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(n);
    // Bounded like `n` alone: every prompt times n is one ask.
    choices(&s, ask.clone(), total)?;
    let mut asks = Vec::new();
    for prompt in &prompts {
        let one = AskRequest {
            messages: vec![ChatMessage::new(Role::User, prompt.clone())],
            ..ask.clone()
        };
        asks.extend(choices(&s, one, n)?);
    }
    let (started, rx) = follow::start_many(&s, &caller, asks, "openai").await?;
    let id = started[0].id.to_string();
    let model = started[0].model.to_string();
    let created = super::openai::unix_now();
    let request_id = HeaderValue::from_str(&id).ok();
    let count = started.len();
    // The prompt each choice continues, for `echo`.
    let prompt_of = move |i: usize| -> String { prompts[i / n.max(1) as usize].clone() };

    let mut resp = if stream {
        let chunk = move |index: usize, text: &str, finish: Option<&str>| {
            let mut c = json!({"id": id, "object": "text_completion", "created": created,
                "model": model, "choices": [{"text": text, "index": index, "logprobs": null,
                "finish_reason": finish}]});
            if include_usage {
                c["usage"] = Value::Null;
            }
            c
        };
        let first: Vec<Value> = if echo {
            (0..count).map(|i| chunk(i, &prompt_of(i), None)).collect()
        } else {
            Vec::new()
        };
        let mut totals = Totals::default();
        let mut pending: Vec<Vec<TokenLogprob>> = vec![Vec::new(); count];
        let mut offsets = vec![0usize; count];
        let events =
            tokio_stream::wrappers::UnboundedReceiverStream::new(rx).flat_map(move |(i, d)| {
                let out = match d {
                    Delta::Logprobs(l) => {
                        if let Some(p) = pending.get_mut(i) {
                            p.extend(l);
                        }
                        vec![]
                    }
                    Delta::Text(t) => {
                        let mut c = chunk(i, &t, None);
                        if let Some(p) = pending.get_mut(i).filter(|p| !p.is_empty()) {
                            let entries = fit(std::mem::take(p), t.len());
                            c["choices"][0]["logprobs"] = legacy_logprobs(&entries, offsets[i]);
                        }
                        if let Some(o) = offsets.get_mut(i) {
                            *o += t.len();
                        }
                        vec![c]
                    }
                    Delta::End {
                        end: AskEnd::Done(o),
                        ..
                    } => {
                        let mut v = vec![chunk(i, "", Some(finish_reason(&o)))];
                        v.extend(totals.end_choice(&o, count, include_usage, chunk(i, "", None)));
                        v
                    }
                    Delta::End { end, .. } => vec![end_error(end).body()],
                };
                futures::stream::iter(out)
            });
        sse(futures::stream::iter(first).chain(events))
    } else {
        let (outcomes, totals) = collect_done(rx, count).await?;
        let mut out = Vec::with_capacity(count);
        for (index, o) in outcomes.iter().enumerate() {
            let text = if echo {
                format!("{}{}", prompt_of(index), o.text)
            } else {
                o.text.clone()
            };
            let logprobs = if asked_logprobs {
                legacy_logprobs(&fit(o.logprobs.clone(), o.text.len()), 0)
            } else {
                Value::Null
            };
            out.push(json!({"text": text, "index": index, "logprobs": logprobs,
                            "finish_reason": finish_reason(o)}));
        }
        Json(
            json!({"id": id, "object": "text_completion", "created": created, "model": model,
                    "choices": out, "usage": totals.usage()}),
        )
        .into_response()
    };
    if let Some(v) = request_id {
        resp.headers_mut().insert("x-request-id", v);
    }
    Ok(resp)
}

/// The legacy `logprobs` object: `tokens`, `token_logprobs`, `top_logprobs` (a map from token to
/// log-probability per position) and `text_offset` (bytes from `start`).
fn legacy_logprobs(entries: &[TokenLogprob], start: usize) -> Value {
    let mut offset = start;
    let mut offsets = Vec::with_capacity(entries.len());
    for e in entries {
        offsets.push(offset);
        offset += e.bytes.len();
    }
    let top: Vec<Value> = entries
        .iter()
        .map(|e| {
            let map: Map<String, Value> = e
                .top
                .iter()
                .map(|t| (t.token.clone(), json!(t.logprob)))
                .collect();
            Value::Object(map)
        })
        .collect();
    json!({
        "tokens": entries.iter().map(|e| e.token.as_str()).collect::<Vec<_>>(),
        "token_logprobs": entries.iter().map(|e| e.logprob).collect::<Vec<_>>(),
        "top_logprobs": top,
        "text_offset": offsets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asks(v: Value) -> Result<(Vec<String>, AskRequest), OpenAiError> {
        to_asks(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn requests_map_to_raw_asks() {
        let (prompts, ask) = asks(json!({"model": "m", "prompt": ["a", "b"], "max_tokens": 5,
                                         "stop": "\n", "temperature": 0, "echo": true}))
        .unwrap();
        assert_eq!(prompts, ["a", "b"]);
        assert!(ask.params.raw_prompt);
        assert_eq!(ask.params.max_tokens, 5);
        assert_eq!(ask.params.stop, ["\n"]);
        let (_, ask) = asks(json!({"model": "m", "prompt": "x"})).unwrap();
        assert_eq!(ask.params.max_tokens, DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn unsupported_requests_say_which_parameter() {
        let table = [
            (json!({"prompt": "x"}), "model"),
            (json!({"model": "m"}), "prompt"),
            (json!({"model": "m", "prompt": []}), "prompt"),
            (json!({"model": "m", "prompt": [[1, 2]]}), "prompt"),
            (
                json!({"model": "m", "prompt": "x", "suffix": "y"}),
                "suffix",
            ),
            (
                json!({"model": "m", "prompt": "x", "logprobs": 2, "echo": true}),
                "logprobs",
            ),
            (
                json!({"model": "m", "prompt": "x", "best_of": 3}),
                "best_of",
            ),
        ];
        for (req, param) in table {
            let e = asks(req.clone()).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{req}");
            assert_eq!(e.param, Some(param), "{req}");
        }
    }
}
