//! AskWorkflow: one user request, from plan to answer. Its id is the request id; its result is
//! the durable record of the answer; its `stage` query is the live stage at any time.
//!
//! Plan picks a node (activity on the cluster queue); generate runs on that node's own queue and
//! heartbeats the answer so far. If the node goes silent (heartbeat or schedule-to-start timeout),
//! the workflow plans again without it and resumes from the last heartbeated text.

use crate::activities::{ClusterActivities, GenerateInput, NodeActivities, PlanInput, Progress};
use crate::protocol::{
    AskOutcome, ChatMessage, INVALID_REQUEST, NO_CAPACITY, Priority, SamplingParams, UNKNOWN_MODEL,
};
use crate::protocol::{ModelId, NodeId, RequestId, node_task_queue};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_common::error::IncomingError;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityExecutionError, ActivityOptions, LocalActivityOptions, WorkflowContext,
    WorkflowContextView, WorkflowResult, WorkflowTermination,
};

/// How many placements one ask may try before it fails.
const MAX_PLACEMENTS: u32 = 4;

/// Patch marker: this history runs plan as a local activity.
const PLAN_LOCALLY: &str = "plan-local-activity";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AskInput {
    pub request_id: RequestId,
    pub user: String,
    pub model: ModelId,
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    pub priority: Priority,
    /// The node the user is connected to: live chunks go to its Broadcaster.
    pub origin: NodeId,
    /// Seconds a silent generating node is given before the work moves.
    pub heartbeat_timeout_secs: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum AskStage {
    #[default]
    Planning,
    Generating {
        node: NodeId,
        attempt: u32,
    },
    Done,
    Failed {
        reason: String,
    },
    Cancelled,
}

#[workflow]
#[derive(Default)]
pub struct AskWorkflow {
    stage: AskStage,
}

enum Next {
    Replan { resume: String, why: String },
    Fail(WorkflowTermination),
}

/// Sorts an activity failure into "try another node" or "the ask fails".
fn classify(err: ActivityExecutionError, resume: &str, node: &NodeId) -> Next {
    match err {
        ActivityExecutionError::Cancelled(_) => Next::Fail(WorkflowTermination::cancelled()),
        ActivityExecutionError::Failed(f) => {
            let message = f.failure().message.clone();
            match f.cause() {
                Some(IncomingError::Timeout(t)) => {
                    let resume = t
                        .last_heartbeat_details::<Progress>()
                        .ok()
                        .flatten()
                        .map(|p| p.text)
                        .filter(|t| t.len() >= resume.len())
                        .unwrap_or_else(|| resume.to_string());
                    Next::Replan {
                        resume,
                        why: format!("node {node} timed out: {message}"),
                    }
                }
                Some(IncomingError::Application(a))
                    if matches!(a.type_name(), Some(INVALID_REQUEST) | Some(UNKNOWN_MODEL)) =>
                {
                    Next::Fail(
                        temporalio_common::error::ApplicationFailure::builder(
                            a.source_error().to_string(),
                        )
                        .type_name(a.type_name().unwrap_or(INVALID_REQUEST).to_string())
                        .non_retryable(true)
                        .build()
                        .into(),
                    )
                }
                _ => Next::Replan {
                    resume: resume.to_string(),
                    why: format!("node {node} failed: {message}"),
                },
            }
        }
        other => Next::Fail(other.into()),
    }
}

/// Where the ask runs next, and with which model (the fallback, while the loop routes there).
async fn plan(
    ctx: &mut WorkflowContext<AskWorkflow>,
    input: &AskInput,
    excluded: &[NodeId],
    resume: &str,
) -> Result<(NodeId, ModelId), WorkflowTermination> {
    let plan_input = PlanInput {
        request_id: input.request_id.clone(),
        model: input.model.clone(),
        origin: input.origin.clone(),
        excluded: excluded.to_vec(),
        marks: crate::protocol::conversation_marks(&input.messages, &input.params),
    };
    let plan_retry = RetryPolicy::builder()
        .maximum_attempts(20)
        .maximum_interval(Duration::from_secs(2))
        .build();
    // Plan is short and its answer is recorded as a marker: as a local activity it runs inside
    // the workflow task, on the worker that holds the workflow, and saves the trips through the
    // server that an activity costs (schedule, dispatch, completion, a new workflow task) on
    // every ask's way to its first token. Histories started before this change replay the
    // activity they recorded.
    let plan = if ctx.patched(PLAN_LOCALLY) {
        ctx.execute_local_activity(
            ClusterActivities::plan,
            plan_input,
            LocalActivityOptions::builder()
                .start_to_close_timeout(Duration::from_secs(30))
                .retry_policy(plan_retry)
                .build(),
        )
        .await
    } else {
        ctx.execute_activity(
            ClusterActivities::plan,
            plan_input,
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                .retry_policy(plan_retry)
                .build(),
        )
        .await
    };
    match plan {
        Ok(p) => Ok((p.node, p.model)),
        Err(e) => {
            let why = e.to_string();
            Err(match classify(e, resume, &input.origin) {
                Next::Fail(t) => t,
                Next::Replan { .. } => {
                    temporalio_common::error::ApplicationFailure::non_retryable(why).into()
                }
            })
        }
    }
}

/// One placement's try at the answer, on `node`'s own queue, resuming after `resume`.
async fn generate(
    ctx: &mut WorkflowContext<AskWorkflow>,
    input: &AskInput,
    node: &NodeId,
    model: ModelId,
    resume: &str,
    attempt: u32,
) -> Result<AskOutcome, ActivityExecutionError> {
    let hb = Duration::from_secs(input.heartbeat_timeout_secs);
    ctx.execute_activity(
        NodeActivities::generate,
        GenerateInput {
            request_id: input.request_id.clone(),
            model,
            messages: input.messages.clone(),
            params: input.params.clone(),
            origin: input.origin.clone(),
            priority: input.priority.clone(),
            resume_text: resume.to_string(),
            attempt,
        },
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30 * 60))
            .task_queue(node_task_queue(node))
            .schedule_to_start_timeout(hb * 3)
            .heartbeat_timeout(hb)
            // One try per placement: the workflow itself moves failed work elsewhere.
            .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
            .build(),
    )
    .await
}

#[workflow_methods]
impl AskWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AskInput,
    ) -> WorkflowResult<AskOutcome> {
        let mut excluded: Vec<NodeId> = Vec::new();
        let mut resume = String::new();
        let mut last_error = String::new();
        for attempt in 1..=MAX_PLACEMENTS {
            ctx.state_mut(|s| s.stage = AskStage::Planning);
            let (node, model) = plan(ctx, &input, &excluded, &resume).await?;
            ctx.state_mut(|s| {
                s.stage = AskStage::Generating {
                    node: node.clone(),
                    attempt,
                }
            });
            let generated = generate(ctx, &input, &node, model, &resume, attempt).await;
            match generated {
                Ok(mut outcome) => {
                    outcome.attempts = attempt;
                    ctx.state_mut(|s| s.stage = AskStage::Done);
                    return Ok(outcome);
                }
                Err(e) => match classify(e, &resume, &node) {
                    Next::Fail(t) => {
                        ctx.state_mut(|s| {
                            s.stage = match &t {
                                WorkflowTermination::Cancelled { .. } => AskStage::Cancelled,
                                other => AskStage::Failed {
                                    reason: other.to_string(),
                                },
                            }
                        });
                        return Err(t);
                    }
                    Next::Replan { resume: r, why } => {
                        resume = r;
                        last_error = why;
                        excluded.push(node);
                    }
                },
            }
        }
        let reason = format!("gave up after {MAX_PLACEMENTS} placements; last: {last_error}");
        ctx.state_mut(|s| {
            s.stage = AskStage::Failed {
                reason: reason.clone(),
            }
        });
        Err(
            temporalio_common::error::ApplicationFailure::builder(reason)
                .type_name(NO_CAPACITY.to_string())
                .non_retryable(true)
                .build()
                .into(),
        )
    }

    #[query]
    pub fn stage(&self, _ctx: &WorkflowContextView) -> AskStage {
        self.stage.clone()
    }
}
