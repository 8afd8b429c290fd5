//! Asks as every interface sees them (WebSocket, REST, the OpenAI and Ollama APIs): validate a
//! request, start its AskWorkflow, follow its live events, wait for its end, cancel it; and the
//! durable records of past asks (`records`). Nothing here knows HTTP: errors are [`AskError`].

mod error;
pub mod records;
mod request;

pub use error::AskError;
pub use request::{AskFields, AskRequest};

use crate::actors::broadcaster::{Followers, Subscriber};
use crate::actors::model_holder::ModelHolderMsg;
use crate::actors::resource_manager::ResourceManagerMsg;
use crate::actors::{NodeHandle, mesh};
use crate::config::Config;
use crate::protocol::{
    AskOutcome, CLUSTER_TASK_QUEUE, INVALID_REQUEST, LiveEvent, LiveStage, ModelId, NO_CAPACITY,
    Priority, RequestId, Role, UNKNOWN_MODEL,
};
use crate::workflows::ask::{AskInput, AskWorkflow};
use std::sync::Arc;
use std::time::Instant;
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    Client, WorkflowCancelOptions, WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_common::error::IncomingError;

/// How an ask ended.
#[derive(Clone, Debug)]
pub enum AskEnd {
    Done(AskOutcome),
    Failed { code: String, message: String },
    Cancelled,
}

#[derive(Clone)]
pub struct AskService {
    pub config: Arc<Config>,
    pub client: Client,
    pub temporal_ui: Option<String>,
    /// The sessions of this node that follow asks.
    pub followers: Followers,
    /// Whether asks carry the user as a search attribute (history is then filtered by Temporal).
    pub user_search: records::UserSearch,
}

impl AskService {
    /// Checks a request and turns it into the workflow's input.
    pub fn validate(&self, req: AskRequest) -> Result<AskInput, AskError> {
        let model = match req.model.as_deref() {
            None | Some("") => self.config.default_model.clone(),
            Some(m) => ModelId::new(m),
        };
        if self.config.model(&model).is_none() {
            return Err(AskError::UnknownModel(model));
        }
        let max_messages = self.config.limits.max_messages;
        if req.messages.len() > max_messages {
            return Err(AskError::InvalidParams(format!(
                "{} messages; an ask may carry at most {max_messages}",
                req.messages.len()
            )));
        }
        if req.messages.is_empty() || req.messages.iter().all(|m| m.content.trim().is_empty()) {
            return Err(AskError::EmptyPrompt);
        }
        if !matches!(
            req.messages.last().map(|m| &m.role),
            Some(Role::User | Role::Tool)
        ) {
            return Err(AskError::InvalidParams(
                "the last message must be the user's (or a tool's result)".into(),
            ));
        }
        if req.params.raw_prompt && req.messages.len() != 1 {
            return Err(AskError::InvalidParams(
                "a raw prompt is one message".into(),
            ));
        }
        // Everything the model reads counts: contents, earlier calls and the tools offered.
        let calls: usize = req
            .messages
            .iter()
            .flat_map(|m| &m.tool_calls)
            .map(|c| c.name.len() + c.arguments.chars().count())
            .sum();
        let tools: usize = req
            .params
            .tools
            .iter()
            .flat_map(|t| &t.tools)
            .map(|t| {
                t.name.len() + t.description.chars().count() + t.parameters_text.chars().count()
            })
            .sum();
        let chars: usize = req
            .messages
            .iter()
            .map(|m| m.content.chars().count())
            .sum::<usize>()
            + calls
            + tools;
        if chars > self.config.limits.max_prompt_chars {
            return Err(AskError::PromptTooLong {
                chars,
                limit: self.config.limits.max_prompt_chars,
            });
        }
        req.params
            .validate()
            .map_err(|e| AskError::InvalidParams(e.to_string()))?;
        if req.params.max_tokens > self.config.limits.max_tokens {
            return Err(AskError::InvalidParams(format!(
                "max_tokens {} is above this cluster's limit of {}",
                req.params.max_tokens, self.config.limits.max_tokens
            )));
        }
        Ok(AskInput {
            request_id: RequestId::generate(),
            user: req.user,
            model,
            messages: req.messages,
            params: req.params,
            priority: req.priority.unwrap_or(Priority::Normal),
            origin: self.config.node_id.clone(),
            heartbeat_timeout_secs: self.config.limits.heartbeat_timeout.as_secs(),
        })
    }

    /// Refuses, before any workflow starts, a prompt that cannot fit the model's context, when
    /// the model is loaded on this node (elsewhere the engine's own check answers it).
    pub async fn check_context(&self, node: &NodeHandle, input: &AskInput) -> Result<(), AskError> {
        let Some(holder) = node.holder(&input.model) else {
            return Ok(());
        };
        let Ok(engine) = ractor::call_t!(holder, ModelHolderMsg::Engine, 2000) else {
            return Ok(());
        };
        let info = engine.info();
        // Each text of an embedding request is checked on its own, by the engine.
        if input.params.embed {
            return Ok(());
        }
        // Remote backends tokenize for themselves; their count here is only an estimate.
        if !matches!(info.kind.as_str(), "gguf" | "synthetic") {
            return Ok(());
        }
        let messages = input.messages.clone();
        let params = input.params.clone();
        let counting = Arc::clone(&engine);
        let counted =
            tokio::task::spawn_blocking(move || counting.count_tokens(&messages, &params)).await;
        let context_len = info.context_len;
        match counted {
            Ok(Ok(prompt_tokens)) if prompt_tokens >= context_len => {
                Err(AskError::ContextExceeded {
                    model: input.model.clone(),
                    prompt_tokens,
                    context_len,
                })
            }
            // Counting failed (a template error, say): the engine reports it with the answer.
            _ => Ok(()),
        }
    }

    /// The Temporal UI page of an ask's workflow.
    pub fn workflow_url(&self, id: &RequestId) -> Option<String> {
        self.temporal_ui.as_ref().map(|ui| {
            format!(
                "{ui}/namespaces/{}/workflows/{id}",
                self.config.temporal.namespace
            )
        })
    }

    /// Follows the live events of `id` on this node's Broadcaster.
    pub fn follow(&self, id: &RequestId, tx: Subscriber) {
        self.followers.follow(id.clone(), tx);
    }

    pub fn unfollow(&self, id: &RequestId) {
        self.followers.unfollow(id);
    }

    /// Starts the ask's workflow.
    pub async fn start(&self, input: AskInput) -> Result<(), AskError> {
        let id = input.request_id.to_string();
        let opts = WorkflowStartOptions::new(CLUSTER_TASK_QUEUE, id.clone())
            .static_summary(summary(&input, self.config.temporal.payload_keys.is_some()))
            .memo(records::memo(&input))
            .maybe_search_attributes(self.user_search.attributes(&input.user))
            .priority(records::temporal_priority(&input.priority))
            // The start call hands the first workflow task straight to this node's own worker
            // (when it has a free slot), saving a round trip through the task queue.
            .enable_eager_workflow_start(true)
            .build();
        tracing::info!(request.id = %id, workflow.id = %id, user = %input.user,
                       model.id = %input.model, priority = ?input.priority, "starting ask");
        metrics::gauge!("orrery_asks_in_flight").increment(1.0);
        match self
            .client
            .start_workflow(AskWorkflow::run, input, opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                metrics::gauge!("orrery_asks_in_flight").decrement(1.0);
                tracing::error!(workflow.id = %id, error = %e, "could not start the ask workflow");
                Err(AskError::Unavailable(format!(
                    "the control plane (Temporal) did not take the ask: {e}"
                )))
            }
        }
    }

    /// Waits for the ask's end, from its workflow's durable result, and counts it. Called once per
    /// ask started on this node (it settles `orrery_asks_in_flight`).
    pub async fn wait(&self, id: &RequestId) -> AskEnd {
        let started = Instant::now();
        let end = self.outcome(id).await;
        let outcome = match &end {
            AskEnd::Done(_) => "done",
            AskEnd::Failed { .. } => "failed",
            AskEnd::Cancelled => "cancelled",
        };
        let elapsed = started.elapsed();
        if let AskEnd::Done(o) = &end {
            // Time before generation began: planning and waiting for a sequence slot.
            let queued = elapsed.saturating_sub(std::time::Duration::from_millis(o.total_ms));
            metrics::histogram!("orrery_queue_wait_seconds").record(queued.as_secs_f64());
        }
        metrics::gauge!("orrery_asks_in_flight").decrement(1.0);
        metrics::counter!("orrery_requests_total", "outcome" => outcome).increment(1);
        metrics::histogram!("orrery_request_seconds", "outcome" => outcome)
            .record(elapsed.as_secs_f64());
        end
    }

    /// The ask's end from its workflow's durable result (waits while it runs). While Temporal
    /// does not answer, it keeps waiting (up to `limits.temporal_outage`), and tells the ask's
    /// follower on this node it is reconnecting: the ask itself goes on.
    pub async fn outcome(&self, id: &RequestId) -> AskEnd {
        let handle = self
            .client
            .get_workflow_handle::<AskWorkflow>(id.to_string());
        let deadline = Instant::now() + self.config.limits.temporal_outage;
        let mut backoff = std::time::Duration::from_millis(250);
        let mut told = false;
        loop {
            let e = match handle.get_result(WorkflowGetResultOptions::default()).await {
                Ok(outcome) => return AskEnd::Done(outcome),
                Err(WorkflowGetResultError::Cancelled { .. }) => return AskEnd::Cancelled,
                Err(WorkflowGetResultError::Failed(e)) => {
                    let (code, message) = describe_failure(&e);
                    return AskEnd::Failed { code, message };
                }
                Err(e) => e,
            };
            let transient = matches!(
                &e,
                WorkflowGetResultError::Rpc(_) | WorkflowGetResultError::Other(_)
            );
            if !transient || Instant::now() >= deadline {
                let code = if transient { "unavailable" } else { "internal" };
                return AskEnd::Failed {
                    code: code.into(),
                    message: e.to_string(),
                };
            }
            if !told {
                tracing::warn!(request.id = %id, error = %e, "temporal is not answering; waiting");
                let reconnecting = LiveEvent::Status(LiveStage::Reconnecting);
                self.followers.deliver(id.clone(), reconnecting);
                told = true;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
        }
    }

    /// Cancels an ask: durably through Temporal, and at once on every node's engines so the
    /// answer stops within a token rather than at the next heartbeat.
    pub async fn cancel(&self, id: &RequestId) -> Result<(), AskError> {
        let handle = self
            .client
            .get_workflow_handle::<AskWorkflow>(id.to_string());
        handle
            .cancel(WorkflowCancelOptions::default())
            .await
            .map_err(|e| {
                tracing::info!(request.id = %id, error = %e, "cancel refused");
                AskError::UnknownRequest(id.clone())
            })?;
        for rm in mesh::resource_managers() {
            let _ = rm.cast(ResourceManagerMsg::CancelAsk(id.clone()));
        }
        Ok(())
    }
}

/// The workflow's summary in the Temporal UI. Summaries are not payloads the codec encrypts, so
/// with encryption on it names the model only, never the prompt.
fn summary(input: &AskInput, encrypted: bool) -> String {
    if encrypted {
        return input.model.to_string();
    }
    let q: String = input
        .messages
        .last()
        .map(|m| m.content.chars().take(80).collect())
        .unwrap_or_default();
    format!("{} · {}", input.model, q)
}

/// A failed workflow's stable error code and message.
fn describe_failure(e: &IncomingError) -> (String, String) {
    let mut cur = Some(e);
    while let Some(err) = cur {
        match err {
            IncomingError::Application(a) => {
                let code = match a.type_name() {
                    Some(UNKNOWN_MODEL) => "unknown_model",
                    Some(INVALID_REQUEST) => "invalid_params",
                    Some(NO_CAPACITY) => "no_capacity",
                    _ => "internal",
                };
                return (code.into(), a.source_error().to_string());
            }
            IncomingError::Activity(a) => cur = a.cause(),
            other => return ("internal".into(), other.to_string()),
        }
    }
    ("internal".into(), e.to_string())
}
