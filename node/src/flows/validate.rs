//! A start request checked against the cluster's models and limits and the caller's tier, and
//! turned into its workflow's input. Every problem is a 4xx before anything starts.

use super::request::{CodeGenFields, MultiAgentFields, ReportFields, RoleField, RoleSpecFields};
use super::{FlowError, FlowRequest, FlowService, FlowStart};
use crate::protocol::{ModelId, Priority};
use crate::users::Caller;
use crate::workflows::codegen::{self, CodeGenInput};
use crate::workflows::multi_agent::{AgentSpec, DEFAULT_ROLES, MultiAgentInput, REVIEWER};
use crate::workflows::report::ReportInput;
use crate::workflows::steps::LlmDefaults;

/// Most agents one multi-agent task may have.
pub const MAX_AGENTS: usize = 8;

impl FlowService {
    fn model(&self, m: Option<&str>) -> Result<Option<ModelId>, FlowError> {
        match m {
            None | Some("") => Ok(None),
            Some(m) => {
                let id = ModelId::new(m);
                if self.asks.config.model(&id).is_none() {
                    return Err(FlowError::UnknownModel(m.to_string()));
                }
                Ok(Some(id))
            }
        }
    }

    fn max_tokens(&self, n: Option<u32>) -> Result<Option<u32>, FlowError> {
        let limit = self.asks.config.limits.max_tokens;
        match n {
            Some(0) => Err(FlowError::InvalidParams(
                "max_tokens must be positive".into(),
            )),
            Some(n) if n > limit => Err(FlowError::InvalidParams(format!(
                "max_tokens {n} is above this cluster's limit of {limit}"
            ))),
            other => Ok(other),
        }
    }

    fn text(&self, field: &str, s: &str) -> Result<(), FlowError> {
        let limit = self.asks.config.limits.max_prompt_chars;
        let n = s.chars().count();
        if s.trim().is_empty() {
            return Err(FlowError::InvalidParams(format!("`{field}` is empty")));
        }
        if n > limit {
            return Err(FlowError::InvalidParams(format!(
                "`{field}` has {n} characters; the limit is {limit}"
            )));
        }
        Ok(())
    }

    fn defaults(
        &self,
        caller: &Caller,
        model: Option<&str>,
        max_tokens: Option<u32>,
        priority: Option<Priority>,
    ) -> Result<LlmDefaults, FlowError> {
        let config = &self.asks.config;
        Ok(LlmDefaults {
            user: caller.user.to_string(),
            model: self
                .model(model)?
                .unwrap_or_else(|| config.default_model.clone()),
            max_tokens: self.max_tokens(max_tokens)?.unwrap_or(256),
            priority: caller.tier.cap(priority),
            origin: config.node_id.clone(),
            heartbeat_timeout_secs: config.limits.heartbeat_timeout.as_secs(),
        })
    }

    /// Checks `req` of `caller` and makes its workflow's input.
    pub fn validate(&self, caller: &Caller, req: FlowRequest) -> Result<FlowStart, FlowError> {
        match req {
            FlowRequest::Report(f) => self.report(caller, f).map(FlowStart::Report),
            FlowRequest::MultiAgent(f) => self.multi_agent(caller, f).map(FlowStart::MultiAgent),
            FlowRequest::CodeGen(f) => self.codegen(caller, f).map(FlowStart::CodeGen),
        }
    }

    fn report(&self, caller: &Caller, f: ReportFields) -> Result<ReportInput, FlowError> {
        self.text("prompt", &f.prompt)?;
        let title = match f.title {
            Some(t) if !t.trim().is_empty() => t.trim().chars().take(200).collect(),
            _ => f
                .prompt
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or_default()
                .trim()
                .chars()
                .take(80)
                .collect(),
        };
        Ok(ReportInput {
            llm: self.defaults(caller, f.model.as_deref(), f.max_tokens, f.priority)?,
            title,
            prompt: f.prompt,
        })
    }

    fn agent(&self, caller: &Caller, f: RoleSpecFields) -> Result<AgentSpec, FlowError> {
        let role = f.role.trim().to_string();
        let valid = !role.is_empty()
            && role.len() <= 40
            && role
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(FlowError::InvalidParams(format!(
                "role `{role}`: use 1-40 letters, digits, '_' or '-'"
            )));
        }
        let known = DEFAULT_ROLES
            .iter()
            .chain([&REVIEWER])
            .find(|(name, _)| *name == role)
            .map(|(_, p)| p.to_string());
        let prompt = match (f.prompt, known) {
            (Some(p), _) if !p.trim().is_empty() => p,
            (_, Some(p)) => p,
            _ => format!(
                "You are the team's {}. Contribute your part, briefly.",
                role.replace('_', " ")
            ),
        };
        Ok(AgentSpec {
            role,
            prompt,
            model: self.model(f.model.as_deref())?,
            max_tokens: self.max_tokens(f.max_tokens)?,
            priority: f.priority.map(|p| caller.tier.cap(Some(p))),
        })
    }

    fn multi_agent(
        &self,
        caller: &Caller,
        f: MultiAgentFields,
    ) -> Result<MultiAgentInput, FlowError> {
        self.text("task", &f.task)?;
        let roles: Vec<RoleSpecFields> = match f.roles {
            None => DEFAULT_ROLES
                .iter()
                .map(|(r, _)| RoleSpecFields {
                    role: r.to_string(),
                    ..RoleSpecFields::default()
                })
                .collect(),
            Some(rs) => rs
                .into_iter()
                .map(|r| match r {
                    RoleField::Name(role) => RoleSpecFields {
                        role,
                        ..RoleSpecFields::default()
                    },
                    RoleField::Full(spec) => spec,
                })
                .collect(),
        };
        if roles.is_empty() || roles.len() > MAX_AGENTS {
            return Err(FlowError::InvalidParams(format!(
                "a task takes 1 to {MAX_AGENTS} roles, not {}",
                roles.len()
            )));
        }
        let agents = roles
            .into_iter()
            .map(|r| self.agent(caller, r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<&str> = agents.iter().map(|a| a.role.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) || names.contains(&REVIEWER.0) {
            return Err(FlowError::InvalidParams(format!(
                "roles must be distinct, and {} is the final review's",
                REVIEWER.0
            )));
        }
        let mut reviewer = f.reviewer.unwrap_or_default();
        reviewer.role = REVIEWER.0.to_string();
        Ok(MultiAgentInput {
            llm: self.defaults(caller, f.model.as_deref(), f.max_tokens, f.priority)?,
            task: f.task,
            reviewer: self.agent(caller, reviewer)?,
            agents,
            on_agent_failure: f
                .on_agent_failure
                .unwrap_or(self.asks.config.workflows.on_agent_failure),
        })
    }

    fn codegen(&self, caller: &Caller, f: CodeGenFields) -> Result<CodeGenInput, FlowError> {
        let language = f.language.trim().to_lowercase();
        let wf = &self.asks.config.workflows;
        let tier = caller.tier.as_str().to_string();
        codegen::validate(&f.requirements, &language, &tier, wf.max_requirements_chars)
            .map_err(FlowError::InvalidParams)?;
        let review_timeout_secs = f.review_timeout_secs.unwrap_or(wf.review_timeout.as_secs());
        if !(1..=3600).contains(&review_timeout_secs) {
            return Err(FlowError::InvalidParams(
                "review_timeout_secs out of range 1..=3600".into(),
            ));
        }
        Ok(CodeGenInput {
            llm: self.defaults(caller, f.model.as_deref(), f.max_tokens, f.priority)?,
            requirements: f.requirements,
            language,
            tier,
            max_requirements_chars: wf.max_requirements_chars,
            review_timeout_secs,
            review_model: self.model(f.review_model.as_deref())?,
        })
    }
}
