//! A synthetic engine for orchestration tests and benchmarks only: no model, a fixed token rate per
//! answer and deterministic text ("w1 w2 w3 ...", or "w1:7 w2:7 ..." for an ask with seed 7), with
//! the same queueing, cancellation, stop and resume behaviour as the real engine. Stamped, each
//! word also carries when it was generated ("w3@1733345000123456"), so a client can measure how
//! long delivery took.

use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc::UnboundedReceiver;

use super::jobs::{self, Job, JobQueue, JobSender, Refused, Waiting};
use super::sampling::{Pushed, TextStream};
use super::stats::GenMetrics;
use super::{
    ChatMessage, Engine, EngineError, EngineInfo, FinishReason, GenEvent, GenSummary,
    GenerateRequest, SamplingParams,
};

/// Longest the thread sleeps, so a cancel is seen quickly even at slow token rates.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// Behaviour of a [`SyntheticEngine`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Tokens per second of each answer (also the delay before the first token).
    pub tokens_per_second: f64,
    /// Answers produced concurrently; more wait in a queue.
    pub max_sequences: usize,
    /// Length of the whole answer (resumed part included), ending with `Stop`; `None` runs until
    /// `max_tokens` (`Length`).
    pub answer_tokens: Option<u32>,
    pub context_len: u32,
    /// Each word carries the wall-clock time it was handed to the stream (see [`stamped_word`]).
    pub stamped: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            tokens_per_second: 50.0,
            max_sequences: 4,
            answer_tokens: None,
            context_len: 4096,
            stamped: false,
        }
    }
}

/// The text of answer token `k` (0-based): "w1", " w2", " w3", ...
pub fn synthetic_token(k: u32) -> String {
    synthetic_word(k, 0)
}

/// The text of answer token `k` (0-based) of an ask with sampling seed `seed`: as
/// [`synthetic_token`] for seed 0, else every word carries the seed ("w1:7", " w2:7", ...). Asks
/// with distinct seeds get distinct answers, so a test can tell whose text a stream carries.
pub fn synthetic_word(k: u32, seed: u64) -> String {
    let space = if k == 0 { "" } else { " " };
    match seed {
        0 => format!("{space}w{}", k + 1),
        s => format!("{space}w{}:{s}", k + 1),
    }
}

/// [`synthetic_word`] stamped with `unix_us`, the wall-clock time it was generated in microseconds
/// since the Unix epoch: "w3@1733345000123456", or "w3:7@1733345000123456" with seed 7.
pub fn stamped_word(k: u32, seed: u64, unix_us: u64) -> String {
    format!("{}@{unix_us}", synthetic_word(k, seed))
}

/// The generation time a stamped word carries (microseconds since the Unix epoch); `None` for a
/// word without a stamp. Leading whitespace is ignored.
pub fn word_stamp(word: &str) -> Option<u64> {
    let (_, stamp) = word.trim_start().rsplit_once('@')?;
    stamp.parse().ok()
}

fn unix_micros() -> u64 {
    // A clock set before 1970 stamps 0; the stamp is a measurement, not a correctness matter.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Prompt tokens as the synthetic engine counts them: words plus a few per message for the
/// chat format, plus the generation prompt.
pub fn synthetic_prompt_tokens(messages: &[ChatMessage], resume_text: &str) -> u32 {
    let words: usize = messages
        .iter()
        .map(|m| m.content.split_whitespace().count() + 4)
        .sum();
    (words + 3 + resume_text.split_whitespace().count()) as u32
}

/// An [`Engine`] that produces deterministic text at a fixed rate.
pub struct SyntheticEngine {
    model_id: String,
    config: SyntheticConfig,
    jobs: JobSender,
    // Not joined on drop; the thread ends once the job channel closes.
    _thread: JoinHandle<()>,
}

/// A job waiting for a slot, with its prompt's token count.
struct Pending {
    req: GenerateRequest,
    tx: tokio::sync::mpsc::UnboundedSender<GenEvent>,
    received: Instant,
    prompt_tokens: u32,
}

impl Waiting for Pending {
    fn is_cancelled(&self) -> bool {
        self.req.cancel.is_cancelled() || self.tx.is_closed()
    }

    fn cancel_unstarted(self) {
        let summary = summary(&self, FinishReason::Cancelled, 0, None);
        let _ = self.tx.send(GenEvent::Done(summary));
    }

    fn fail(self, e: EngineError) {
        let _ = self.tx.send(GenEvent::Failed(e));
    }
}

struct Running {
    job: Pending,
    /// Index of the next answer token.
    next: u32,
    /// New tokens this sequence may still produce (`max_tokens` less the resumed part).
    budget: u32,
    generated: u32,
    due: Instant,
    stream: TextStream,
    first_token: Option<Instant>,
}

impl SyntheticEngine {
    pub fn new(model_id: impl Into<String>, config: SyntheticConfig) -> Result<Self, EngineError> {
        if !(config.tokens_per_second.is_finite() && config.tokens_per_second > 0.0) {
            return Err(EngineError::Load(
                "tokens_per_second must be positive".into(),
            ));
        }
        let model_id = model_id.into();
        let (jobs, queue) = jobs::channel();
        let stats = GenMetrics::new(&model_id);
        let thread = std::thread::Builder::new()
            .name(format!("synthetic-{model_id}"))
            .spawn(move || run(queue, config, stats))
            .map_err(|e| EngineError::Load(format!("starting the synthetic thread: {e}")))?;
        Ok(SyntheticEngine {
            model_id,
            config,
            jobs,
            _thread: thread,
        })
    }
}

impl Engine for SyntheticEngine {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn info(&self) -> EngineInfo {
        EngineInfo {
            model_id: self.model_id.clone(),
            kind: "synthetic".to_string(),
            context_len: self.config.context_len,
            memory_bytes: 0,
            max_sequences: self.config.max_sequences.max(1),
        }
    }

    fn count_tokens(
        &self,
        messages: &[ChatMessage],
        _params: &SamplingParams,
    ) -> Result<u32, EngineError> {
        Ok(synthetic_prompt_tokens(messages, ""))
    }

    fn generate(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent> {
        self.jobs.submit(req)
    }

    fn active_sequences(&self) -> usize {
        self.jobs.active()
    }

    fn queued(&self) -> usize {
        self.jobs.queued()
    }
}

/// Counts the prompt; refuses one that leaves no room in the context, and any response format
/// (it makes no JSON).
fn accept(job: Job, context_len: u32) -> Result<Pending, Refused> {
    if let Err(e) = super::refuse_response_format(&job.req.params, "the synthetic engine") {
        return Err(Refused(job.tx, e));
    }
    let prompt_tokens = synthetic_prompt_tokens(&job.req.messages, &job.req.resume_text);
    if prompt_tokens >= context_len {
        let e = EngineError::PromptTooLong {
            prompt_tokens,
            context_len,
        };
        return Err(Refused(job.tx, e));
    }
    Ok(Pending {
        req: job.req,
        tx: job.tx,
        received: job.received,
        prompt_tokens,
    })
}

fn run(mut queue: JobQueue<Pending>, config: SyntheticConfig, stats: GenMetrics) {
    let interval = Duration::from_secs_f64(1.0 / config.tokens_per_second);
    let max_sequences = config.max_sequences.max(1);
    let mut active: Vec<Running> = Vec::new();
    loop {
        let next_due = active.iter().map(|r| r.due).min();
        let sleep = next_due.map_or(MAX_SLEEP, |d| d.saturating_duration_since(Instant::now()));
        let context_len = config.context_len;
        if !queue.receive(active.len(), sleep.min(MAX_SLEEP), |job| {
            accept(job, context_len)
        }) {
            break;
        }
        queue.drop_cancelled();
        while let Some(job) = queue.start_next(active.len(), max_sequences) {
            stats.prompt_processed(job.prompt_tokens as usize);
            let resumed = job.req.resume_text.split_whitespace().count() as u32;
            active.push(Running {
                next: resumed,
                // `max_tokens` bounds the whole answer, the resumed part included.
                budget: job.req.params.max_tokens.saturating_sub(resumed),
                generated: 0,
                due: Instant::now() + interval,
                stream: TextStream::new(&job.req.params.stop),
                first_token: None,
                job,
            });
        }

        let now = Instant::now();
        let mut i = 0;
        while i < active.len() {
            match advance(&mut active[i], now, interval, &config, &stats) {
                None => i += 1,
                Some(reason) => {
                    queue.finished();
                    let mut done = active.remove(i);
                    let tail = done.stream.finish();
                    if !tail.is_empty() {
                        let _ = done.job.tx.send(GenEvent::Token { text: tail });
                    }
                    let s = summary(&done.job, reason, done.generated, done.first_token);
                    let decode = done.first_token.map_or(Duration::ZERO, |t| t.elapsed());
                    stats.finished(s.total, s.completion_tokens, decode);
                    let _ = done.job.tx.send(GenEvent::Done(s));
                }
            }
        }
    }
    for r in active {
        r.job.fail(EngineError::Shutdown);
    }
    queue.shut_down();
}

/// Emits the token that is due, if any; returns why the answer ended, if it did.
fn advance(
    r: &mut Running,
    now: Instant,
    interval: Duration,
    config: &SyntheticConfig,
    stats: &GenMetrics,
) -> Option<FinishReason> {
    if r.job.req.cancel.is_cancelled() || r.job.tx.is_closed() {
        return Some(FinishReason::Cancelled);
    }
    let answer_complete = |r: &Running| config.answer_tokens.is_some_and(|n| r.next >= n);
    // A resumed answer may already be complete.
    if answer_complete(r) {
        return Some(FinishReason::Stop);
    }
    if r.generated >= r.budget {
        return Some(FinishReason::Length);
    }
    if now < r.due {
        return None;
    }
    if r.first_token.is_none() {
        r.first_token = Some(now);
        stats.first_token(now - r.job.received);
    }
    let seed = r.job.req.params.seed;
    let text = if config.stamped {
        // Taken as late as possible: the token is handed to the stream right below.
        stamped_word(r.next, seed, unix_micros())
    } else {
        synthetic_word(r.next, seed)
    };
    r.next += 1;
    r.generated += 1;
    r.due += interval;
    stats.token_generated();
    let send = |text: String| {
        if !text.is_empty() {
            let _ = r.job.tx.send(GenEvent::Token { text });
        }
    };
    match r.stream.push_text(&text) {
        Pushed::Text(t) => send(t),
        Pushed::Stopped(t) => {
            send(t);
            return Some(FinishReason::Stop);
        }
    }
    if answer_complete(r) {
        return Some(FinishReason::Stop);
    }
    if r.generated >= r.budget || r.job.prompt_tokens + r.generated >= config.context_len {
        return Some(FinishReason::Length);
    }
    None
}

fn summary(
    job: &Pending,
    reason: FinishReason,
    generated: u32,
    first_token: Option<Instant>,
) -> GenSummary {
    GenSummary {
        finish_reason: reason,
        prompt_tokens: job.prompt_tokens,
        cached_tokens: 0,
        completion_tokens: generated,
        time_to_first_token: first_token.map_or(Duration::ZERO, |t| t - job.received),
        total: job.received.elapsed(),
    }
}

#[cfg(test)]
#[path = "synthetic_tests.rs"]
mod tests;
