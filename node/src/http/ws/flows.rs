//! Workflows on the socket: `run_workflow` starts one of any kind (an `ask` goes the ask's way,
//! with its own frames), then `workflow_progress` frames follow it (polled from Temporal every
//! second, sent when they change) until its `workflow_done`; `cancel_workflow` cancels it.

use super::{ServerFrame, Socket};
use crate::asks::AskFields;
use crate::flows::FlowEnd;
use crate::http::error::ApiError;
use crate::http::workflows::{admit_and_start, parse_request};
use crate::protocol::FlowKind;
use serde_json::Value;
use std::time::Duration;

/// How often a followed workflow's progress is read.
const POLL: Duration = Duration::from_secs(1);

impl Socket<'_> {
    pub(super) async fn run_workflow(&mut self, mut fields: serde_json::Map<String, Value>) {
        fields.remove("type");
        let client_id = fields
            .get("client_id")
            .and_then(Value::as_str)
            .map(String::from);
        let cid = client_id.as_deref();
        let kind = fields.remove("kind");
        let Some(kind) = kind
            .as_ref()
            .and_then(Value::as_str)
            .and_then(FlowKind::parse)
        else {
            let e = ApiError::new(
                "unknown_kind",
                "run_workflow needs `kind`: ask, report, multi-agent or codegen",
            );
            return self.send(ServerFrame::error(&e, cid, None));
        };
        if kind == FlowKind::Ask {
            return match serde_json::from_value::<AskFields>(Value::Object(fields)) {
                Ok(f) => self.ask(f).await,
                Err(e) => {
                    let e = ApiError::new("invalid_params", e.to_string());
                    self.send(ServerFrame::error(&e, cid, None))
                }
            };
        }
        let started = match parse_request(kind, &Value::Object(fields)) {
            Ok(req) => admit_and_start(self.state, self.caller, req).await,
            Err(e) => Err(e),
        };
        let started = match started {
            Ok(s) => s,
            Err(e) => return self.send(ServerFrame::error(&e, cid, None)),
        };
        let id = started.workflow_id;
        self.send(ServerFrame::WorkflowAccepted {
            workflow_id: id.clone(),
            kind,
            workflow_url: self.state.flows.workflow_url(&id),
            client_id,
        });
        let (flows, out, user) = (
            self.state.flows.clone(),
            self.out.clone(),
            self.caller.user.to_string(),
        );
        let (shutdown, tasks) = (self.state.shutdown.clone(), self.state.tasks.clone());
        self.state.tasks.spawn(async move {
            let mut last = None;
            loop {
                // A draining node stops following (the workflow goes on in Temporal).
                if tasks.is_closed() {
                    return;
                }
                let d = match flows.describe_owned(&id, &user).await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::debug!(workflow.id = %id, error = %e, "progress not readable");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(POLL) => continue,
                        }
                    }
                };
                let running = d.status() == temporalio_client::WorkflowExecutionStatus::Running;
                let status = flows.status(&d).await;
                let frame = ServerFrame::progress(status);
                let text = serde_json::to_string(&frame).ok();
                if text != last {
                    last = text;
                    if out.send(frame).is_err() {
                        return; // the socket closed: the workflow goes on without it
                    }
                }
                if !running {
                    let end = flows.end(&id, kind, Duration::from_secs(30)).await;
                    let end = match end {
                        FlowEnd::Running => continue,
                        end => end,
                    };
                    let _ = out.send(ServerFrame::workflow_end(id, kind, end));
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        });
    }

    pub(super) async fn cancel_workflow(&mut self, id: Option<String>) {
        let Some(id) = id else {
            let e = ApiError::new("missing_field", "cancel_workflow needs `workflow_id`");
            return self.send(ServerFrame::error(&e, None, None));
        };
        let flows = &self.state.flows;
        let done = match flows.describe_owned(&id, self.caller.user.as_str()).await {
            Ok(d) => flows.cancel(&d).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            self.send(ServerFrame::error(&e.into(), None, None));
        }
    }
}
