//! The REST workflow API (docs/rest.md): start an ask, see where it stands, fetch its result,
//! cancel it, list a user's history. Asks are AskWorkflows; their status comes from Temporal
//! (describe, the `stage` query, visibility), so it answers the same on every node.

use super::AppState;
use super::error::ApiError;
use super::follow;
use crate::asks::records::{self as ask_records, AskStatus};
use crate::asks::{AskEnd, AskFields, AskRequest};
use crate::protocol::RequestId;
use crate::users::Caller;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use temporalio_client::WorkflowExecutionStatus;

/// Longest a result request may wait for the ask to end.
const MAX_WAIT_SECS: u64 = 60;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/asks", get(history).post(create))
        .route("/api/asks/{id}", get(status).delete(cancel))
        .route("/api/asks/{id}/result", get(result))
}

pub(super) fn to_ask(body: &Bytes) -> Result<AskRequest, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new("bad_json", format!("not valid JSON: {e}")))?;
    let fields: AskFields =
        serde_json::from_value(v).map_err(|e| ApiError::new("invalid_params", e.to_string()))?;
    Ok(fields.into_request()?)
}

fn links(id: &RequestId) -> Value {
    json!({"self": format!("/api/asks/{id}"), "result": format!("/api/asks/{id}/result")})
}

async fn create(
    State(s): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ask = to_ask(&body)?;
    let started = follow::start_detached(&s, &caller, ask, "rest").await?;
    let id = started.id;
    let body = json!({"id": id, "workflow_id": id, "status": "running", "model": started.model,
                      "user": caller.user, "workflow_url": s.asks.workflow_url(&id),
                      "links": links(&id)});
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/asks/{id}"))],
        Json(body),
    )
        .into_response())
}

pub(super) async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<AskStatus>, ApiError> {
    let id = RequestId::new(id);
    let d = ask_records::describe_owned(&s.asks, &id, caller.user.as_str()).await?;
    Ok(Json(ask_records::status(&s.asks, &id, &d).await))
}

#[derive(Debug, Deserialize)]
pub(super) struct ResultQuery {
    /// Seconds to wait for a running ask to end (0: answer at once).
    #[serde(default)]
    pub(super) wait: u64,
}

fn end_body(id: &RequestId, end: AskEnd) -> Value {
    match end {
        AskEnd::Done(o) => json!({
            "id": id, "status": "completed", "text": o.text, "model": o.model, "node": o.node,
            "finish_reason": o.finish_reason, "attempts": o.attempts,
            "usage": {"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens,
                      "total_tokens": o.prompt_tokens + o.completion_tokens},
            "timings": {"first_token_ms": o.first_token_ms, "total_ms": o.total_ms},
        }),
        AskEnd::Failed { code, message } => json!({
            "id": id, "status": "failed", "error": {"code": code, "message": message},
        }),
        AskEnd::Cancelled => json!({"id": id, "status": "cancelled"}),
    }
}

pub(super) async fn result(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Result<Response, ApiError> {
    let id = RequestId::new(id);
    let d = ask_records::describe_owned(&s.asks, &id, caller.user.as_str()).await?;
    if d.status() == WorkflowExecutionStatus::Running {
        let wait = Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
        match tokio::time::timeout(wait, s.asks.outcome(&id)).await {
            Ok(end) => return Ok(Json(end_body(&id, end)).into_response()),
            Err(_) => {
                let st = ask_records::status(&s.asks, &id, &d).await;
                return Ok((StatusCode::ACCEPTED, Json(st)).into_response());
            }
        }
    }
    Ok(Json(end_body(&id, s.asks.outcome(&id).await)).into_response())
}

pub(super) async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = RequestId::new(id);
    let d = ask_records::describe_owned(&s.asks, &id, caller.user.as_str()).await?;
    let status = d.status();
    if status != WorkflowExecutionStatus::Running {
        return Err(ApiError::new(
            "already_finished",
            format!(
                "ask {id} already ended ({})",
                ask_records::status_name(status)
            ),
        ));
    }
    s.asks.cancel(&id).await?;
    tracing::info!(request.id = %id, workflow.id = %id, user = %caller.user, "ask cancelled over rest");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "status": "cancelling", "links": links(&id)})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    user: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = q.user.unwrap_or_else(|| caller.user.to_string());
    if user != caller.user.as_str() {
        return Err(ApiError::new(
            "forbidden",
            "a user sees only their own asks",
        ));
    }
    let limit = q.limit.unwrap_or(20);
    let asks = ask_records::history(&s.asks, &user, limit).await?;
    Ok(Json(json!({"user": user, "asks": asks})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_asks_or_say_what_is_wrong() {
        // (body, wanted error code or None)
        let table: &[(&str, Option<&str>)] = &[
            (r#"{"prompt": "hi"}"#, None),
            (
                r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}"#,
                None,
            ),
            (r#"{"prompt": "hi", "priority": "low"}"#, None),
            ("{nope", Some("bad_json")),
            (r#"{}"#, Some("missing_field")),
            (r#"{"prompt": "a", "messages": []}"#, Some("invalid_params")),
            (
                r#"{"prompt": "a", "colour": "red"}"#,
                Some("invalid_params"),
            ),
            (
                r#"{"prompt": "a", "max_tokens": "lots"}"#,
                Some("invalid_params"),
            ),
        ];
        for (body, want) in table {
            let got = to_ask(&Bytes::from(body.to_string()));
            assert_eq!(got.err().map(|e| e.code), want.map(String::from), "{body}");
        }
    }
}
