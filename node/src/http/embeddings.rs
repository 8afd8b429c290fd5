//! Embeddings: OpenAI's `POST /v1/embeddings` (`encoding_format` float or base64) and Ollama's
//! `POST /api/embed` (and the older `POST /api/embeddings`). The vectors are the chat model's
//! final hidden states, mean-pooled and scaled to unit length (llama.cpp's server with mean
//! pooling does the same for a generative model). Each request is an AskWorkflow like any other:
//! placed on a node that holds the model, durable, retried elsewhere if that node dies; its result
//! records the vectors. Documented in docs/openai.md and docs/ollama.md.

use super::AppState;
use super::error::ApiError;
use super::follow;
use super::ollama::{OllamaCaller, OllamaError};
use super::openai::{OpenAiCaller, OpenAiError};
use crate::asks::{AskEnd, AskRequest};
use crate::engine::{ChatMessage, Role, SamplingParams};
use crate::users::Caller;
use crate::workflows::AskOutcome;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Json;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<Value>),
}

/// The texts of `input`: a string or a list of strings (token-id inputs are refused).
fn texts(input: Option<Input>) -> Result<Vec<String>, (String, &'static str)> {
    let texts = match input {
        None => return Err(("you must provide an input parameter".into(), "input")),
        Some(Input::One(t)) => vec![t],
        Some(Input::Many(items)) => items
            .into_iter()
            .map(|v| match v {
                Value::String(t) => Ok(t),
                _ => Err((
                    "inputs as token ids are not supported: send text".to_string(),
                    "input",
                )),
            })
            .collect::<Result<_, _>>()?,
    };
    if texts.is_empty() {
        return Err(("input is an empty list".into(), "input"));
    }
    if let Some(i) = texts.iter().position(|t| t.trim().is_empty()) {
        return Err((format!("input {i} is empty"), "input"));
    }
    Ok(texts)
}

/// Embeds `texts` with `model` through an ask; the outcome and how long it took.
async fn run(
    s: &AppState,
    caller: &Caller,
    model: String,
    texts: Vec<String>,
    api: &'static str,
) -> Result<(AskOutcome, Duration), ApiError> {
    let ask = AskRequest {
        user: String::new(),
        model: Some(model),
        messages: texts
            .into_iter()
            .map(|t| ChatMessage::new(Role::User, t))
            .collect(),
        params: SamplingParams {
            embed: true,
            max_tokens: 1,
            ..SamplingParams::default()
        },
        priority: None,
    };
    let (_, rx) = follow::start_followed(s, caller, ask, api).await?;
    match follow::collect(rx).await {
        (AskEnd::Done(o), elapsed) => Ok((o, elapsed)),
        (AskEnd::Failed { code, message }, _) => Err(ApiError::new(&code, message)),
        (AskEnd::Cancelled, _) => Err(ApiError::new("cancelled", "the request was cancelled")),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct OpenAiRequest {
    model: Option<String>,
    input: Option<Input>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
    /// `user` and anything else are ignored.
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

/// A vector as base64 of its little-endian f32s (OpenAI's `encoding_format: "base64"`).
fn base64_of(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(super) async fn openai(
    State(s): State<AppState>,
    OpenAiCaller(caller): OpenAiCaller,
    body: Bytes,
) -> Result<Json<Value>, OpenAiError> {
    let r: OpenAiRequest = serde_json::from_slice(&body).map_err(|e| {
        OpenAiError::invalid(
            format!("the request body is not a valid embeddings request: {e}"),
            None,
            "invalid_json",
        )
    })?;
    let Some(model) = r.model.filter(|m| !m.is_empty()) else {
        return Err(OpenAiError::invalid(
            "you must provide a model parameter",
            Some("model"),
            "missing_required_parameter",
        ));
    };
    let base64 = match r.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid(
                format!("encoding_format `{other}` is not one of float, base64"),
                Some("encoding_format"),
                "invalid_value",
            ));
        }
    };
    let texts =
        texts(r.input).map_err(|(m, p)| OpenAiError::invalid(m, Some(p), "invalid_value"))?;
    let (o, _) = run(&s, &caller, model.clone(), texts, "openai").await?;
    if let Some(d) = r.dimensions
        && o.embeddings.first().is_some_and(|v| v.len() != d)
    {
        return Err(OpenAiError::invalid(
            format!(
                "dimensions {d}: this model's embeddings have {} (they cannot be shortened)",
                o.embeddings[0].len()
            ),
            Some("dimensions"),
            "invalid_value",
        ));
    }
    let data: Vec<Value> = o
        .embeddings
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                json!(base64_of(v))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": o.prompt_tokens, "total_tokens": o.prompt_tokens},
    })))
}

#[derive(Debug, Deserialize)]
pub(super) struct OllamaRequest {
    model: String,
    /// `/api/embed`.
    input: Option<Input>,
    /// The older `/api/embeddings`.
    prompt: Option<String>,
    /// `truncate`, `options`, `keep_alive`, ... are ignored.
    #[serde(flatten)]
    _ignored: Map<String, Value>,
}

fn ollama_request(body: &Bytes) -> Result<OllamaRequest, OllamaError> {
    serde_json::from_slice(body).map_err(|e| OllamaError::bad(format!("invalid request: {e}")))
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `POST /api/embed`: `{"model", "embeddings": [[...]], "total_duration", "load_duration",
/// "prompt_eval_count"}`.
pub(super) async fn ollama_embed(
    State(s): State<AppState>,
    OllamaCaller(caller): OllamaCaller,
    body: Bytes,
) -> Result<Json<Value>, OllamaError> {
    let r = ollama_request(&body)?;
    let texts = texts(r.input).map_err(|(m, _)| OllamaError::bad(m))?;
    let model = super::ollama::model_id(&r.model).to_string();
    let (o, elapsed) = run(&s, &caller, model, texts, "ollama").await?;
    Ok(Json(json!({
        "model": r.model, "embeddings": o.embeddings, "total_duration": ns(elapsed),
        "load_duration": 0, "prompt_eval_count": o.prompt_tokens,
    })))
}

/// `POST /api/embeddings` (Ollama's older route): `{"embedding": [...]}` for one `prompt`.
pub(super) async fn ollama_embeddings(
    State(s): State<AppState>,
    OllamaCaller(caller): OllamaCaller,
    body: Bytes,
) -> Result<Json<Value>, OllamaError> {
    let r = ollama_request(&body)?;
    let texts = texts(r.prompt.map(Input::One)).map_err(|(m, _)| OllamaError::bad(m))?;
    let model = super::ollama::model_id(&r.model).to_string();
    let (mut o, _) = run(&s, &caller, model, texts, "ollama").await?;
    Ok(Json(
        json!({"embedding": o.embeddings.pop().unwrap_or_default()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_texts() {
        let parse = |v: Value| texts(serde_json::from_value(v).ok());
        assert_eq!(parse(json!("a")).unwrap(), ["a"]);
        assert_eq!(parse(json!(["a", "b"])).unwrap(), ["a", "b"]);
        for bad in [json!([]), json!([[1, 2]]), json!(["a", " "])] {
            assert_eq!(parse(bad.clone()).unwrap_err().1, "input", "{bad}");
        }
        assert!(texts(None).is_err());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let b = base64_of(&[1.0, -2.5]);
        let bytes = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
        assert_eq!(bytes.len(), 8);
        assert_eq!(f32::from_le_bytes(bytes[4..8].try_into().unwrap()), -2.5);
    }
}
