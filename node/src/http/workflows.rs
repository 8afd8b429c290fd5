//! `/api/workflows`: start a workflow of any kind (`ask`, `report`, `multi-agent`, `codegen`;
//! `generate-report` is the seed's name for `report`), see where it stands, fetch its result (a
//! report's is its PDF), cancel it, list a user's. Same keys, tiers and limits as asks
//! (docs/workflows.md).

use super::AppState;
use super::error::ApiError;
use super::{follow, rest};
use crate::flows::request::{CodeGenFields, MultiAgentFields, ReportFields};
use crate::flows::{FlowEnd, FlowError, FlowRequest};
use crate::protocol::FlowKind;
use crate::users::Caller;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use tracing::Instrument;

/// Longest a result request may wait for the workflow to end.
const MAX_WAIT_SECS: u64 = 120;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/workflows", get(list))
        .route("/api/workflows/{name}", post(start).delete(cancel))
        .route("/api/workflows/{name}/status", get(status))
        .route("/api/workflows/{name}/result", get(result))
}

impl From<FlowError> for ApiError {
    fn from(e: FlowError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

/// A start body of `kind` (not `ask`), or what is wrong with it.
pub fn parse_request(kind: FlowKind, body: &Value) -> Result<FlowRequest, ApiError> {
    let bad = |e: serde_json::Error| ApiError::new("invalid_params", e.to_string());
    let v = body.clone();
    Ok(match kind {
        FlowKind::Report => {
            FlowRequest::Report(serde_json::from_value::<ReportFields>(v).map_err(bad)?)
        }
        FlowKind::MultiAgent => {
            FlowRequest::MultiAgent(serde_json::from_value::<MultiAgentFields>(v).map_err(bad)?)
        }
        FlowKind::Codegen => {
            FlowRequest::CodeGen(serde_json::from_value::<CodeGenFields>(v).map_err(bad)?)
        }
        FlowKind::Ask => return Err(ApiError::new("invalid_params", "asks take ask fields")),
    })
}

fn links(id: &str) -> Value {
    json!({"status": format!("/api/workflows/{id}/status"),
           "result": format!("/api/workflows/{id}/result"),
           "cancel": format!("/api/workflows/{id}")})
}

/// Validates, admits (the caller's limits) and starts a workflow; a tracked task holds the
/// caller's permit until it ends. The workflow's id.
pub async fn admit_and_start(
    s: &AppState,
    caller: &Caller,
    req: FlowRequest,
) -> Result<crate::flows::Started, ApiError> {
    let input = s.flows.validate(caller, req)?;
    let permit = s
        .auth
        .admit(&s.node, &s.asks.config.node_id, caller)
        .await?;
    let started = s.flows.start(input).await?;
    let (flows, id, kind) = (s.flows.clone(), started.workflow_id.clone(), started.kind);
    let tasks = s.tasks.clone();
    let span = tracing::info_span!("workflow", workflow.id = %id, user = %caller.user);
    s.tasks.spawn(
        async move {
            let _permit = permit;
            // The permit is held for as long as Temporal says the workflow runs, or until this
            // node starts shutting down: the workflow is durable and goes on without us, so it
            // must not hold up the drain.
            let end = flows.end(&id, kind, Duration::from_secs(24 * 3600));
            tokio::pin!(end);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let outcome = loop {
                tokio::select! {
                    end = &mut end => break match end {
                        FlowEnd::Completed(_) => "completed",
                        FlowEnd::Failed { .. } => "failed",
                        FlowEnd::Cancelled => "cancelled",
                        FlowEnd::Running => "still running",
                    },
                    _ = tick.tick() => if tasks.is_closed() {
                        break "still running (this node is shutting down)";
                    },
                }
            };
            tracing::info!(outcome, "workflow followed to its end");
        }
        .instrument(span),
    );
    Ok(started)
}

async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = FlowKind::parse(&name).ok_or_else(|| {
        ApiError::new(
            "unknown_kind",
            format!("no workflow kind `{name}`; use ask, report, multi-agent or codegen"),
        )
    })?;
    if kind == FlowKind::Ask {
        let ask = rest::to_ask(&body)?;
        let started = follow::start_detached(&s, &caller, ask, "workflows").await?;
        let id = started.id;
        let body = json!({"workflow_id": id, "kind": "ask", "status": "running",
                          "model": started.model, "workflow_url": s.asks.workflow_url(&id),
                          "links": links(id.as_str())});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new("bad_json", format!("not valid JSON: {e}")))?;
    let req = parse_request(kind, &v)?;
    let started = admit_and_start(&s, &caller, req).await?;
    let id = started.workflow_id;
    let body = json!({"workflow_id": id, "kind": kind, "status": "running",
                      "user": caller.user, "workflow_url": s.flows.workflow_url(&id),
                      "links": links(&id)});
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/api/workflows/{id}/status"))],
        Json(body),
    )
        .into_response())
}

fn is_ask(id: &str) -> bool {
    FlowKind::of_id(id) == Some(FlowKind::Ask)
}

async fn status(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if is_ask(&id) {
        return Ok(rest::status(State(s), caller, Path(id))
            .await?
            .into_response());
    }
    let d = s.flows.describe_owned(&id, caller.user.as_str()).await?;
    Ok(Json(s.flows.status(&d).await).into_response())
}

#[derive(Debug, Deserialize)]
struct ResultQuery {
    /// Seconds to wait for a running workflow to end (0: answer at once).
    #[serde(default)]
    wait: u64,
    /// `json` for a report's result as JSON instead of its PDF.
    format: Option<String>,
}

/// A report's PDF, read from the path its result names.
async fn pdf(id: &str, result: &Value) -> Result<Response, ApiError> {
    let path = result["file"]["path"].as_str().unwrap_or_default();
    let bytes = tokio::fs::read(path).await.map_err(|e| {
        let node = result["file"]["node"].as_str().unwrap_or("?");
        ApiError::new(
            "not_found",
            format!("report {id}'s file is not readable here ({e}); it was written on {node}"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.pdf\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn result(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<ResultQuery>,
) -> Result<Response, ApiError> {
    if is_ask(&id) {
        let rq = rest::ResultQuery { wait: q.wait };
        return rest::result(State(s), caller, Path(id), Query(rq)).await;
    }
    let d = s.flows.describe_owned(&id, caller.user.as_str()).await?;
    let wait = Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
    let end = if d.status() == temporalio_client::WorkflowExecutionStatus::Running {
        s.flows.end(&id, d.kind, wait).await
    } else {
        s.flows.end(&id, d.kind, Duration::from_secs(30)).await
    };
    Ok(match end {
        FlowEnd::Running => (StatusCode::ACCEPTED, Json(s.flows.status(&d).await)).into_response(),
        FlowEnd::Completed(v)
            if d.kind == FlowKind::Report && q.format.as_deref() != Some("json") =>
        {
            pdf(&id, &v).await?
        }
        FlowEnd::Completed(v) => Json(json!({"workflow_id": id, "kind": d.kind,
                                             "status": "completed", "result": v}))
        .into_response(),
        FlowEnd::Failed { code, message } => Json(json!({"workflow_id": id, "kind": d.kind,
            "status": "failed", "error": {"code": code, "message": message}}))
        .into_response(),
        FlowEnd::Cancelled => {
            Json(json!({"workflow_id": id, "kind": d.kind, "status": "cancelled"})).into_response()
        }
    })
}

async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if is_ask(&id) {
        return rest::cancel(State(s), caller, Path(id)).await;
    }
    let d = s.flows.describe_owned(&id, caller.user.as_str()).await?;
    s.flows.cancel(&d).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"workflow_id": id, "status": "cancelling", "links": links(&id)})),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let user = caller.user.to_string();
    let workflows = s.flows.list(&user, q.limit.unwrap_or(20)).await?;
    Ok(Json(json!({"user": user, "workflows": workflows})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_become_requests_or_say_what_is_wrong() {
        // (kind, body, ok)
        let table: &[(FlowKind, &str, bool)] = &[
            (FlowKind::Report, r#"{"prompt": "tides"}"#, true),
            (
                FlowKind::Report,
                r#"{"prompt": "tides", "max_tokens": 9, "model": "m"}"#,
                true,
            ),
            (FlowKind::Report, r#"{"promt": "typo"}"#, false),
            (FlowKind::MultiAgent, r#"{"task": "a todo app"}"#, true),
            (
                FlowKind::MultiAgent,
                r#"{"task": "t", "roles": ["architect", {"role": "qa", "prompt": "test it"}]}"#,
                true,
            ),
            (
                FlowKind::MultiAgent,
                r#"{"task": "t", "on_agent_failure": "maybe"}"#,
                false,
            ),
            (
                FlowKind::Codegen,
                r#"{"requirements": "fizzbuzz", "language": "rust"}"#,
                true,
            ),
            (FlowKind::Codegen, r#"{"requirements": "fizzbuzz"}"#, false),
        ];
        for (kind, body, ok) in table {
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(parse_request(*kind, &v).is_ok(), *ok, "{kind} {body}");
        }
    }
}
