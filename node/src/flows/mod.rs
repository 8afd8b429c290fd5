//! The report, multi-agent and codegen workflows as every front door sees them (REST, the
//! WebSocket, the CLI through REST): validate a request into its workflow's input, start it,
//! see where it stands (`describe` + its `progress` query), fetch its result, cancel it, list a
//! user's. Nothing here knows HTTP: errors are [`FlowError`].

mod error;
mod records;
pub mod request;
mod validate;

pub use error::FlowError;
pub use records::{ChildRef, FlowEnd, FlowStatus, FlowSummary};
pub use request::FlowRequest;

use crate::asks::AskService;
use crate::asks::records::{MEMO_MODEL, MEMO_USER};
use crate::protocol::{CLUSTER_TASK_QUEUE, FlowKind};
use crate::store::Store;
use crate::workflows::codegen::{CodeGenInput, CodeGenWorkflow};
use crate::workflows::multi_agent::{MultiAgentInput, MultiAgentWorkflow};
use crate::workflows::report::{ReportInput, ReportWorkflow};
use temporalio_client::WorkflowStartOptions;
use temporalio_common::MemoValues;

/// Memo key of a workflow's kind.
pub const MEMO_KIND: &str = "kind";

/// A validated request: its workflow's input.
#[derive(Clone, Debug)]
pub enum FlowStart {
    Report(ReportInput),
    MultiAgent(MultiAgentInput),
    CodeGen(CodeGenInput),
}

impl FlowStart {
    pub fn kind(&self) -> FlowKind {
        match self {
            FlowStart::Report(_) => FlowKind::Report,
            FlowStart::MultiAgent(_) => FlowKind::MultiAgent,
            FlowStart::CodeGen(_) => FlowKind::Codegen,
        }
    }

    fn llm(&self) -> &crate::workflows::steps::LlmDefaults {
        match self {
            FlowStart::Report(i) => &i.llm,
            FlowStart::MultiAgent(i) => &i.llm,
            FlowStart::CodeGen(i) => &i.llm,
        }
    }

    fn summary(&self) -> String {
        let text = match self {
            FlowStart::Report(i) => i.title.as_str(),
            FlowStart::MultiAgent(i) => i.task.as_str(),
            FlowStart::CodeGen(i) => i.requirements.as_str(),
        };
        format!(
            "{} · {}",
            self.kind(),
            text.chars().take(80).collect::<String>()
        )
    }
}

/// A started workflow.
#[derive(Clone, Debug)]
pub struct Started {
    pub workflow_id: String,
    pub kind: FlowKind,
}

#[derive(Clone)]
pub struct FlowService {
    /// Temporal, the configuration and the user search attribute, shared with asks.
    pub asks: AskService,
    pub store: Store,
}

impl FlowService {
    /// The Temporal UI page of a workflow.
    pub fn workflow_url(&self, id: &str) -> Option<String> {
        self.asks.workflow_url(&crate::protocol::RequestId::new(id))
    }

    /// Starts the workflow `input` asks for.
    pub async fn start(&self, input: FlowStart) -> Result<Started, FlowError> {
        let kind = input.kind();
        let id = kind.new_id();
        let llm = input.llm().clone();
        let mut memo = MemoValues::new();
        memo.insert(MEMO_USER, llm.user.clone());
        memo.insert(MEMO_MODEL, llm.model.to_string());
        memo.insert(MEMO_KIND, kind.as_str().to_string());
        let opts = WorkflowStartOptions::new(CLUSTER_TASK_QUEUE, id.clone())
            .static_summary(input.summary())
            .memo(memo)
            .maybe_search_attributes(self.asks.user_search.attributes(&llm.user))
            .priority(crate::workflows::steps::temporal_priority(&llm.priority))
            .build();
        tracing::info!(workflow.id = %id, kind = %kind, user = %llm.user,
                       model.id = %llm.model, "starting workflow");
        let client = &self.asks.client;
        let started = match input {
            FlowStart::Report(i) => client
                .start_workflow(ReportWorkflow::run, i, opts)
                .await
                .map(drop),
            FlowStart::MultiAgent(i) => client
                .start_workflow(MultiAgentWorkflow::run, i, opts)
                .await
                .map(drop),
            FlowStart::CodeGen(i) => client
                .start_workflow(CodeGenWorkflow::run, i, opts)
                .await
                .map(drop),
        };
        started.map_err(|e| {
            tracing::error!(workflow.id = %id, error = %e, "could not start the workflow");
            FlowError::Unavailable(format!(
                "the control plane (Temporal) did not take the workflow: {e}"
            ))
        })?;
        metrics::counter!("orrery_workflows_started_total", "kind" => kind.as_str()).increment(1);
        Ok(Started {
            workflow_id: id,
            kind,
        })
    }
}
