//! ReportWorkflow: the research-report pipeline, four durable steps. `content` (a child ask: 3
//! attempts, exponential backoff, 60 s each) → `render` (the PDF: 2 attempts, 30 s) → `metadata`
//! (a database row: 2 attempts; a failure is recorded, not fatal) → `notify` (the user's sessions
//! and the webhook: lenient). Its id is the report id.

use super::steps::{
    HasProgress, LlmCall, LlmDefaults, LlmPolicy, llm_step, now_ms, step_end, step_place,
    step_start,
};
use crate::activities::{FlowActivities, NotifyInput, NotifyOutput, RenderInput, RenderOutput};
use crate::protocol::{FlowProgress, ModelId, NodeId, StepStatus, node_task_queue};
use crate::store::ReportRow;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowContextView, WorkflowResult};

pub const STEPS: [&str; 4] = ["content", "render", "metadata", "notify"];

const CONTENT_SYSTEM: &str = "You are a research assistant. Write a short, factual report on \
the user's topic in Markdown, with a few sections, each under a '## ' heading.";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReportInput {
    pub title: String,
    pub prompt: String,
    pub llm: LlmDefaults,
}

/// Whether the metadata row was stored, and where, or why not.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepNote {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportTimings {
    pub content_ms: u64,
    pub render_ms: u64,
    pub total_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportResult {
    pub report_id: String,
    pub title: String,
    pub prompt: String,
    pub content: String,
    pub model: ModelId,
    pub node: NodeId,
    pub file: RenderOutput,
    pub metadata: StepNote,
    pub notification: StepNote,
    pub timings: ReportTimings,
}

#[workflow]
pub struct ReportWorkflow {
    progress: FlowProgress,
}

impl Default for ReportWorkflow {
    fn default() -> Self {
        Self {
            progress: FlowProgress::new(&STEPS),
        }
    }
}

impl HasProgress for ReportWorkflow {
    fn progress_mut(&mut self) -> &mut FlowProgress {
        &mut self.progress
    }
}

/// Tells the user a workflow ended, from their own node; lenient (a failure is only noted).
pub(super) async fn notify<W: HasProgress>(
    ctx: &WorkflowContext<W>,
    origin: &NodeId,
    input: NotifyInput,
) -> StepNote {
    step_start(ctx, "notify", None);
    step_place(ctx, "notify", None, Some(origin.to_string()));
    let result = ctx
        .execute_activity(
            FlowActivities::notify,
            input,
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15))
                .task_queue(node_task_queue(origin))
                // The user's node may be gone; then there is no one there to tell.
                .schedule_to_start_timeout(Duration::from_secs(10))
                .retry_policy(RetryPolicy::builder().maximum_attempts(2).build())
                .build(),
        )
        .await;
    let note = match result {
        Ok(NotifyOutput { sessions, webhook }) => StepNote {
            ok: true,
            detail: Some(match webhook {
                Some(w) => format!("{sessions} session(s); webhook {w}"),
                None => format!("{sessions} session(s)"),
            }),
            error: None,
        },
        Err(e) => StepNote {
            ok: false,
            detail: None,
            error: Some(e.to_string()),
        },
    };
    let status = if note.ok {
        StepStatus::Completed
    } else {
        StepStatus::Failed
    };
    step_end(
        ctx,
        "notify",
        status,
        note.detail.clone().or(note.error.clone()),
    );
    note
}

#[workflow_methods]
impl ReportWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ReportInput,
    ) -> WorkflowResult<ReportResult> {
        let started_ms = now_ms(ctx);
        let report_id = ctx.workflow_id().to_string();
        let call = LlmCall {
            step: "content".into(),
            system: CONTENT_SYSTEM.into(),
            prompt: input.prompt.clone(),
            model: None,
            max_tokens: None,
            priority: None,
        };
        let policy = LlmPolicy {
            attempts: 3,
            timeout: Duration::from_secs(60),
        };
        let content = llm_step(ctx, &input.llm, call, policy)
            .await
            .map_err(|f| f.into_termination())?;

        step_start(ctx, "render", None);
        let rendered = ctx
            .execute_activity(
                FlowActivities::render_report,
                RenderInput {
                    report_id: report_id.clone(),
                    title: input.title.clone(),
                    prompt: input.prompt.clone(),
                    content: content.text.clone(),
                    model: content.model.clone(),
                },
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                    .retry_policy(RetryPolicy::builder().maximum_attempts(2).build())
                    .build(),
            )
            .await;
        let file = match rendered {
            Ok(f) => {
                step_place(ctx, "render", None, Some(f.node.to_string()));
                let detail = format!("{} pages, {}", f.pages, f.path);
                step_end(ctx, "render", StepStatus::Completed, Some(detail));
                f
            }
            Err(e) => {
                step_end(ctx, "render", StepStatus::Failed, Some(e.to_string()));
                return Err(e.into());
            }
        };

        step_start(ctx, "metadata", None);
        let row = ReportRow {
            report_id: report_id.clone(),
            user: input.llm.user.clone(),
            title: input.title.clone(),
            prompt: input.prompt.clone(),
            file_path: file.path.clone(),
            model: content.model.to_string(),
            node: content.node.to_string(),
            pages: i64::from(file.pages),
            bytes: file.bytes as i64,
            content_ms: content.total_ms as i64,
            render_ms: file.render_ms as i64,
            created_at: String::new(),
        };
        let stored = ctx
            .execute_activity(
                FlowActivities::store_report,
                row,
                ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                    .retry_policy(RetryPolicy::builder().maximum_attempts(2).build())
                    .build(),
            )
            .await;
        let metadata = match stored {
            Ok(db) => StepNote {
                ok: true,
                detail: Some(db),
                error: None,
            },
            Err(e) => StepNote {
                ok: false,
                detail: None,
                error: Some(e.to_string()),
            },
        };
        let status = if metadata.ok {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        };
        let detail = metadata.detail.clone().or(metadata.error.clone());
        step_end(ctx, "metadata", status, detail);

        let notification = notify(
            ctx,
            &input.llm.origin,
            NotifyInput {
                user: input.llm.user.clone(),
                workflow_id: report_id.clone(),
                kind: "report".into(),
                status: "completed".into(),
                summary: json!({"title": input.title, "pages": file.pages,
                                "result": format!("/api/workflows/{report_id}/result")}),
            },
        )
        .await;
        let total_ms = now_ms(ctx).saturating_sub(started_ms);
        Ok(ReportResult {
            report_id,
            title: input.title,
            prompt: input.prompt,
            timings: ReportTimings {
                content_ms: content.total_ms,
                render_ms: file.render_ms,
                total_ms,
            },
            content: content.text,
            model: content.model,
            node: content.node,
            file,
            metadata,
            notification,
        })
    }

    #[query]
    pub fn progress(&self, _ctx: &WorkflowContextView) -> FlowProgress {
        self.progress.clone()
    }
}
