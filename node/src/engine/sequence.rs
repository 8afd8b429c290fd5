//! One answer being generated: its own model state (KV cache), sampler and output stream, advanced
//! one step at a time by the scheduler.

use std::sync::Arc;
use std::time::Instant;

use candle_core::Tensor;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::constraint::Constraint;
use super::sampling::{Pushed, Sampler, TextStream};
use super::stats::GenMetrics;
use super::tokenizer::GgufTokenizer;
use crate::protocol::PrefixMark;

use super::{
    EngineError, FinishReason, GenEvent, GenSummary, SamplingParams, TokenLogprob, TopLogprob,
};

/// A model the scheduler can drive: one forward pass advances several sequences, each with its
/// own state (KV cache), over weights they all share.
pub trait StepModel: Send + 'static {
    /// Cloned for the prefix cache.
    type State: Send + Clone;

    /// Bytes `state` holds (the prefix cache's budget counts them).
    fn state_bytes(&self, state: &Self::State) -> usize;

    /// A fresh sequence state (empty cache).
    fn new_state(&self) -> Self::State;

    /// Feeds every entry's `tokens` at positions `pos..pos + tokens.len()` of its state, in one
    /// pass. Returns, per entry, the logits (one per vocabulary entry) for the token after its
    /// last one, or an empty vector where the entry did not ask for them. A pass that fails may
    /// be retried from the same positions.
    fn forward(&self, batch: &mut [Feed<'_, Self::State>]) -> Result<Vec<Vec<f32>>, String>;
}

/// One sequence's part of a forward pass.
pub struct Feed<'a, S> {
    pub tokens: &'a [u32],
    pub pos: usize,
    pub state: &'a mut S,
    pub logits: bool,
}

impl StepModel for Arc<orrery_cpu::Model> {
    type State = orrery_cpu::KvCache;

    fn new_state(&self) -> Self::State {
        self.new_cache()
    }

    fn state_bytes(&self, state: &Self::State) -> usize {
        state.bytes()
    }

    fn forward(&self, batch: &mut [Feed<'_, Self::State>]) -> Result<Vec<Vec<f32>>, String> {
        let mut feeds: Vec<orrery_cpu::Feed<'_>> = batch
            .iter_mut()
            .map(|f| orrery_cpu::Feed {
                tokens: f.tokens,
                pos: f.pos,
                cache: &mut *f.state,
                logits: f.logits,
            })
            .collect();
        orrery_cpu::Model::forward(self, &mut feeds).map_err(|e| e.to_string())
    }
}

/// `token`'s log-probability under `logits` (log-softmax), with the `k` most likely tokens.
fn token_logprob(logits: &[f32], token: u32, k: u8, tok: &GgufTokenizer) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&z| f64::from(z - max).exp()).sum();
    let log_z = f64::from(max) + sum.ln();
    let lp = |id: u32| (f64::from(logits[id as usize]) - log_z) as f32;
    let text = |id: u32| {
        let bytes = tok.token_bytes(id).to_vec();
        (String::from_utf8_lossy(&bytes).into_owned(), bytes)
    };
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let k = usize::from(k).min(ids.len());
    let top = if k == 0 {
        Vec::new()
    } else {
        let by_logit = |a: &u32, b: &u32| logits[*b as usize].total_cmp(&logits[*a as usize]);
        ids.select_nth_unstable_by(k - 1, by_logit);
        ids.truncate(k);
        ids.sort_by(by_logit);
        ids.iter()
            .map(|&id| {
                let (token, bytes) = text(id);
                TopLogprob {
                    token,
                    logprob: lp(id),
                    bytes,
                }
            })
            .collect()
    };
    let (token_text, bytes) = text(token);
    TokenLogprob {
        token: token_text,
        logprob: lp(token),
        bytes,
        top,
    }
}

/// A request that has been tokenized and waits for, or holds, a sequence slot.
pub struct Admitted {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    /// The response format's grammar state, if the answer has one.
    pub constraint: Option<Constraint>,
    pub cancel: CancellationToken,
    pub tx: UnboundedSender<GenEvent>,
    /// When `generate` was called.
    pub received: Instant,
    /// The conversation's marks (cache-aware placement), and the answer's resumed start: what a
    /// finished answer publishes from the prefix cache.
    pub marks: Vec<PrefixMark>,
    pub resume_text: String,
}

/// A finished sequence's state for the prefix cache: it holds `tokens`, of which the first
/// `prompt_len` are the prompt.
pub struct Finished<S> {
    pub tokens: Vec<u32>,
    pub state: S,
    pub prompt_len: usize,
    pub marks: Vec<PrefixMark>,
    pub resume_text: String,
    pub reason: FinishReason,
}

impl Admitted {
    /// Ends a request that never started (cancelled while queued).
    pub fn cancel_unstarted(self) {
        let summary = GenSummary {
            finish_reason: FinishReason::Cancelled,
            prompt_tokens: self.prompt.len() as u32,
            cached_tokens: 0,
            completion_tokens: 0,
            time_to_first_token: std::time::Duration::ZERO,
            total: self.received.elapsed(),
        };
        // The receiver may be gone; nobody is left to tell then.
        let _ = self.tx.send(GenEvent::Done(summary));
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled() || self.tx.is_closed()
    }
}

/// Limits that apply to every sequence.
#[derive(Clone, Copy, Debug)]
pub struct StepLimits {
    pub context_len: usize,
    pub prefill_chunk: usize,
}

pub struct Sequence<S> {
    state: S,
    req: Admitted,
    prefilled: usize,
    /// Tokens in the KV cache.
    pos: usize,
    /// Last sampled token, the next step's input.
    last: [u32; 1],
    generated: u32,
    sampler: Sampler,
    stream: TextStream,
    constraint: Option<Constraint>,
    first_token: Option<Instant>,
    /// Log-probabilities of tokens whose text is not emitted yet.
    pending: Vec<TokenLogprob>,
    /// The tokens fed so far, in order (the state holds the first `pos` of them).
    history: Vec<u32>,
    /// Prompt tokens the state held when the sequence started.
    cached: usize,
}

impl<S> Sequence<S> {
    /// A sequence whose `state` already holds the first `cached` tokens of its prompt (from the
    /// prefix cache; 0 for a fresh state): only the rest is fed.
    pub fn new(state: S, cached: usize, mut req: Admitted) -> Self {
        let cached = cached.min(req.prompt.len().saturating_sub(1));
        Sequence {
            history: req.prompt.clone(),
            cached,
            constraint: req.constraint.take(),
            sampler: Sampler::new(&req.params),
            stream: TextStream::new(&req.params.stop),
            state,
            req,
            prefilled: cached,
            pos: cached,
            last: [0],
            generated: 0,
            first_token: None,
            pending: Vec::new(),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.req.is_cancelled()
    }

    /// This sequence's part of the next pass: a chunk of the prompt, or its last token.
    pub fn feed(&mut self, limits: StepLimits) -> Feed<'_, S> {
        let prompt_len = self.req.prompt.len();
        if self.prefilled < prompt_len {
            let end = (self.prefilled + limits.prefill_chunk.max(1)).min(prompt_len);
            Feed {
                tokens: &self.req.prompt[self.prefilled..end],
                pos: self.prefilled,
                state: &mut self.state,
                logits: end == prompt_len,
            }
        } else {
            Feed {
                tokens: &self.last,
                pos: self.pos,
                state: &mut self.state,
                logits: true,
            }
        }
    }

    /// Takes the result of the pass that fed [`Self::feed`]: moves past the fed tokens and, when
    /// the pass gave logits, samples and emits the next token. Returns why the answer ended, if
    /// it did; the caller then calls [`Self::finish`].
    pub fn advance(
        &mut self,
        logits: &[f32],
        tok: &GgufTokenizer,
        limits: StepLimits,
        stats: &GenMetrics,
    ) -> Result<Option<FinishReason>, EngineError> {
        let prompt_len = self.req.prompt.len();
        if self.prefilled < prompt_len {
            let end = (self.prefilled + limits.prefill_chunk.max(1)).min(prompt_len);
            self.prefilled = end;
            self.pos = end;
            if end < prompt_len {
                return Ok(None);
            }
            stats.prompt_processed(prompt_len);
        } else {
            // The token fed in this pass: the last one sampled.
            self.history.push(self.last[0]);
            self.pos += 1;
        }
        let token = self.pick(logits)?;
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            stats.first_token(now - self.req.received);
        }
        if tok.is_end_of_turn(token) {
            return Ok(Some(FinishReason::Stop));
        }
        if let Some(c) = &mut self.constraint {
            c.accept(token)?;
        }
        if let Some(k) = self.req.params.logprobs {
            self.pending.push(token_logprob(logits, token, k, tok));
        }
        self.generated += 1;
        self.last = [token];
        stats.token_generated();
        match self.stream.push_bytes(tok.token_bytes(token)) {
            Pushed::Text(text) => self.emit(text),
            Pushed::Stopped(text) => {
                self.emit(text);
                return Ok(Some(FinishReason::Stop));
            }
        }
        if self
            .constraint
            .as_ref()
            .is_some_and(Constraint::is_finished)
        {
            return Ok(Some(FinishReason::Stop));
        }
        // The sampled token still has to be fed at position `pos`, which must be in the context.
        if self.generated >= self.req.params.max_tokens || self.pos >= limits.context_len {
            return Ok(Some(FinishReason::Length));
        }
        Ok(None)
    }

    /// Samples the next token; under a response format, only from the tokens it allows (the
    /// end of turn included only where the answer may end).
    fn pick(&mut self, logits: &[f32]) -> Result<u32, EngineError> {
        let masked;
        let logits = match &self.constraint {
            None => logits,
            Some(c) => {
                let mut copy = logits.to_vec();
                c.mask(&mut copy)?;
                masked = copy;
                masked.as_slice()
            }
        };
        let logits = Tensor::from_slice(logits, logits.len(), &candle_core::Device::Cpu)
            .map_err(|e| EngineError::Inference(format!("logits: {e}")))?;
        self.sampler.sample(&logits)
    }

    /// Sends `text`, after the log-probabilities of the tokens it completes.
    fn emit(&mut self, text: String) {
        if !text.is_empty() {
            if !self.pending.is_empty() {
                let _ = self
                    .req
                    .tx
                    .send(GenEvent::Logprobs(std::mem::take(&mut self.pending)));
            }
            // A dropped receiver is noticed as cancellation before the next step.
            let _ = self.req.tx.send(GenEvent::Token { text });
        }
    }

    /// Sends the remaining text and the summary; returns the state with the tokens it holds, for
    /// the prefix cache.
    pub fn finish(mut self, reason: FinishReason, stats: &GenMetrics) -> Finished<S> {
        let tail = self.stream.finish();
        self.emit(tail);
        let now = Instant::now();
        let total = now - self.req.received;
        let ttft = self
            .first_token
            .map_or(std::time::Duration::ZERO, |t| t - self.req.received);
        let decode = self
            .first_token
            .map_or(std::time::Duration::ZERO, |t| now - t);
        stats.finished(total, self.generated, decode);
        let summary = GenSummary {
            finish_reason: reason,
            prompt_tokens: self.req.prompt.len() as u32,
            cached_tokens: self.cached as u32,
            completion_tokens: self.generated,
            time_to_first_token: ttft,
            total,
        };
        let _ = self.req.tx.send(GenEvent::Done(summary));
        self.history.truncate(self.pos);
        Finished {
            tokens: self.history,
            state: self.state,
            prompt_len: self.req.prompt.len(),
            marks: self.req.marks,
            resume_text: self.req.resume_text,
            reason,
        }
    }

    /// Reports an error as the last event.
    pub fn fail(self, err: EngineError) {
        let _ = self.req.tx.send(GenEvent::Failed(err));
    }
}
