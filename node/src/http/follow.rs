//! Starting an ask for the HTTP APIs (OpenAI, Ollama, REST) and following it to its end as text
//! deltas. Chunks come from this node's Broadcaster and are applied by offset; an HTTP stream
//! cannot take text back, so only text that extends what was sent goes out, and the workflow's
//! durable result completes it. A client that goes away cancels its ask.

use super::AppState;
use super::error::ApiError;
use crate::actors::limits::Lease;
use crate::actors::mesh;
use crate::asks::{AskEnd, AskRequest, AskService};
use crate::protocol::LiveEvent;
use crate::protocol::chat::TokenLogprob;
use crate::protocol::{ModelId, NodeId, RequestId};
use crate::users::Caller;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tracing::Instrument;

/// What a followed ask sends, in order: text, then its end.
#[derive(Debug)]
pub enum Delta {
    /// The log-probabilities of the tokens of the `Text` that follows (when the ask wants them).
    Logprobs(Vec<TokenLogprob>),
    Text(String),
    End {
        end: AskEnd,
        elapsed: Duration,
    },
}

/// A started ask.
pub struct Started {
    pub id: RequestId,
    pub model: ModelId,
    pub accepted_at: Instant,
}

/// Validates an ask of `caller`, admits it under their limits and starts its workflow. The
/// caller's user and tier decide the owner and the priority (a request may only lower it).
pub(super) async fn admit_and_start(
    state: &AppState,
    caller: &Caller,
    mut req: AskRequest,
    api: &'static str,
    before_start: impl FnOnce(&RequestId),
) -> Result<(Started, Lease, NodeId), ApiError> {
    req.user = caller.user.to_string();
    req.priority = Some(caller.tier.cap(req.priority.take()));
    let input = state.asks.validate(req)?;
    state.asks.check_context(&state.node, &input).await?;
    let permit = state
        .auth
        .admit(&state.node, &state.asks.config.node_id, caller)
        .await?;
    let id = input.request_id.clone();
    let model = input.model.clone();
    let origin = input.origin.clone();
    let span = tracing::Span::current();
    span.record("request.id", id.as_str());
    span.record("workflow.id", id.as_str());
    before_start(&id);
    if let Err(e) = state.asks.start(input).await {
        state.asks.unfollow(&id);
        return Err(e.into());
    }
    metrics::counter!("orrery_api_asks_total", "api" => api).increment(1);
    Ok((
        Started {
            id,
            model,
            accepted_at: Instant::now(),
        },
        permit,
        origin,
    ))
}

/// Starts an ask and follows it: the receiver gets its text as it is generated, then its end.
/// Dropping the receiver before the end cancels the ask.
pub async fn start_followed(
    state: &AppState,
    caller: &Caller,
    req: AskRequest,
    api: &'static str,
) -> Result<(Started, UnboundedReceiver<Delta>), ApiError> {
    let (live_tx, live_rx) = mpsc::unbounded_channel();
    // Follow before starting, so no chunk can come before the subscription.
    let (started, permit, origin) = admit_and_start(state, caller, req, api, |id| {
        state.asks.follow(id, live_tx);
    })
    .await?;
    let (tx, rx) = mpsc::unbounded_channel();
    let span = tracing::info_span!("ask", request.id = %started.id, workflow.id = %started.id,
                                   user = %caller.user, api);
    let relay = Relay {
        asks: state.asks.clone(),
        id: started.id.clone(),
        origin,
        accepted_at: started.accepted_at,
        api,
    };
    state
        .tasks
        .spawn(relay.run(live_rx, tx, permit).instrument(span));
    Ok((started, rx))
}

/// Starts several asks (OpenAI's `n`, a list of prompts) and follows them all: their deltas arrive
/// tagged with the ask's index. Dropping the receiver cancels every one. When one cannot start,
/// those already started are cancelled and its error is returned.
pub async fn start_many(
    state: &AppState,
    caller: &Caller,
    reqs: Vec<AskRequest>,
    api: &'static str,
) -> Result<(Vec<Started>, UnboundedReceiver<(usize, Delta)>), ApiError> {
    let mut started = Vec::with_capacity(reqs.len());
    let mut receivers = Vec::with_capacity(reqs.len());
    for req in reqs {
        // On an error, `receivers` is dropped: the asks it follows are cancelled.
        let (s, rx) = start_followed(state, caller, req, api).await?;
        started.push(s);
        receivers.push(rx);
    }
    let (tx, rx) = mpsc::unbounded_channel();
    for (i, mut one) in receivers.into_iter().enumerate() {
        let tx = tx.clone();
        state.tasks.spawn(async move {
            loop {
                tokio::select! {
                    d = one.recv() => match d {
                        Some(d) => if tx.send((i, d)).is_err() { break },
                        None => break,
                    },
                    // The client went away: dropping `one` cancels the ask.
                    _ = tx.closed() => break,
                }
            }
        });
    }
    Ok((started, rx))
}

/// Collects the whole answers of asks started with [`start_many`], in their order.
pub async fn collect_many(
    mut rx: UnboundedReceiver<(usize, Delta)>,
    n: usize,
) -> Vec<(AskEnd, Duration)> {
    let mut ends: Vec<Option<(AskEnd, Duration)>> = (0..n).map(|_| None).collect();
    while ends.iter().any(Option::is_none) {
        match rx.recv().await {
            Some((i, Delta::End { end, elapsed })) => {
                if let Some(slot) = ends.get_mut(i) {
                    *slot = Some((end, elapsed));
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    ends.into_iter()
        .map(|e| {
            e.unwrap_or_else(|| {
                (
                    AskEnd::Failed {
                        code: "internal".into(),
                        message: "the ask's follower stopped before its end".into(),
                    },
                    Duration::ZERO,
                )
            })
        })
        .collect()
}

/// Starts an ask nobody follows live (REST): a tracked task holds the caller's permit until the
/// ask ends and settles its metrics.
pub async fn start_detached(
    state: &AppState,
    caller: &Caller,
    req: AskRequest,
    api: &'static str,
) -> Result<Started, ApiError> {
    let (started, permit, _) = admit_and_start(state, caller, req, api, |_| {}).await?;
    let (asks, id) = (state.asks.clone(), started.id.clone());
    let span = tracing::info_span!("ask", request.id = %id, workflow.id = %id,
                                   user = %caller.user, api);
    state.tasks.spawn(
        async move {
            let _permit = permit;
            let end = asks.wait(&id).await;
            tracing::info!(end = ?end_name(&end), "ask ended");
        }
        .instrument(span),
    );
    Ok(started)
}

fn end_name(end: &AskEnd) -> &'static str {
    match end {
        AskEnd::Done(_) => "done",
        AskEnd::Failed { .. } => "failed",
        AskEnd::Cancelled => "cancelled",
    }
}

struct Relay {
    asks: AskService,
    id: RequestId,
    origin: NodeId,
    accepted_at: Instant,
    api: &'static str,
}

/// Text sent so far, by chars.
#[derive(Default)]
struct Sent {
    chars: usize,
}

impl Sent {
    /// The part of a chunk at `offset` that extends what was sent, if any.
    fn extend(&mut self, offset: usize, text: &str) -> Option<String> {
        let n = text.chars().count();
        if offset + n <= self.chars {
            return None;
        }
        let new: String = text
            .chars()
            .skip(self.chars.saturating_sub(offset))
            .collect();
        self.chars = offset + n;
        Some(new)
    }
}

impl Relay {
    async fn run(
        self,
        mut live_rx: UnboundedReceiver<(RequestId, LiveEvent)>,
        tx: UnboundedSender<Delta>,
        permit: Lease,
    ) {
        let _permit = permit;
        let mut sent = Sent::default();
        let mut abandoned = false;
        let wait = self.asks.wait(&self.id);
        tokio::pin!(wait);
        let end = loop {
            tokio::select! {
                biased;
                Some((_, ev)) = live_rx.recv() => self.forward(ev, &mut sent, &tx),
                end = &mut wait => break end,
                _ = tx.closed(), if !abandoned => {
                    abandoned = true;
                    tracing::info!("the client went away; cancelling its ask");
                    if let Err(e) = self.asks.cancel(&self.id).await {
                        tracing::warn!(error = %e, "could not cancel an abandoned ask");
                    }
                }
            }
        };
        // The Broadcaster answers after forwarding every chunk published before: drain them.
        let _ = mesh::shown(&self.origin, &self.id).await;
        while let Ok((_, ev)) = live_rx.try_recv() {
            self.forward(ev, &mut sent, &tx);
        }
        self.asks.unfollow(&self.id);
        if let AskEnd::Done(o) = &end {
            let rest: String = o.text.chars().skip(sent.chars).collect();
            if !rest.is_empty() {
                let _ = tx.send(Delta::Text(rest));
            }
        }
        tracing::info!(end = end_name(&end), "ask ended");
        let _ = tx.send(Delta::End {
            end,
            elapsed: self.accepted_at.elapsed(),
        });
    }

    fn forward(&self, ev: LiveEvent, sent: &mut Sent, tx: &UnboundedSender<Delta>) {
        let LiveEvent::Chunk {
            offset,
            text,
            logprobs,
        } = ev
        else {
            return;
        };
        let first = sent.chars == 0;
        if let Some(new) = sent.extend(offset, &text) {
            if !logprobs.is_empty() {
                let _ = tx.send(Delta::Logprobs(logprobs));
            }
            if first {
                metrics::histogram!("orrery_api_time_to_first_token_seconds", "api" => self.api)
                    .record(self.accepted_at.elapsed().as_secs_f64());
            }
            let _ = tx.send(Delta::Text(new));
        }
    }
}

/// Collects a followed ask's whole answer (non-streaming responses).
pub async fn collect(mut rx: UnboundedReceiver<Delta>) -> (AskEnd, Duration) {
    while let Some(d) = rx.recv().await {
        if let Delta::End { end, elapsed } = d {
            return (end, elapsed);
        }
    }
    (
        AskEnd::Failed {
            code: "internal".into(),
            message: "the ask's follower stopped before its end".into(),
        },
        Duration::ZERO,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_that_extends_the_answer_is_sent() {
        // (offset, chunk, wanted new text)
        let table: &[(usize, &str, Option<&str>)] = &[
            (0, "The", Some("The")),
            (3, " cap", Some(" cap")),
            (3, " cap", None),
            (0, "The c", None),
            (5, "apital", Some("ital")),
            (11, "é!", Some("é!")),
        ];
        let mut s = Sent::default();
        for (off, text, want) in table {
            assert_eq!(
                s.extend(*off, text).as_deref(),
                *want,
                "chunk {off} {text:?}"
            );
        }
        assert_eq!(s.chars, 13);
    }
}
