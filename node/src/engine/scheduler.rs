//! The inference thread: one OS thread per engine, off the async runtime, that takes jobs from a
//! channel, keeps up to `max_sequences` answers in flight and advances them all with one forward
//! pass per step (continuous batching: answers join and leave between steps, prompts are fed in
//! chunks beside the others' next tokens). A panic in the model fails that answer only.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::FinishReason;
use super::constraint::{Constraint, LazyVocab};
use super::jobs::{self, Job, JobQueue, JobSender, Refused, Waiting};
use super::prefix_cache::{PrefixCache, PublishedMarks};
use super::sequence::{Admitted, Finished, Sequence, StepLimits, StepModel};
use super::stats::GenMetrics;
use super::template::ChatTemplate;
use super::tokenizer::GgufTokenizer;
use super::{EngineError, GenEvent, GenerateRequest};

/// How the scheduler shares out its thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Answers decoded concurrently; more wait in a queue.
    pub max_sequences: usize,
    /// Prompt tokens per forward pass. Long prompts are fed in chunks so the other answers keep
    /// streaming and a cancel is seen between chunks.
    pub prefill_chunk: usize,
    /// Tokens (prompt and answer) one sequence may hold.
    pub context_len: usize,
    /// Bytes of finished answers' states kept for prompts that start the same way (0: none).
    pub prefix_cache_bytes: usize,
}

/// The engine's side of the inference thread. Dropping it closes the job channel; the thread then
/// fails what it still holds with [`EngineError::Shutdown`] and exits after its current step.
pub struct SchedulerHandle {
    jobs: JobSender,
    marks: PublishedMarks,
    // Not joined on drop: joining could block an async caller for a whole forward pass, and the
    // thread ends on its own once the channel closes.
    _thread: JoinHandle<()>,
}

impl SchedulerHandle {
    /// Starts the thread. Every sequence gets a fresh `base.new_state()`.
    pub fn spawn<M: StepModel>(
        name: &str,
        base: M,
        tokenizer: Arc<GgufTokenizer>,
        template: Arc<ChatTemplate>,
        config: SchedulerConfig,
        stats: GenMetrics,
    ) -> std::io::Result<Self> {
        let (jobs, queue) = jobs::channel();
        let marks = PublishedMarks::default();
        let worker = Worker {
            base,
            tokenizer,
            template,
            config: SchedulerConfig {
                max_sequences: config.max_sequences.max(1),
                prefill_chunk: config.prefill_chunk.max(1),
                ..config
            },
            stats,
            vocab: LazyVocab::default(),
            active: Vec::new(),
            queue,
            cache: PrefixCache::new(config.prefix_cache_bytes, marks.clone()),
        };
        let thread = std::thread::Builder::new()
            .name(format!("engine-{name}"))
            .spawn(move || worker.run())?;
        Ok(SchedulerHandle {
            jobs,
            marks,
            _thread: thread,
        })
    }

    /// Queues a generation. Parameter errors and a stopped thread are reported on the channel.
    pub fn submit(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent> {
        self.jobs.submit(req)
    }

    pub fn active(&self) -> usize {
        self.jobs.active()
    }

    pub fn queued(&self) -> usize {
        self.jobs.queued()
    }

    /// The conversation marks the prefix cache holds now.
    pub fn cached_marks(&self) -> Vec<u64> {
        self.marks.get()
    }
}

impl Waiting for Admitted {
    fn is_cancelled(&self) -> bool {
        Admitted::is_cancelled(self)
    }

    fn cancel_unstarted(self) {
        Admitted::cancel_unstarted(self)
    }

    fn fail(self, e: EngineError) {
        let _ = self.tx.send(GenEvent::Failed(e));
    }
}

struct Worker<M: StepModel> {
    base: M,
    tokenizer: Arc<GgufTokenizer>,
    template: Arc<ChatTemplate>,
    config: SchedulerConfig,
    stats: GenMetrics,
    vocab: LazyVocab,
    active: Vec<Sequence<M::State>>,
    queue: JobQueue<Admitted>,
    cache: PrefixCache<M::State>,
}

impl<M: StepModel> Worker<M> {
    fn run(mut self) {
        loop {
            let running = self.active.len();
            let prompter = Prompter {
                tokenizer: &self.tokenizer,
                template: &self.template,
                vocab: &self.vocab,
                context_len: self.config.context_len,
            };
            let open = self
                .queue
                .receive(running, Duration::ZERO, |job| prompter.accept(job));
            if !open {
                return self.shut_down();
            }
            self.queue.drop_cancelled();
            self.admit();
            self.step_all();
        }
    }

    fn admit(&mut self) {
        while let Some(req) = self
            .queue
            .start_next(self.active.len(), self.config.max_sequences)
        {
            let (state, cached) = self
                .cache
                .lookup(&req.prompt, &self.stats)
                .unwrap_or_else(|| (self.base.new_state(), 0));
            tracing::debug!(prompt_tokens = req.prompt.len(), cached, "sequence started");
            self.active.push(Sequence::new(state, cached, req));
        }
    }

    /// One forward pass for every active sequence, then each samples its next token.
    fn step_all(&mut self) {
        let limits = StepLimits {
            context_len: self.config.context_len,
            prefill_chunk: self.config.prefill_chunk,
        };
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].is_cancelled() {
                let done = self.remove(i).finish(FinishReason::Cancelled, &self.stats);
                self.keep(done);
            } else {
                i += 1;
            }
        }
        if self.active.is_empty() {
            return;
        }
        let results = self.forward_all(limits);
        // Back to front, so removing one leaves the indices still to visit in place.
        for (i, result) in results.into_iter().enumerate().rev() {
            let seq = &mut self.active[i];
            let outcome = result.and_then(|logits| {
                catch_unwind(AssertUnwindSafe(|| {
                    seq.advance(&logits, &self.tokenizer, limits, &self.stats)
                }))
                .unwrap_or_else(|panic| Err(panic_error("sampling", panic)))
            });
            match outcome {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    tracing::debug!(?reason, "sequence finished");
                    let done = self.remove(i).finish(reason, &self.stats);
                    self.keep(done);
                }
                Err(e) => {
                    tracing::error!(error = %e, "generation failed");
                    self.remove(i).fail(e);
                }
            }
        }
    }

    /// The batched pass, as one logits result per active sequence. If the pass fails, each
    /// sequence is fed again alone (passes may be retried), so only the answers that fail on
    /// their own fail.
    fn forward_all(&mut self, limits: StepLimits) -> Vec<Result<Vec<f32>, EngineError>> {
        let n = self.active.len();
        let base = &self.base;
        let mut feeds: Vec<_> = self.active.iter_mut().map(|s| s.feed(limits)).collect();
        match run_pass(base, &mut feeds) {
            Ok(logits) => return logits.into_iter().map(Ok).collect(),
            Err(e) if n == 1 => return vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, sequences = n, "batched pass failed; retrying each alone")
            }
        }
        drop(feeds);
        self.active
            .iter_mut()
            .map(|s| run_pass(base, &mut [s.feed(limits)]).map(|mut l| l.remove(0)))
            .collect()
    }

    /// Offers a finished answer's state to the prefix cache, with the conversation marks it
    /// serves: the prompt's, and (for an answer that ended on its own) the prompt's followed by
    /// the answer, where the next turn starts.
    fn keep(&mut self, done: Finished<M::State>) {
        let bytes = self.base.state_bytes(&done.state);
        let mut marks: Vec<u64> = done.marks.iter().map(|m| m.hash).collect();
        if let Some(last) = done.marks.last()
            && done.reason != FinishReason::Cancelled
        {
            let answer = done.tokens.get(done.prompt_len..).unwrap_or_default();
            let text = format!("{}{}", done.resume_text, self.tokenizer.decode(answer));
            marks.push(crate::protocol::answer_mark(last, &text).hash);
        }
        self.cache
            .insert(done.tokens, marks, done.state, bytes, &self.stats);
    }

    fn remove(&mut self, i: usize) -> Sequence<M::State> {
        self.queue.finished();
        self.active.remove(i)
    }

    fn shut_down(mut self) {
        for seq in self.active.drain(..) {
            seq.fail(EngineError::Shutdown);
        }
        self.queue.shut_down();
        tracing::debug!("inference thread stopped");
    }
}

/// What the thread needs to take a job in: render, tokenize and constrain its prompt.
struct Prompter<'a> {
    tokenizer: &'a GgufTokenizer,
    template: &'a ChatTemplate,
    vocab: &'a LazyVocab,
    context_len: usize,
}

impl Prompter<'_> {
    /// Renders and tokenizes the prompt and builds the answer's grammar constraint (at the
    /// resumed point); refuses a request it cannot take.
    fn accept(&self, job: Job) -> Result<Admitted, Refused> {
        let prepared = catch_unwind(AssertUnwindSafe(|| {
            let prompt = self.prompt_tokens(&job.req)?;
            let format = job.req.params.response_format.as_deref();
            let vocab = || self.vocab.get(self.tokenizer);
            Ok((
                prompt,
                Constraint::new(format, &job.req.resume_text, vocab)?,
            ))
        }));
        let result =
            prepared.unwrap_or_else(|panic| Err(panic_error("preparing the prompt", panic)));
        // `max_tokens` bounds the whole answer: a resumed answer has already spent part of it.
        let resumed = if job.req.resume_text.is_empty() {
            0
        } else {
            self.tokenizer
                .encode(&job.req.resume_text)
                .map(|t| t.len() as u32)
                .unwrap_or(0)
        };
        let marks = crate::protocol::conversation_marks(&job.req.messages, &job.req.params);
        let mut params = job.req.params;
        params.max_tokens = params.max_tokens.saturating_sub(resumed);
        match result {
            Ok((prompt, constraint)) => Ok(Admitted {
                prompt,
                params,
                constraint,
                cancel: job.req.cancel,
                tx: job.tx,
                received: job.received,
                marks,
                resume_text: job.req.resume_text,
            }),
            Err(e) => Err(Refused(job.tx, e)),
        }
    }

    fn prompt_tokens(&self, req: &GenerateRequest) -> Result<Vec<u32>, EngineError> {
        let segments =
            self.template
                .request_segments(&req.messages, &req.params, &req.resume_text)?;
        let prompt = self.tokenizer.encode_prompt(&segments)?;
        if prompt.is_empty() {
            return Err(EngineError::InvalidParams("the prompt is empty".into()));
        }
        // At least one position must remain for the first answer token.
        if prompt.len() >= self.context_len {
            return Err(EngineError::PromptTooLong {
                prompt_tokens: prompt.len() as u32,
                context_len: self.context_len as u32,
            });
        }
        Ok(prompt)
    }
}

/// One forward pass, with panics and a wrong number of results turned into errors.
fn run_pass<M: StepModel>(
    model: &M,
    feeds: &mut [super::sequence::Feed<'_, M::State>],
) -> Result<Vec<Vec<f32>>, EngineError> {
    let n = feeds.len();
    match catch_unwind(AssertUnwindSafe(|| model.forward(feeds))) {
        Ok(Ok(logits)) if logits.len() == n => Ok(logits),
        Ok(Ok(logits)) => Err(EngineError::Inference(format!(
            "the model returned {} results for {n} sequences",
            logits.len()
        ))),
        Ok(Err(e)) => Err(EngineError::Inference(e)),
        Err(panic) => Err(panic_error("inference", panic)),
    }
}

fn panic_error(during: &str, panic: Box<dyn Any + Send>) -> EngineError {
    let msg = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    EngineError::Inference(format!("panic during {during}: {msg}"))
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
