//! The bodies of `POST /api/workflows/{kind}` (and the WebSocket `run_workflow` frame) as
//! clients send them, before validation. Every kind takes `model`, `max_tokens` and `priority`
//! for its LLM steps.

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportFields {
    pub prompt: String,
    /// Default: the prompt's first line, cut to 80 characters.
    pub title: Option<String>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub priority: Option<crate::protocol::Priority>,
    pub client_id: Option<String>,
}

/// A role of a multi-agent task: a name (a default role's name takes its prompt) or in full.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
pub enum RoleField {
    Name(String),
    Full(RoleSpecFields),
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpecFields {
    pub role: String,
    pub prompt: Option<String>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub priority: Option<crate::protocol::Priority>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiAgentFields {
    pub task: String,
    /// Default: architect, ui_designer, backend_developer.
    pub roles: Option<Vec<RoleField>>,
    /// The senior reviewer's model and length.
    pub reviewer: Option<RoleSpecFields>,
    /// fail | continue (default: `[workflows] on_agent_failure`).
    pub on_agent_failure: Option<crate::config::OnAgentFailure>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub priority: Option<crate::protocol::Priority>,
    pub client_id: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeGenFields {
    pub requirements: String,
    pub language: String,
    pub review_model: Option<String>,
    /// Default: `[workflows] review_timeout_secs`.
    pub review_timeout_secs: Option<u64>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub priority: Option<crate::protocol::Priority>,
    pub client_id: Option<String>,
}

/// A start request of any kind but `ask` (asks keep their own fields, `AskFields`).
#[derive(Clone, Debug)]
pub enum FlowRequest {
    Report(ReportFields),
    MultiAgent(MultiAgentFields),
    CodeGen(CodeGenFields),
}

impl FlowRequest {
    pub fn client_id(&self) -> Option<&str> {
        match self {
            FlowRequest::Report(f) => f.client_id.as_deref(),
            FlowRequest::MultiAgent(f) => f.client_id.as_deref(),
            FlowRequest::CodeGen(f) => f.client_id.as_deref(),
        }
    }
}
