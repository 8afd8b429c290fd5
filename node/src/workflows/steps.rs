//! What the report, multi-agent and codegen workflows share: their LLM steps as child
//! AskWorkflows (same placement, failover, priorities and durability as asks; a completed child
//! is in the parent's history, so a parent that resumes after a crash never runs it again), and
//! the per-step progress each one shows to its `progress` query.

use super::ask::{AskInput, AskWorkflow};
use crate::protocol::{
    AskOutcome, ChatMessage, FlowProgress, ModelId, NodeId, Priority, RequestId, Role,
    SamplingParams, StepStatus, child_ask_id,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{
    ChildWorkflowExecutionError, ChildWorkflowOptions, ParentClosePolicy,
    WorkflowCancellationToken, WorkflowContext, WorkflowTermination,
};

/// What every LLM step of one workflow shares unless the step says otherwise.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LlmDefaults {
    pub user: String,
    pub model: ModelId,
    pub max_tokens: u32,
    pub priority: Priority,
    /// The node the user is connected to (the child asks' live events go there).
    pub origin: NodeId,
    pub heartbeat_timeout_secs: u64,
}

/// One LLM call: a system prompt (the role) and the user's text.
#[derive(Clone, Debug)]
pub struct LlmCall {
    pub step: String,
    pub system: String,
    pub prompt: String,
    pub model: Option<ModelId>,
    pub max_tokens: Option<u32>,
    pub priority: Option<Priority>,
}

/// Retries and timeout of one LLM step's child workflow.
#[derive(Clone, Copy, Debug)]
pub struct LlmPolicy {
    pub attempts: u32,
    /// Each attempt's limit (the child's run timeout).
    pub timeout: Duration,
}

/// A workflow whose state carries its steps' progress.
pub trait HasProgress {
    fn progress_mut(&mut self) -> &mut FlowProgress;
}

/// Temporal's task priority for an ask (1 is served first; 3 is the server's default).
pub fn temporal_priority(p: &Priority) -> temporalio_common::Priority {
    let key = match p {
        Priority::High => 1,
        Priority::Normal => 3,
        Priority::Low => 5,
    };
    temporalio_common::Priority::builder()
        .priority_key(key)
        .build()
}

/// Workflow time in ms since the epoch (from the history: deterministic on replay).
pub fn now_ms<W>(ctx: &WorkflowContext<W>) -> u64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn step_start<W: HasProgress>(ctx: &WorkflowContext<W>, step: &str, child: Option<String>) {
    let now = now_ms(ctx);
    ctx.state_mut(|s| s.progress_mut().start(step, child, now));
}

/// Records the model and node of `step`, each when known.
pub fn step_place<W: HasProgress>(
    ctx: &WorkflowContext<W>,
    step: &str,
    model: Option<String>,
    node: Option<String>,
) {
    ctx.state_mut(|s| s.progress_mut().place(step, model, node));
}

pub fn step_end<W: HasProgress>(
    ctx: &WorkflowContext<W>,
    step: &str,
    status: StepStatus,
    detail: Option<String>,
) {
    let now = now_ms(ctx);
    ctx.state_mut(|s| s.progress_mut().finish(step, status, detail, now));
}

/// The child ask's input: greedy (reproducible) unless the model's defaults say otherwise.
pub fn ask_input(parent_id: &str, d: &LlmDefaults, call: &LlmCall) -> AskInput {
    let mut messages = Vec::new();
    if !call.system.is_empty() {
        messages.push(ChatMessage::new(Role::System, call.system.clone()));
    }
    messages.push(ChatMessage::new(Role::User, call.prompt.clone()));
    AskInput {
        request_id: RequestId::new(child_ask_id(parent_id, &call.step)),
        user: d.user.clone(),
        model: call.model.clone().unwrap_or_else(|| d.model.clone()),
        messages,
        params: SamplingParams {
            max_tokens: call.max_tokens.unwrap_or(d.max_tokens),
            temperature: 0.0,
            ..SamplingParams::default()
        },
        priority: call.priority.clone().unwrap_or_else(|| d.priority.clone()),
        origin: d.origin.clone(),
        heartbeat_timeout_secs: d.heartbeat_timeout_secs,
    }
}

/// How an LLM step ended, when it did not answer.
#[derive(Debug)]
pub enum StepFailure {
    /// The parent was cancelled (the child with it).
    Cancelled,
    Failed(String),
}

impl StepFailure {
    pub fn message(&self) -> String {
        match self {
            StepFailure::Cancelled => "cancelled".into(),
            StepFailure::Failed(m) => m.clone(),
        }
    }

    pub fn into_termination(self) -> WorkflowTermination {
        match self {
            StepFailure::Cancelled => WorkflowTermination::cancelled(),
            StepFailure::Failed(m) => {
                temporalio_common::error::ApplicationFailure::non_retryable(m).into()
            }
        }
    }
}

/// The innermost message of a child's failure (the ask's own reason, not the wrappers').
fn child_failure_message(e: &ChildWorkflowExecutionError) -> String {
    let mut msg = e.to_string();
    let mut cur = e.cause();
    while let Some(c) = cur {
        msg = c.to_string();
        cur = match c {
            temporalio_common::error::IncomingError::Activity(a) => a.cause(),
            _ => None,
        };
    }
    msg
}

/// Runs one LLM step as the child AskWorkflow `{parent}.{step}` and records its progress.
pub async fn llm_step<W: HasProgress>(
    ctx: &WorkflowContext<W>,
    defaults: &LlmDefaults,
    call: LlmCall,
    policy: LlmPolicy,
) -> Result<AskOutcome, StepFailure> {
    llm_step_cancellable(ctx, defaults, call, policy, None).await
}

/// As `llm_step`; the child is cancelled with `token` (None: with the workflow).
pub async fn llm_step_cancellable<W: HasProgress>(
    ctx: &WorkflowContext<W>,
    defaults: &LlmDefaults,
    call: LlmCall,
    policy: LlmPolicy,
    token: Option<WorkflowCancellationToken>,
) -> Result<AskOutcome, StepFailure> {
    let parent = ctx.workflow_id().to_string();
    let input = ask_input(&parent, defaults, &call);
    let child_id = input.request_id.to_string();
    step_start(ctx, &call.step, Some(child_id.clone()));
    step_place(ctx, &call.step, Some(input.model.to_string()), None);
    let retry = RetryPolicy::builder()
        .maximum_attempts(policy.attempts)
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .build();
    let opts = ChildWorkflowOptions::builder()
        .workflow_id(child_id)
        .parent_close_policy(ParentClosePolicy::RequestCancel)
        .static_summary(format!("{} · {}", call.step, input.model))
        .run_timeout(policy.timeout)
        .retry_policy(retry)
        .priority(temporal_priority(&input.priority))
        .maybe_cancellation_token(token.clone())
        .build();
    let result = match ctx
        .start_child_workflow(AskWorkflow::run, input, opts)
        .await
    {
        Ok(started) => started
            .result()
            .await
            .map_err(|e| child_failure_message(&e)),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(outcome) => {
            let (model, node) = (outcome.model.to_string(), outcome.node.to_string());
            step_place(ctx, &call.step, Some(model), Some(node));
            let detail = format!("{} on {}", outcome.model, outcome.node);
            step_end(ctx, &call.step, StepStatus::Completed, Some(detail));
            Ok(outcome)
        }
        Err(_)
            if ctx.cancellation_token().is_cancelled()
                || token.as_ref().is_some_and(|t| t.is_cancelled()) =>
        {
            step_end(ctx, &call.step, StepStatus::Cancelled, None);
            Err(StepFailure::Cancelled)
        }
        Err(why) => {
            step_end(ctx, &call.step, StepStatus::Failed, Some(why.clone()));
            Err(StepFailure::Failed(why))
        }
    }
}
