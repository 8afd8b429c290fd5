//! The generate activity: runs on the node that holds the model, streams the answer to the origin
//! node's Broadcaster as it is produced, and heartbeats the text so far so that another node can
//! resume it if this one dies.

use super::non_retryable;
use crate::actors::model_holder::{ModelHolderMsg, Started};
use crate::actors::{NodeHandle, mesh};
use crate::engine::{
    ChatMessage, EngineError, FinishReason, GenEvent, GenSummary, GenerateRequest, SamplingParams,
    TokenLogprob,
};
use crate::protocol::tools;
use crate::protocol::{
    AskOutcome, INVALID_REQUEST, LiveEvent, LiveStage, ModelId, NodeId, Priority, RequestId,
};
use ractor::ActorRef;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// Heartbeats carry the answer so far; the SDK throttles what reaches the server.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(250);

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GenerateInput {
    pub request_id: RequestId,
    pub model: ModelId,
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    pub origin: NodeId,
    pub priority: Priority,
    /// Text already produced by an earlier placement.
    pub resume_text: String,
    pub attempt: u32,
}

/// Heartbeat details: the answer so far.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub text: String,
}

pub struct NodeActivities {
    node: NodeId,
    handle: NodeHandle,
}

impl NodeActivities {
    pub fn new(node: NodeId, handle: NodeHandle) -> Self {
        Self { node, handle }
    }
}

/// Tells the model holder the slot is free when the activity ends, however it ends.
struct FinishGuard(ractor::ActorRef<ModelHolderMsg>, RequestId);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        let _ = self.0.cast(ModelHolderMsg::Finished(self.1.clone()));
    }
}

fn retryable(msg: impl Into<String>) -> ActivityError {
    ActivityError::from(anyhow::anyhow!(msg.into()))
}

/// An answer in progress on this node: where it goes, and its text so far.
struct Answer<'a> {
    ctx: &'a ActivityContext,
    input: &'a GenerateInput,
    holder: ActorRef<ModelHolderMsg>,
    cancel: CancellationToken,
    text: String,
    beat: tokio::time::Interval,
    /// Log-probabilities of the answer's tokens so far (when asked for), and of the tokens of
    /// the text the engine sends next.
    logprobs: Vec<TokenLogprob>,
    pending: Vec<TokenLogprob>,
}

impl Answer<'_> {
    async fn heartbeat(&self) {
        let _ = self
            .ctx
            .record_heartbeat(Progress {
                text: self.text.clone(),
            })
            .await;
    }

    /// Waits for a sequence slot; heartbeats meanwhile, so waiting is not mistaken for a dead
    /// node. A cancel while waiting, or a move back to placement, is an error.
    async fn wait_for_slot(
        &mut self,
        mut reply: ractor::concurrency::OneshotReceiver<Started>,
    ) -> Result<UnboundedReceiver<GenEvent>, ActivityError> {
        self.heartbeat().await;
        loop {
            tokio::select! {
                started = &mut reply => return match started {
                    Ok(Started::Run(rx)) => Ok(rx),
                    Ok(Started::Cancelled) => Err(ActivityError::cancelled()),
                    Ok(Started::Moved(why)) => Err(retryable(format!("moved before it started: {why}"))),
                    Err(_) => Err(retryable("the model holder stopped before the ask started")),
                },
                _ = self.ctx.cancelled(), if !self.cancel.is_cancelled() => {
                    self.cancel.cancel();
                    let _ = self.holder.cast(ModelHolderMsg::Cancel(self.input.request_id.clone()));
                }
                _ = self.beat.tick() => self.heartbeat().await,
            }
        }
    }

    /// Relays the engine's text to the user's node and heartbeats it, until the engine ends.
    async fn stream(
        &mut self,
        mut events: UnboundedReceiver<GenEvent>,
    ) -> Result<GenSummary, EngineError> {
        let (origin, rid) = (&self.input.origin, &self.input.request_id);
        let mut chars = self.text.chars().count();
        let mut last_beat = Instant::now();
        loop {
            tokio::select! {
                // A long prompt prefill sends no token for a while: heartbeat on a timer too, so
                // a busy node is not mistaken for a dead one.
                _ = self.beat.tick() => self.heartbeat().await,
                _ = self.ctx.cancelled(), if !self.cancel.is_cancelled() => {
                    tracing::info!("cancellation requested through temporal");
                    self.cancel.cancel();
                }
                ev = events.recv() => match ev {
                    Some(GenEvent::Logprobs(l)) => self.pending.extend(l),
                    Some(GenEvent::Token { text: t }) => {
                        let logprobs = std::mem::take(&mut self.pending);
                        self.logprobs.extend(logprobs.iter().cloned());
                        mesh::publish(origin, rid, LiveEvent::Chunk { offset: chars, text: t.clone(), logprobs });
                        chars += t.chars().count();
                        self.text.push_str(&t);
                        if last_beat.elapsed() >= HEARTBEAT_EVERY {
                            self.heartbeat().await;
                            last_beat = Instant::now();
                        }
                    }
                    Some(GenEvent::Done(summary)) => return Ok(summary),
                    Some(GenEvent::Failed(e)) => return Err(e),
                    None => return Err(EngineError::Inference("the engine stopped mid-answer".into())),
                }
            }
        }
    }
}

/// An embedding request: one vector per message, computed on the blocking pool beside the
/// decoding (no sequence slot: nothing is generated).
async fn embed(
    node: &NodeId,
    holder: &ActorRef<ModelHolderMsg>,
    input: &GenerateInput,
    started: Instant,
) -> Result<AskOutcome, ActivityError> {
    let engine = ractor::call_t!(holder, ModelHolderMsg::Engine, 5000)
        .map_err(|e| retryable(format!("model holder: {e}")))?;
    let texts: Vec<String> = input.messages.iter().map(|m| m.content.clone()).collect();
    let done = tokio::task::spawn_blocking(move || engine.embed(&texts))
        .await
        .map_err(|e| retryable(format!("the embedding task ended early: {e}")))?;
    match done {
        Ok(e) => Ok(AskOutcome {
            text: String::new(),
            node: node.clone(),
            model: input.model.clone(),
            finish_reason: FinishReason::Stop,
            prompt_tokens: e.tokens,
            completion_tokens: 0,
            first_token_ms: 0,
            total_ms: started.elapsed().as_millis() as u64,
            attempts: input.attempt,
            tool_calls: Vec::new(),
            logprobs: Vec::new(),
            cached_tokens: 0,
            embeddings: e.vectors,
        }),
        Err(e) if e.is_bad_request() => Err(non_retryable(INVALID_REQUEST, e.to_string())),
        Err(e) => Err(retryable(e.to_string())),
    }
}

/// Where to resume from: the furthest known point of what the user was shown, the last
/// heartbeat of this placement, or what the workflow passed on.
async fn resume_point(ctx: &ActivityContext, input: &GenerateInput) -> String {
    let mut resume = input.resume_text.clone();
    if let Ok(Some(p)) = ctx.heartbeat_details().deserialize::<Progress>()
        && p.text.len() > resume.len()
    {
        resume = p.text;
    }
    if let Some(shown) = mesh::shown(&input.origin, &input.request_id).await
        && shown.len() > resume.len()
        && shown.starts_with(resume.as_str())
    {
        resume = shown;
    }
    resume
}

#[activities]
impl NodeActivities {
    #[activity]
    pub async fn generate(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: GenerateInput,
    ) -> Result<AskOutcome, ActivityError> {
        let started = Instant::now();
        let rid = input.request_id.clone();
        let span = tracing::info_span!("generate", request.id = %rid, model.id = %input.model, node.id = %self.node, attempt = input.attempt);
        let _enter = span.enter();
        let resume = resume_point(&ctx, &input).await;
        let holder = self.handle.holder(&input.model).ok_or_else(|| {
            retryable(format!(
                "model {} is not loaded on node {}",
                input.model, self.node
            ))
        })?;
        if input.params.embed {
            return embed(&self.node, &holder, &input, started).await;
        }
        let cancel = CancellationToken::new();
        let request = GenerateRequest {
            messages: input.messages.clone(),
            params: input.params.clone(),
            resume_text: resume.clone(),
            cancel: cancel.clone(),
        };
        let (reply_tx, reply_rx) = ractor::concurrency::oneshot();
        holder
            .cast(ModelHolderMsg::Generate {
                request_id: rid.clone(),
                origin: input.origin.clone(),
                priority: input.priority.clone(),
                request,
                reply: reply_tx.into(),
            })
            .map_err(|e| retryable(format!("model holder: {e}")))?;
        // The slot is freed however this activity ends.
        let _finished = FinishGuard(holder.clone(), rid.clone());
        let mut answer = Answer {
            ctx: &ctx,
            input: &input,
            holder,
            cancel,
            text: resume,
            beat: tokio::time::interval(Duration::from_secs(1)),
            logprobs: Vec::new(),
            pending: Vec::new(),
        };
        let events = answer.wait_for_slot(reply_rx).await?;
        let generating = LiveStage::Generating {
            node: self.node.clone(),
        };
        mesh::publish(&input.origin, &rid, LiveEvent::Status(generating));
        let result = answer.stream(events).await;
        // A barrier: everything published above reaches the user before the workflow completes.
        let _ = mesh::shown(&input.origin, &rid).await;
        let text = answer.text;
        let logprobs = answer.logprobs;
        match result {
            Ok(s) if s.finish_reason == FinishReason::Cancelled => {
                tracing::info!(chars = text.chars().count(), "generation cancelled");
                Err(ActivityError::cancelled())
            }
            Ok(s) => {
                let total_ms = started.elapsed().as_millis() as u64;
                tracing::info!(
                    tokens = s.completion_tokens,
                    ms = total_ms,
                    "generation done"
                );
                let tool_calls =
                    tools::calls_of(&text, input.params.tools.as_deref(), rid.as_str()).calls;
                Ok(AskOutcome {
                    tool_calls,
                    logprobs,
                    cached_tokens: s.cached_tokens,
                    embeddings: Vec::new(),
                    text,
                    node: self.node.clone(),
                    model: input.model.clone(),
                    finish_reason: s.finish_reason,
                    prompt_tokens: s.prompt_tokens,
                    completion_tokens: s.completion_tokens,
                    first_token_ms: s.time_to_first_token.as_millis() as u64,
                    total_ms,
                    attempts: input.attempt,
                })
            }
            // The engine decides what is the request's fault (a template that cannot render it
            // fails the same way on every node): no retry elsewhere.
            Err(e) if e.is_bad_request() => Err(non_retryable(INVALID_REQUEST, e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "generation failed");
                Err(retryable(e.to_string()))
            }
        }
    }
}
