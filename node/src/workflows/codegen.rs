//! CodeGenWorkflow: `validate` (size, language, tier) → `allocate` (the local model or its
//! fallback, by load and tier; recorded) → `generate` (a child ask) → `review` (a child ask
//! raced against a timer: a review that times out does not fail the workflow) → `save` (code and
//! review as files) → `notify` → `release`, which always runs: after success, failure or cancel.

use super::report::{StepNote, notify};
use super::steps::{
    HasProgress, LlmCall, LlmDefaults, LlmPolicy, StepFailure, llm_step, step_end, step_place,
    step_start,
};
use crate::activities::{AllocateInput, Allocated, FlowActivities, NotifyInput, SaveCodeInput};
use crate::protocol::{FlowProgress, ModelId, NodeId, StepStatus};
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::select;
use temporalio_sdk::{
    ActivityOptions, WorkflowCancellationToken, WorkflowContext, WorkflowContextView,
    WorkflowResult, WorkflowTermination,
};

pub const STEPS: [&str; 7] = [
    "validate", "allocate", "generate", "review", "save", "notify", "release",
];

/// Languages codegen writes.
pub const LANGUAGES: [&str; 10] = [
    "rust",
    "python",
    "javascript",
    "typescript",
    "go",
    "java",
    "c",
    "cpp",
    "sql",
    "bash",
];

/// What the result's review says when the reviewer ran out of time.
pub const REVIEW_TIMED_OUT: &str = "review timed out";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeGenInput {
    pub requirements: String,
    pub language: String,
    /// The user's tier (free, premium, enterprise): free requests may be half as long.
    pub tier: String,
    pub max_requirements_chars: usize,
    pub review_timeout_secs: u64,
    pub review_model: Option<ModelId>,
    pub llm: LlmDefaults,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CodeGenResult {
    pub language: String,
    pub code: String,
    /// The review, or "review timed out".
    pub review: String,
    /// completed | timed_out | failed
    pub review_status: String,
    pub model: ModelId,
    pub node: NodeId,
    pub fallback: bool,
    pub path: String,
    pub notification: StepNote,
}

/// Checks a codegen request; the message says what is wrong. The API checks it before starting
/// the workflow (a 400), and the workflow's first step again (its history shows it).
pub fn validate(
    requirements: &str,
    language: &str,
    tier: &str,
    max_chars: usize,
) -> Result<(), String> {
    if requirements.trim().is_empty() {
        return Err("`requirements` is empty".into());
    }
    if !LANGUAGES.contains(&language) {
        return Err(format!(
            "language `{language}` is not one of {}",
            LANGUAGES.join(", ")
        ));
    }
    let limit = if tier == "free" {
        max_chars / 2
    } else {
        max_chars
    };
    let n = requirements.chars().count();
    if n > limit {
        return Err(format!(
            "requirements of {n} characters; the {tier} tier allows {limit}"
        ));
    }
    Ok(())
}

#[workflow]
pub struct CodeGenWorkflow {
    progress: FlowProgress,
}

impl Default for CodeGenWorkflow {
    fn default() -> Self {
        Self {
            progress: FlowProgress::new(&STEPS),
        }
    }
}

impl HasProgress for CodeGenWorkflow {
    fn progress_mut(&mut self) -> &mut FlowProgress {
        &mut self.progress
    }
}

fn activity_options(attempts: u32) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(RetryPolicy::builder().maximum_attempts(attempts).build())
        .build()
}

const GENERATE: LlmPolicy = LlmPolicy {
    attempts: 2,
    timeout: Duration::from_secs(300),
};

/// The review: the child ask raced against the review timeout (a timed-out review is cancelled).
async fn review(
    ctx: &WorkflowContext<CodeGenWorkflow>,
    input: &CodeGenInput,
    code: &str,
) -> Result<(String, String), WorkflowTermination> {
    let call = LlmCall {
        step: "review".into(),
        system: "You are a senior engineer. Review this code briefly: bugs, risks, fixes.".into(),
        prompt: format!(
            "Requirements:\n{}\n\nCode ({}):\n{code}",
            input.requirements, input.language
        ),
        model: input.review_model.clone(),
        max_tokens: None,
        priority: None,
    };
    let timeout = Duration::from_secs(input.review_timeout_secs);
    // The review's own token: cancelled when its time is up, and with the workflow.
    let token = ctx.cancellation_token().child_token();
    let review = llm_step_with(ctx, &input.llm, call, token.clone()).fuse();
    let timer = ctx.timer(timeout);
    futures::pin_mut!(review, timer);
    select! {
        r = review => match r {
            Ok(o) => Ok((o.text, "completed".into())),
            Err(StepFailure::Cancelled) => Err(WorkflowTermination::cancelled()),
            Err(StepFailure::Failed(why)) => Ok((format!("review failed: {why}"), "failed".into())),
        },
        _ = timer => {
            token.cancel_with_reason(REVIEW_TIMED_OUT);
            step_end(ctx, "review", StepStatus::TimedOut, Some(REVIEW_TIMED_OUT.into()));
            Ok((REVIEW_TIMED_OUT.into(), "timed_out".into()))
        }
    }
}

/// `llm_step` for the review, whose child answers to its own cancellation token.
async fn llm_step_with(
    ctx: &WorkflowContext<CodeGenWorkflow>,
    defaults: &LlmDefaults,
    call: LlmCall,
    token: WorkflowCancellationToken,
) -> Result<crate::protocol::AskOutcome, StepFailure> {
    super::steps::llm_step_cancellable(ctx, defaults, call, GENERATE, Some(token)).await
}

/// Every step after `allocate`, whose allocation `run` releases whatever happens here.
async fn after_allocate(
    ctx: &WorkflowContext<CodeGenWorkflow>,
    input: &CodeGenInput,
    allocated: &Allocated,
) -> Result<CodeGenResult, WorkflowTermination> {
    let id = ctx.workflow_id().to_string();
    let call = LlmCall {
        step: "generate".into(),
        system: format!(
            "You are an expert {} programmer. Answer with the code only, in one code block.",
            input.language
        ),
        prompt: input.requirements.clone(),
        model: Some(allocated.model.clone()),
        max_tokens: None,
        priority: None,
    };
    let generated = llm_step(ctx, &input.llm, call, GENERATE)
        .await
        .map_err(StepFailure::into_termination)?;
    let (review, review_status) = review(ctx, input, &generated.text).await?;

    step_start(ctx, "save", None);
    let saved = ctx
        .execute_activity(
            FlowActivities::save_code,
            SaveCodeInput {
                workflow_id: id.clone(),
                language: input.language.clone(),
                code: generated.text.clone(),
                review: review.clone(),
            },
            activity_options(2),
        )
        .await;
    let path = match saved {
        Ok(p) => {
            step_end(ctx, "save", StepStatus::Completed, Some(p.clone()));
            p
        }
        Err(e) => {
            step_end(ctx, "save", StepStatus::Failed, Some(e.to_string()));
            return Err(e.into());
        }
    };
    let notification = notify(
        ctx,
        &input.llm.origin,
        NotifyInput {
            user: input.llm.user.clone(),
            workflow_id: id.clone(),
            kind: "codegen".into(),
            status: "completed".into(),
            summary: json!({"language": input.language, "review_status": review_status,
                            "result": format!("/api/workflows/{id}/result")}),
        },
    )
    .await;
    Ok(CodeGenResult {
        language: input.language.clone(),
        code: generated.text,
        review,
        review_status,
        model: generated.model,
        node: generated.node,
        fallback: allocated.fallback,
        path,
        notification,
    })
}

#[workflow_methods]
impl CodeGenWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: CodeGenInput,
    ) -> WorkflowResult<CodeGenResult> {
        let id = ctx.workflow_id().to_string();
        step_start(ctx, "validate", None);
        if let Err(why) = validate(
            &input.requirements,
            &input.language,
            &input.tier,
            input.max_requirements_chars,
        ) {
            step_end(ctx, "validate", StepStatus::Failed, Some(why.clone()));
            return Err(temporalio_common::error::ApplicationFailure::builder(why)
                .type_name(crate::protocol::INVALID_REQUEST.to_string())
                .non_retryable(true)
                .build()
                .into());
        }
        step_end(ctx, "validate", StepStatus::Completed, None);

        step_start(ctx, "allocate", None);
        let allocated = ctx
            .execute_activity(
                FlowActivities::allocate,
                AllocateInput {
                    workflow_id: id.clone(),
                    user: input.llm.user.clone(),
                    model: input.llm.model.clone(),
                    priority: input.llm.priority.clone(),
                },
                activity_options(3),
            )
            .await;
        // From here on the allocation may exist (even a failed allocate may have recorded it
        // before failing): release runs in every case.
        let result = match allocated {
            Ok(a) => {
                let node = a.node.as_ref().map(ToString::to_string);
                step_place(ctx, "allocate", Some(a.model.to_string()), node);
                let detail = match (&a.node, a.fallback) {
                    (Some(n), true) => format!("{} (fallback) on {n}", a.model),
                    (Some(n), false) => format!("{} on {n}", a.model),
                    (None, _) => format!("{} (to be loaded)", a.model),
                };
                step_end(ctx, "allocate", StepStatus::Completed, Some(detail));
                after_allocate(ctx, &input, &a).await
            }
            Err(e) => {
                step_end(ctx, "allocate", StepStatus::Failed, Some(e.to_string()));
                Err(e.into())
            }
        };
        if let Err(e) = &result {
            let status = if matches!(e, WorkflowTermination::Cancelled { .. }) {
                StepStatus::Cancelled
            } else {
                StepStatus::Skipped
            };
            ctx.state_mut(|s| {
                for step in s.progress.steps.iter_mut() {
                    if !step.status.finished() && step.name != "release" {
                        step.status = status;
                    }
                }
            });
        }

        step_start(ctx, "release", None);
        // A token of its own: release runs even when the workflow is being cancelled.
        let release_opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(RetryPolicy::builder().maximum_attempts(5).build())
            .cancellation_token(WorkflowCancellationToken::new())
            .build();
        match ctx
            .execute_activity(FlowActivities::release, id.clone(), release_opts)
            .await
        {
            Ok(held) => {
                let detail = if held { "released" } else { "nothing held" };
                step_end(ctx, "release", StepStatus::Completed, Some(detail.into()));
            }
            Err(e) => step_end(ctx, "release", StepStatus::Failed, Some(e.to_string())),
        }
        result
    }

    #[query]
    pub fn progress(&self, _ctx: &WorkflowContextView) -> FlowProgress {
        self.progress.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_for_size_language_and_tier() {
        // (requirements, language, tier, ok)
        let long = "x".repeat(60);
        let table: &[(&str, &str, &str, bool)] = &[
            ("a fizzbuzz", "rust", "free", true),
            ("", "rust", "free", false),
            ("a fizzbuzz", "cobol", "premium", false),
            (&long, "python", "premium", true),
            (&long, "python", "free", false),
        ];
        for (req, lang, tier, ok) in table {
            assert_eq!(
                validate(req, lang, tier, 100).is_ok(),
                *ok,
                "{req} {lang} {tier}"
            );
        }
    }
}
