//! Workflows beyond single asks (report, multi-agent, codegen): their kinds, ids and the progress
//! each one answers to its `progress` query. Plain data, shared by the workflows, the REST and
//! WebSocket surfaces and the CLI.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The kinds of workflow a user can start (`POST /api/workflows/{kind}`); `ask` is the AskWorkflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlowKind {
    Ask,
    Report,
    MultiAgent,
    Codegen,
}

impl FlowKind {
    pub const ALL: [FlowKind; 4] = [
        FlowKind::Ask,
        FlowKind::Report,
        FlowKind::MultiAgent,
        FlowKind::Codegen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FlowKind::Ask => "ask",
            FlowKind::Report => "report",
            FlowKind::MultiAgent => "multi-agent",
            FlowKind::Codegen => "codegen",
        }
    }

    /// The kind a URL path segment names; `generate-report` is the seed's name for reports.
    pub fn parse(s: &str) -> Option<FlowKind> {
        match s {
            "generate-report" => Some(FlowKind::Report),
            "multi_agent" => Some(FlowKind::MultiAgent),
            _ => Self::ALL.into_iter().find(|k| k.as_str() == s),
        }
    }

    /// The prefix of this kind's workflow ids (asks keep their own, `ask-`).
    pub fn id_prefix(self) -> &'static str {
        match self {
            FlowKind::Ask => super::ASK_WORKFLOW_PREFIX,
            FlowKind::Report => "report-",
            FlowKind::MultiAgent => "agents-",
            FlowKind::Codegen => "codegen-",
        }
    }

    /// The kind a workflow id belongs to, by its prefix.
    pub fn of_id(id: &str) -> Option<FlowKind> {
        Self::ALL
            .into_iter()
            .find(|k| id.starts_with(k.id_prefix()))
    }

    /// A fresh, unguessable workflow id of this kind.
    pub fn new_id(self) -> String {
        format!("{}{}", self.id_prefix(), uuid::Uuid::new_v4().simple())
    }
}

impl fmt::Display for FlowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The workflow id of the child ask that runs `step` of the workflow `parent`: deterministic, so
/// a replayed parent finds the child it started before a crash instead of starting another.
pub fn child_ask_id(parent: &str, step: &str) -> String {
    format!("{parent}.{step}")
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    #[default]
    Pending,
    Running,
    Completed,
    Failed,
    /// Ended by its own timeout without failing the workflow (a codegen review).
    TimedOut,
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub fn finished(self) -> bool {
        !matches!(self, StepStatus::Pending | StepStatus::Running)
    }
}

/// One step of a workflow as its `progress` query shows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepState {
    pub name: String,
    pub status: StepStatus,
    /// The child workflow that runs it (LLM steps), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child: Option<String>,
    /// Workflow time (ms since the epoch, from the history) the step started and ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ms: Option<u64>,
    /// Why it failed, or what it produced in a word (a model, a node, a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The model an LLM step asked (then the one that answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The node that ran the step (an LLM step's: the one that generated its answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Where a workflow stands: its steps in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlowProgress {
    pub steps: Vec<StepState>,
}

impl FlowProgress {
    pub fn new(names: &[&str]) -> Self {
        FlowProgress {
            steps: names
                .iter()
                .map(|n| StepState {
                    name: n.to_string(),
                    ..StepState::default()
                })
                .collect(),
        }
    }

    fn step_mut(&mut self, name: &str) -> &mut StepState {
        if let Some(i) = self.steps.iter().position(|s| s.name == name) {
            return &mut self.steps[i];
        }
        self.steps.push(StepState {
            name: name.to_string(),
            ..StepState::default()
        });
        let last = self.steps.len() - 1;
        &mut self.steps[last]
    }

    pub fn start(&mut self, name: &str, child: Option<String>, now_ms: u64) {
        let s = self.step_mut(name);
        s.status = StepStatus::Running;
        s.child = child;
        s.started_ms = Some(now_ms);
    }

    pub fn finish(&mut self, name: &str, status: StepStatus, detail: Option<String>, now_ms: u64) {
        let s = self.step_mut(name);
        s.status = status;
        s.detail = detail;
        s.ended_ms = Some(now_ms);
        if s.started_ms.is_none() {
            s.started_ms = Some(now_ms);
        }
    }

    /// Records where a step ran: its model and node, each when known (None keeps what was there).
    pub fn place(&mut self, name: &str, model: Option<String>, node: Option<String>) {
        let s = self.step_mut(name);
        if model.is_some() {
            s.model = model;
        }
        if node.is_some() {
            s.node = node;
        }
    }

    /// The first step still running, else the first not started.
    pub fn current(&self) -> Option<&StepState> {
        self.steps
            .iter()
            .find(|s| s.status == StepStatus::Running)
            .or_else(|| self.steps.iter().find(|s| s.status == StepStatus::Pending))
    }

    /// Finished steps as a share of all, 0–100.
    pub fn percent(&self) -> u32 {
        if self.steps.is_empty() {
            return 0;
        }
        let done = self.steps.iter().filter(|s| s.status.finished()).count();
        (done * 100 / self.steps.len()) as u32
    }

    /// Time left, estimated from the finished steps' mean duration (None before any finished).
    pub fn eta_ms(&self) -> Option<u64> {
        let took: Vec<u64> = self
            .steps
            .iter()
            .filter(|s| s.status.finished())
            .filter_map(|s| Some(s.ended_ms?.saturating_sub(s.started_ms?)))
            .collect();
        if took.is_empty() {
            return None;
        }
        let mean = took.iter().sum::<u64>() / took.len() as u64;
        let left = self.steps.iter().filter(|s| !s.status.finished()).count() as u64;
        Some(mean * left)
    }

    /// The child workflows started so far, with their steps.
    pub fn children(&self) -> Vec<(&str, &str)> {
        self.steps
            .iter()
            .filter_map(|s| Some((s.name.as_str(), s.child.as_deref()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_paths_and_ids() {
        let table = [
            ("ask", Some(FlowKind::Ask)),
            ("report", Some(FlowKind::Report)),
            ("generate-report", Some(FlowKind::Report)),
            ("multi-agent", Some(FlowKind::MultiAgent)),
            ("codegen", Some(FlowKind::Codegen)),
            ("poem", None),
        ];
        for (s, want) in table {
            assert_eq!(FlowKind::parse(s), want, "{s}");
        }
        for k in FlowKind::ALL {
            assert_eq!(FlowKind::of_id(&k.new_id()), Some(k));
        }
        assert_eq!(FlowKind::of_id("orrery-resource-management"), None);
    }

    #[test]
    fn progress_counts_finished_steps_and_estimates_what_is_left() {
        let mut p = FlowProgress::new(&["content", "render", "metadata", "notify"]);
        assert_eq!(p.percent(), 0);
        assert_eq!(p.eta_ms(), None);
        assert_eq!(p.current().map(|s| s.name.as_str()), Some("content"));
        p.start("content", Some("report-1.content".into()), 1_000);
        p.finish("content", StepStatus::Completed, None, 5_000);
        p.start("render", None, 5_000);
        assert_eq!(p.percent(), 25);
        assert_eq!(p.eta_ms(), Some(4_000 * 3));
        assert_eq!(p.current().map(|s| s.name.as_str()), Some("render"));
        assert_eq!(p.children(), vec![("content", "report-1.content")]);
        p.place("content", Some("m".into()), None);
        p.place("content", None, Some("n1".into()));
        assert_eq!(p.steps[0].model.as_deref(), Some("m"));
        assert_eq!(p.steps[0].node.as_deref(), Some("n1"));
    }
}
