//! Workflows as Temporal records them: who owns one (its memo), where it stands (describe and its
//! `progress` query), how it ended (its result), and a user's list (visibility).

use super::{FlowError, FlowService, MEMO_KIND};
use crate::asks::records::{
    MEMO_MODEL, MEMO_USER, describe_execution, list_owned, rfc3339, status_name,
};
use crate::protocol::{FlowKind, FlowProgress, StepState, StepStatus};
use crate::workflows::ask::{AskStage, AskWorkflow};
use crate::workflows::codegen::CodeGenWorkflow;
use crate::workflows::multi_agent::MultiAgentWorkflow;
use crate::workflows::report::ReportWorkflow;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    WorkflowCancelOptions, WorkflowExecutionDescription, WorkflowExecutionStatus,
    WorkflowGetResultOptions, WorkflowQueryOptions,
};

/// A workflow as described, with its owner and kind.
pub struct Described {
    pub id: String,
    pub kind: FlowKind,
    pub user: String,
    pub model: Option<String>,
    pub desc: WorkflowExecutionDescription,
}

impl Described {
    pub fn status(&self) -> WorkflowExecutionStatus {
        self.desc.status()
    }
}

/// A child workflow of a step.
#[derive(Clone, Debug, Serialize)]
pub struct ChildRef {
    pub step: String,
    pub workflow_id: String,
    pub status: String,
    /// The model it asked (then the one that answered) and the node generating or that answered.
    pub model: Option<String>,
    pub node: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_url: Option<String>,
}

/// Where a workflow stands, as `GET /api/workflows/{id}/status` and the `workflow_progress`
/// frame show it.
#[derive(Clone, Debug, Serialize)]
pub struct FlowStatus {
    pub workflow_id: String,
    pub kind: FlowKind,
    pub user: String,
    pub model: Option<String>,
    /// running | completed | failed | cancelled | terminated | timed_out
    pub status: &'static str,
    pub current_step: Option<String>,
    pub percent: u32,
    /// Estimated time left, from the finished steps' mean duration.
    pub eta_ms: Option<u64>,
    pub steps: Vec<StepState>,
    pub children: Vec<ChildRef>,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
    pub workflow_url: Option<String>,
}

/// How a workflow ended, or that it has not.
#[derive(Clone, Debug)]
pub enum FlowEnd {
    Running,
    /// Its result, as JSON naming each part.
    Completed(Value),
    Failed {
        code: String,
        message: String,
    },
    Cancelled,
}

/// One line of a user's list.
#[derive(Clone, Debug, Serialize)]
pub struct FlowSummary {
    pub workflow_id: String,
    pub kind: Option<String>,
    pub model: Option<String>,
    pub status: &'static str,
    pub created_at: Option<String>,
    pub closed_at: Option<String>,
}

fn type_name(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::Ask => crate::workflows::AskWorkflow::name(),
        FlowKind::Report => ReportWorkflow::name(),
        FlowKind::MultiAgent => MultiAgentWorkflow::name(),
        FlowKind::Codegen => CodeGenWorkflow::name(),
    }
}

impl FlowService {
    /// Describes the workflow `id` (of any kind but ask) and checks that `user` owns it.
    pub async fn describe_owned(&self, id: &str, user: &str) -> Result<Described, FlowError> {
        let not_found = || FlowError::NotFound(id.to_string());
        let kind = FlowKind::of_id(id)
            .filter(|k| *k != FlowKind::Ask)
            .ok_or_else(not_found)?;
        let desc = describe_execution(&self.asks.client, id)
            .await
            .map_err(FlowError::Unavailable)?
            .ok_or_else(not_found)?;
        if desc.workflow_type() != type_name(kind) {
            return Err(not_found());
        }
        let memo = desc.memo();
        let owner = memo
            .get::<String>(MEMO_USER)
            .ok()
            .flatten()
            .unwrap_or_default();
        if owner != user {
            return Err(FlowError::Forbidden(id.to_string()));
        }
        Ok(Described {
            id: id.to_string(),
            kind,
            user: owner,
            model: memo.get::<String>(MEMO_MODEL).ok().flatten(),
            desc,
        })
    }

    /// The workflow's steps, from its `progress` query (None when no worker answers in time).
    async fn progress(&self, d: &Described) -> Option<FlowProgress> {
        let client = &self.asks.client;
        let id = d.id.clone();
        let opts = WorkflowQueryOptions::default;
        let query = async {
            match d.kind {
                FlowKind::Report => client
                    .get_workflow_handle::<ReportWorkflow>(id)
                    .query(ReportWorkflow::progress, (), opts())
                    .await
                    .ok(),
                FlowKind::MultiAgent => client
                    .get_workflow_handle::<MultiAgentWorkflow>(id)
                    .query(MultiAgentWorkflow::progress, (), opts())
                    .await
                    .ok(),
                FlowKind::Codegen => client
                    .get_workflow_handle::<CodeGenWorkflow>(id)
                    .query(CodeGenWorkflow::progress, (), opts())
                    .await
                    .ok(),
                FlowKind::Ask => None,
            }
        };
        tokio::time::timeout(Duration::from_secs(5), query)
            .await
            .ok()
            .flatten()
    }

    /// The node generating a running child ask's answer, from its `stage` query (None while it
    /// plans or queues, or when no worker answers in time).
    async fn generating_on(&self, child: &str) -> Option<String> {
        let handle = self
            .asks
            .client
            .get_workflow_handle::<AskWorkflow>(child.to_string());
        let query = handle.query(AskWorkflow::stage, (), WorkflowQueryOptions::default());
        match tokio::time::timeout(Duration::from_secs(5), query).await {
            Ok(Ok(AskStage::Generating { node, .. })) => Some(node.to_string()),
            _ => None,
        }
    }

    /// The live picture of a described workflow.
    pub async fn status(&self, d: &Described) -> FlowStatus {
        let mut progress = self.progress(d).await.unwrap_or_default();
        let status = status_name(d.status());
        let running = d.status() == WorkflowExecutionStatus::Running;
        // A running LLM step learns its node from its child ask (the parent records it once the
        // answer is in).
        for step in progress.steps.iter_mut() {
            if step.status == StepStatus::Running
                && step.node.is_none()
                && let Some(child) = &step.child
            {
                step.node = self.generating_on(child).await;
            }
        }
        let children = progress
            .steps
            .iter()
            .filter_map(|s| {
                Some(ChildRef {
                    step: s.name.clone(),
                    workflow_id: s.child.clone()?,
                    status: serde_json::to_value(s.status)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    model: s.model.clone(),
                    node: s.node.clone(),
                    workflow_url: self.workflow_url(s.child.as_deref()?),
                })
            })
            .collect();
        FlowStatus {
            workflow_id: d.id.clone(),
            kind: d.kind,
            user: d.user.clone(),
            model: d.model.clone(),
            status,
            current_step: running
                .then(|| progress.current().map(|s| s.name.clone()))
                .flatten(),
            percent: if d.status() == WorkflowExecutionStatus::Completed {
                100
            } else {
                progress.percent()
            },
            eta_ms: if running { progress.eta_ms() } else { None },
            children,
            steps: progress.steps,
            created_at: d.desc.start_time().map(rfc3339),
            closed_at: d.desc.close_time().map(rfc3339),
            workflow_url: self.workflow_url(&d.id),
        }
    }

    /// How the workflow ended; waits up to `wait` for a running one.
    pub async fn end(&self, id: &str, kind: FlowKind, wait: Duration) -> FlowEnd {
        let get = self.result_json(id, kind);
        match tokio::time::timeout(wait, get).await {
            Err(_) => FlowEnd::Running,
            Ok(end) => end,
        }
    }

    async fn result_json(&self, id: &str, kind: FlowKind) -> FlowEnd {
        let client = &self.asks.client;
        let id = id.to_string();
        let opts = WorkflowGetResultOptions::default;
        let to_json = |v: Result<Value, WorkflowGetResultError>| match v {
            Ok(v) => FlowEnd::Completed(v),
            Err(WorkflowGetResultError::Cancelled { .. }) => FlowEnd::Cancelled,
            Err(WorkflowGetResultError::Failed(e)) => {
                let code = match e.as_ref() {
                    temporalio_common::error::IncomingError::Application(a)
                        if a.type_name() == Some(crate::protocol::INVALID_REQUEST) =>
                    {
                        "invalid_params"
                    }
                    _ => "workflow_failed",
                };
                FlowEnd::Failed {
                    code: code.into(),
                    message: deepest(&e),
                }
            }
            Err(e) => FlowEnd::Failed {
                code: "unavailable".into(),
                message: e.to_string(),
            },
        };
        match kind {
            FlowKind::Report => to_json(
                client
                    .get_workflow_handle::<ReportWorkflow>(id)
                    .get_result(opts())
                    .await
                    .map(json),
            ),
            FlowKind::MultiAgent => to_json(
                client
                    .get_workflow_handle::<MultiAgentWorkflow>(id)
                    .get_result(opts())
                    .await
                    .map(json),
            ),
            FlowKind::Codegen => to_json(
                client
                    .get_workflow_handle::<CodeGenWorkflow>(id)
                    .get_result(opts())
                    .await
                    .map(json),
            ),
            FlowKind::Ask => FlowEnd::Failed {
                code: "internal".into(),
                message: "asks have their own results".into(),
            },
        }
    }

    /// Cancels a running workflow (its children with it).
    pub async fn cancel(&self, d: &Described) -> Result<(), FlowError> {
        if d.status() != WorkflowExecutionStatus::Running {
            return Err(FlowError::AlreadyFinished(
                d.id.clone(),
                status_name(d.status()),
            ));
        }
        self.asks
            .client
            .get_workflow_handle::<ReportWorkflow>(d.id.clone())
            .cancel(WorkflowCancelOptions::default())
            .await
            .map_err(|e| FlowError::Unavailable(format!("Temporal did not cancel: {e}")))?;
        tracing::info!(workflow.id = %d.id, user = %d.user, "workflow cancelled");
        Ok(())
    }

    /// The newest workflows of `user` (reports, multi-agent, codegen), newest first.
    pub async fn list(&self, user: &str, limit: usize) -> Result<Vec<FlowSummary>, FlowError> {
        let types = [FlowKind::Report, FlowKind::MultiAgent, FlowKind::Codegen].map(type_name);
        let listed = list_owned(&self.asks, &types, user, limit, Some(MEMO_KIND))
            .await
            .map_err(FlowError::Unavailable)?;
        Ok(listed
            .into_iter()
            .map(|(s, kind)| FlowSummary {
                workflow_id: s.id,
                kind,
                model: s.model,
                status: s.status,
                created_at: s.created_at,
                closed_at: s.closed_at,
            })
            .collect())
    }
}

fn json<T: Serialize>(v: T) -> Value {
    // Results are plain data (strings, numbers, maps with string keys): this cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The innermost message of a failure chain (the reason, not its wrappers).
fn deepest(e: &temporalio_common::error::IncomingError) -> String {
    use temporalio_common::error::IncomingError;
    match e {
        IncomingError::Application(a) => a.source_error().to_string(),
        IncomingError::Activity(a) => a.cause().map_or_else(|| e.to_string(), deepest),
        other => other.to_string(),
    }
}
