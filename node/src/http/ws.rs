//! `/ws`: the JSON WebSocket protocol of docs/websocket.md. One socket carries many asks; a bad
//! frame is answered with an error frame and changes nothing else.

use super::AppState;
use super::error::ApiError;
use crate::actors::mesh;
use crate::asks::{AskEnd, AskRequest};
use crate::engine::{ChatMessage, Role, SamplingParams};
use crate::protocol::Priority;
use crate::protocol::RequestId;
use crate::protocol::{LiveEvent, LiveStage};
use crate::users::Caller;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use tokio::sync::mpsc;

/// Asks one socket may have in flight at once.
const MAX_IN_FLIGHT_PER_SOCKET: usize = 16;

/// Authenticates before upgrading (`Authorization: Bearer …` or `?api_key=`): a refused socket
/// never opens.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(1 << 20)
        .on_upgrade(move |socket| session(socket, state, caller))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AskFrame {
    #[serde(rename = "type")]
    _type: String,
    model: Option<String>,
    prompt: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<u64>,
    stop: Option<Vec<String>>,
    priority: Option<Priority>,
    client_id: Option<String>,
    /// Accepted from older clients and ignored: the API key decides the user.
    #[serde(rename = "user")]
    _user: Option<String>,
}

fn error_frame(e: &ApiError, client_id: Option<&str>, request_id: Option<&str>) -> Value {
    json!({"type": "error", "code": e.code, "message": e.message,
           "client_id": client_id, "request_id": request_id})
}

fn live_frame(id: &RequestId, ev: LiveEvent) -> Value {
    match ev {
        LiveEvent::Chunk { offset, text } => {
            json!({"type": "chunk", "request_id": id, "offset": offset, "text": text})
        }
        LiveEvent::Status(LiveStage::Generating { node }) => {
            json!({"type": "status", "request_id": id, "stage": "generating", "node": node})
        }
        LiveEvent::Status(LiveStage::Planning) => {
            json!({"type": "status", "request_id": id, "stage": "planning"})
        }
        LiveEvent::Status(LiveStage::Queued {
            position,
            estimated_wait_ms,
        }) => {
            json!({"type": "status", "request_id": id, "stage": "queued", "queue_position": position,
                   "estimated_wait_ms": estimated_wait_ms})
        }
    }
}

fn end_frame(id: &RequestId, end: AskEnd, shown: Option<String>, elapsed_ms: u64) -> Value {
    match end {
        AskEnd::Done(o) => json!({
            "type": "done", "request_id": id, "text": o.text, "node": o.node, "model": o.model,
            "finish_reason": o.finish_reason, "attempts": o.attempts,
            "usage": {"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens},
            "timings": {"queue_ms": elapsed_ms.saturating_sub(o.total_ms),
                        "first_token_ms": o.first_token_ms, "total_ms": o.total_ms},
        }),
        AskEnd::Failed { code, message } => json!({
            "type": "failed", "request_id": id, "error": {"code": code, "message": message},
        }),
        AskEnd::Cancelled => json!({
            "type": "cancelled", "request_id": id, "text": shown.unwrap_or_default(),
        }),
    }
}

async fn models_value(state: &AppState) -> Value {
    let status = state.node.models_status().await.unwrap_or_default();
    let models: Vec<Value> = state
        .asks
        .config
        .models
        .iter()
        .map(|m| {
            json!({"id": m.id, "loaded": status.loaded.contains(&m.id),
                   "kind": match m.source {
                       crate::config::ModelSource::Synthetic { .. } => "synthetic",
                       crate::config::ModelSource::Remote { .. } => "remote",
                       _ => "gguf" }})
        })
        .collect();
    Value::Array(models)
}

/// Parses one text frame into an ask request, or says exactly what is wrong with it.
fn parse_ask(v: Value) -> Result<(AskRequest, Option<String>), (ApiError, Option<String>)> {
    let client_id = v
        .get("client_id")
        .and_then(|c| c.as_str())
        .map(String::from);
    let f: AskFrame = serde_json::from_value(v).map_err(|e| {
        (
            ApiError::new("invalid_params", e.to_string()),
            client_id.clone(),
        )
    })?;
    let messages = match (f.prompt, f.messages) {
        (Some(_), Some(_)) => {
            return Err((
                ApiError::new("invalid_params", "give `prompt` or `messages`, not both"),
                client_id,
            ));
        }
        (Some(p), None) => vec![ChatMessage {
            role: Role::User,
            content: p,
        }],
        (None, Some(m)) => m,
        (None, None) => {
            return Err((
                ApiError::new("missing_field", "an ask needs `prompt` or `messages`"),
                client_id,
            ));
        }
    };
    let d = SamplingParams::default();
    let params = SamplingParams {
        max_tokens: f.max_tokens.unwrap_or(d.max_tokens),
        temperature: f.temperature.unwrap_or(d.temperature),
        top_p: f.top_p.or(d.top_p),
        seed: f.seed.unwrap_or(d.seed),
        stop: f.stop.unwrap_or_default(),
        ..d
    };
    Ok((
        AskRequest {
            user: String::new(),
            model: f.model,
            messages,
            params,
            priority: f.priority,
        },
        f.client_id,
    ))
}

async fn session(socket: WebSocket, state: AppState, caller: Caller) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
    let (live_tx, mut live_rx) = mpsc::unbounded_channel::<(RequestId, LiveEvent)>();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<RequestId>();
    let mut mine: HashSet<RequestId> = HashSet::new();
    let mut cluster = state.cluster.clone();
    cluster.mark_unchanged();
    metrics::gauge!("orrery_websocket_sessions").increment(1.0);

    let hello = json!({
        "type": "hello", "node": state.asks.config.node_id,
        "models": models_value(&state).await,
        "default_model": state.asks.config.default_model,
        "temporal_ui": state.asks.temporal_ui,
        "cluster": *state.cluster.borrow(),
        "limits": {"max_prompt_chars": state.asks.config.limits.max_prompt_chars,
                   "max_tokens": state.asks.config.limits.max_tokens},
    });
    let _ = out_tx.send(hello);

    loop {
        let frame = tokio::select! {
            // Live events first: a chunk already queued goes out before the end of its ask.
            biased;
            _ = state.shutdown.cancelled() => break,
            Some((id, ev)) = live_rx.recv() => live_frame(&id, ev),
            Some(v) = out_rx.recv() => v,
            Some(id) = ended_rx.recv() => { mine.remove(&id); continue; }
            Ok(()) = cluster.changed() => json!({"type": "cluster", "nodes": *cluster.borrow_and_update()}),
            incoming = stream.next() => {
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        let _ = out_tx.send(error_frame(&ApiError::new("binary_frame", "frames must be JSON text, not binary"), None, None));
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                handle_frame(&state, &caller, &text, &out_tx, &live_tx, &ended_tx, &mut mine).await;
                continue;
            }
        };
        if sink
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // The asks go on in Temporal; only this socket's following of them ends.
    for id in &mine {
        state.asks.unfollow(id);
    }
    metrics::gauge!("orrery_websocket_sessions").decrement(1.0);
    let _ = sink.close().await;
}

async fn handle_frame(
    state: &AppState,
    caller: &Caller,
    text: &str,
    out: &mpsc::UnboundedSender<Value>,
    live_tx: &mpsc::UnboundedSender<(RequestId, LiveEvent)>,
    ended_tx: &mpsc::UnboundedSender<RequestId>,
    mine: &mut HashSet<RequestId>,
) {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let _ = out.send(error_frame(
                &ApiError::new("bad_json", format!("not valid JSON: {e}")),
                None,
                None,
            ));
            return;
        }
    };
    let kind = v.get("type").and_then(|t| t.as_str()).map(String::from);
    match kind.as_deref() {
        Some("ping") => {
            let _ = out.send(json!({"type": "pong"}));
        }
        Some("models") => {
            let _ = out.send(
                json!({"type": "models", "models": models_value(state).await,
                                     "default_model": state.asks.config.default_model}),
            );
        }
        Some("cancel") => {
            let Some(id) = v.get("request_id").and_then(|r| r.as_str()) else {
                let _ = out.send(error_frame(
                    &ApiError::new("missing_field", "cancel needs `request_id`"),
                    None,
                    None,
                ));
                return;
            };
            let id = RequestId::new(id);
            if !mine.contains(&id) {
                let _ = out.send(error_frame(
                    &ApiError::new(
                        "unknown_request",
                        format!("no ask {id} in flight on this connection"),
                    ),
                    None,
                    Some(id.as_str()),
                ));
                return;
            }
            if let Err(e) = state.asks.cancel(&id).await {
                let _ = out.send(error_frame(&e.into(), None, Some(id.as_str())));
            }
        }
        Some("ask") => {
            let (mut req, client_id) = match parse_ask(v) {
                Ok(x) => x,
                Err((e, cid)) => {
                    let _ = out.send(error_frame(&e, cid.as_deref(), None));
                    return;
                }
            };
            if mine.len() >= MAX_IN_FLIGHT_PER_SOCKET {
                let _ = out.send(error_frame(
                    &ApiError::new(
                        "too_many_requests",
                        format!("at most {MAX_IN_FLIGHT_PER_SOCKET} asks in flight per connection"),
                    ),
                    client_id.as_deref(),
                    None,
                ));
                return;
            }
            // The key decides who asks and how urgently; a frame may only lower its priority.
            req.user = caller.user.to_string();
            req.priority = Some(caller.tier.cap(req.priority.take()));
            let input = match state.asks.validate(req) {
                Ok(i) => i,
                Err(e) => {
                    let _ = out.send(error_frame(&e.into(), client_id.as_deref(), None));
                    return;
                }
            };
            let permit = match state.auth.admit(caller) {
                Ok(p) => p,
                Err(e) => {
                    let _ = out.send(error_frame(&e, client_id.as_deref(), None));
                    return;
                }
            };
            let id = input.request_id.clone();
            let origin = input.origin.clone();
            // Follow before starting, so no chunk can come before the subscription.
            state.asks.follow(&id, live_tx.clone());
            let _ = out.send(json!({"type": "accepted", "request_id": id, "workflow_id": id,
                                     "workflow_url": state.asks.workflow_url(&id), "client_id": client_id}));
            let _ = out.send(live_frame(&id, LiveEvent::Status(LiveStage::Planning)));
            if let Err(e) = state.asks.start(input).await {
                state.asks.unfollow(&id);
                let _ = out.send(json!({"type": "failed", "request_id": id,
                                         "error": {"code": e.code(), "message": e.to_string()}}));
                return;
            }
            mine.insert(id.clone());
            let (asks, out, ended) = (state.asks.clone(), out.clone(), ended_tx.clone());
            let accepted_at = std::time::Instant::now();
            state.tasks.spawn(async move {
                let _permit = permit;
                let end = asks.wait(&id).await;
                let elapsed_ms = accepted_at.elapsed().as_millis() as u64;
                // The Broadcaster answers after forwarding every chunk published before: the
                // end frame cannot overtake them.
                let shown = mesh::shown(&origin, &id).await;
                asks.unfollow(&id);
                let _ = out.send(end_frame(&id, end, shown, elapsed_ms));
                let _ = ended.send(id);
            });
        }
        Some(other) => {
            let _ = out.send(error_frame(
                &ApiError::new(
                    "unknown_type",
                    format!("unknown message type `{other}`; expected ask, cancel, models or ping"),
                ),
                v.get("client_id").and_then(|c| c.as_str()),
                None,
            ));
        }
        None => {
            let _ = out.send(error_frame(
                &ApiError::new("missing_field", "a message needs a string `type`"),
                None,
                None,
            ));
        }
    }
}
