//! MultiAgentWorkflow: a task worked on by several roles at once. Each agent is a child
//! AskWorkflow with its role's prompt, model and priority, all in parallel; `integration`
//! combines what they wrote (deterministically, in the workflow); a `senior_reviewer` child
//! reviews the whole. Cancelling the parent cancels the children. A failed agent is reported;
//! with `on_agent_failure = continue` integration goes on with the others.

use super::report::{StepNote, notify};
use super::steps::{HasProgress, LlmCall, LlmDefaults, LlmPolicy, llm_step, step_end, step_start};
use crate::activities::NotifyInput;
use crate::config::OnAgentFailure;
use crate::protocol::{FlowProgress, ModelId, NodeId, Priority, StepStatus};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::workflows::join_all;
use temporalio_sdk::{WorkflowContext, WorkflowContextView, WorkflowResult, WorkflowTermination};

/// The agents a task gets when it names none, with their role prompts.
pub const DEFAULT_ROLES: [(&str, &str); 3] = [
    (
        "architect",
        "You are a software architect. Propose the system's components and how they fit.",
    ),
    (
        "ui_designer",
        "You are a UI designer. Describe the screens and how the user moves through them.",
    ),
    (
        "backend_developer",
        "You are a backend developer. Describe the APIs, data model and storage.",
    ),
];

pub const REVIEWER: (&str, &str) = (
    "senior_reviewer",
    "You are a senior reviewer. Point out the main risks and gaps in this plan, briefly.",
);

/// One agent: its role (also its step's name) and what it runs with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentSpec {
    pub role: String,
    pub prompt: String,
    pub model: Option<ModelId>,
    pub max_tokens: Option<u32>,
    pub priority: Option<Priority>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MultiAgentInput {
    pub task: String,
    pub agents: Vec<AgentSpec>,
    pub reviewer: AgentSpec,
    pub on_agent_failure: OnAgentFailure,
    pub llm: LlmDefaults,
}

/// One agent's part of the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentOutput {
    /// completed | failed | cancelled
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MultiAgentResult {
    pub task: String,
    /// Each role's output, by role.
    pub agents: BTreeMap<String, AgentOutput>,
    /// Roles whose agent failed.
    pub failed: Vec<String>,
    pub integration: String,
    pub review: AgentOutput,
    pub notification: StepNote,
}

#[workflow]
#[derive(Default)]
pub struct MultiAgentWorkflow {
    progress: FlowProgress,
}

impl HasProgress for MultiAgentWorkflow {
    fn progress_mut(&mut self) -> &mut FlowProgress {
        &mut self.progress
    }
}

/// The agents' outputs as one document, in the order the roles were given; a failed agent is
/// named as such.
pub fn integrate(task: &str, order: &[String], agents: &BTreeMap<String, AgentOutput>) -> String {
    let mut doc = format!("# Task\n{task}\n");
    for role in order {
        let Some(a) = agents.get(role) else { continue };
        match &a.text {
            Some(t) => doc.push_str(&format!("\n## {role}\n{}\n", t.trim())),
            None => doc.push_str(&format!(
                "\n## {role}\n(no output: the agent {})\n",
                a.status
            )),
        }
    }
    doc
}

fn spec_call(spec: &AgentSpec, prompt: String) -> LlmCall {
    LlmCall {
        step: spec.role.clone(),
        system: spec.prompt.clone(),
        prompt,
        model: spec.model.clone(),
        max_tokens: spec.max_tokens,
        priority: spec.priority.clone(),
    }
}

const POLICY: LlmPolicy = LlmPolicy {
    attempts: 2,
    timeout: Duration::from_secs(300),
};

#[workflow_methods]
impl MultiAgentWorkflow {
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: MultiAgentInput,
    ) -> WorkflowResult<MultiAgentResult> {
        let id = ctx.workflow_id().to_string();
        let order: Vec<String> = input.agents.iter().map(|a| a.role.clone()).collect();
        ctx.state_mut(|s| {
            let mut names: Vec<&str> = order.iter().map(String::as_str).collect();
            names.extend(["integration", input.reviewer.role.as_str(), "notify"]);
            s.progress = FlowProgress::new(&names);
        });
        let ctx_ref: &WorkflowContext<Self> = ctx;
        let runs = input.agents.iter().map(|spec| {
            let call = spec_call(spec, input.task.clone());
            llm_step(ctx_ref, &input.llm, call, POLICY)
        });
        let outcomes = join_all(runs).await;
        let mut agents = BTreeMap::new();
        let mut failed = Vec::new();
        for (spec, outcome) in input.agents.iter().zip(outcomes) {
            let out = match outcome {
                Ok(o) => AgentOutput {
                    status: "completed".into(),
                    text: Some(o.text),
                    model: Some(o.model),
                    node: Some(o.node),
                    error: None,
                },
                Err(f) => {
                    if ctx.cancellation_token().is_cancelled() {
                        return Err(WorkflowTermination::cancelled());
                    }
                    failed.push(spec.role.clone());
                    AgentOutput {
                        status: "failed".into(),
                        text: None,
                        model: None,
                        node: None,
                        error: Some(f.message()),
                    }
                }
            };
            agents.insert(spec.role.clone(), out);
        }
        let all_failed = failed.len() == input.agents.len();
        if !failed.is_empty() && (input.on_agent_failure == OnAgentFailure::Fail || all_failed) {
            let why = format!("agent(s) failed: {}", failed.join(", "));
            step_end(ctx, "integration", StepStatus::Skipped, Some(why.clone()));
            return Err(temporalio_common::error::ApplicationFailure::non_retryable(why).into());
        }

        step_start(ctx, "integration", None);
        let integration = integrate(&input.task, &order, &agents);
        let detail = format!("{} of {} agents", order.len() - failed.len(), order.len());
        step_end(ctx, "integration", StepStatus::Completed, Some(detail));

        let review_call = spec_call(&input.reviewer, integration.clone());
        let review = match llm_step(ctx, &input.llm, review_call, POLICY).await {
            Ok(o) => AgentOutput {
                status: "completed".into(),
                text: Some(o.text),
                model: Some(o.model),
                node: Some(o.node),
                error: None,
            },
            Err(f) => return Err(f.into_termination()),
        };

        let notification = notify(
            ctx,
            &input.llm.origin,
            NotifyInput {
                user: input.llm.user.clone(),
                workflow_id: id.clone(),
                kind: "multi-agent".into(),
                status: "completed".into(),
                summary: json!({"failed": failed,
                                "result": format!("/api/workflows/{id}/result")}),
            },
        )
        .await;
        Ok(MultiAgentResult {
            task: input.task,
            agents,
            failed,
            integration,
            review,
            notification,
        })
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
    fn integration_keeps_the_roles_order_and_names_failed_agents() {
        let mut agents = BTreeMap::new();
        let ok = |t: &str| AgentOutput {
            status: "completed".into(),
            text: Some(t.into()),
            model: None,
            node: None,
            error: None,
        };
        agents.insert("b".to_string(), ok(" second "));
        agents.insert("a".to_string(), ok("first"));
        agents.insert(
            "c".to_string(),
            AgentOutput {
                status: "failed".into(),
                text: None,
                model: None,
                node: None,
                error: Some("boom".into()),
            },
        );
        let order = ["b", "a", "c"].map(String::from);
        let doc = integrate("build it", &order, &agents);
        assert_eq!(
            doc,
            "# Task\nbuild it\n\n## b\nsecond\n\n## a\nfirst\n\n## c\n(no output: the agent failed)\n"
        );
    }
}
