//! Scheduler tests against a scripted model (no weights): finish reasons, chunked prefill,
//! concurrency, queueing, cancellation, panics and model errors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::engine::sequence::Feed;
use crate::engine::testutil::{collect, tiny_byte_ids, tiny_tokenizer, wait_until};
use crate::engine::{ChatMessage, FinishReason, Role, SamplingParams};

const LIMIT: Duration = Duration::from_secs(10);
const EOS: u32 = 1;

/// Call `k` of a sequence returns logits that make greedy sampling pick `script[k]` (EOS after
/// the end); calls are logged as (tokens, pos). A retried call (same position again) counts once.
#[derive(Clone)]
struct Scripted {
    script: Arc<Vec<u32>>,
    vocab: usize,
    delay: Duration,
    panic_on_call: Option<usize>,
    fail_on_call: Option<usize>,
    log: Arc<Mutex<Vec<(usize, usize)>>>,
}

impl Scripted {
    fn new(answer_ids: Vec<u32>) -> Self {
        Scripted {
            script: Arc::new(answer_ids),
            vocab: tiny_tokenizer().vocab_size(),
            delay: Duration::ZERO,
            panic_on_call: None,
            fail_on_call: None,
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn answer(text: &str) -> Self {
        Self::new(tiny_byte_ids(text))
    }
}

/// A sequence of [`Scripted`]: calls made, and the position of the last.
#[derive(Default, Clone)]
struct Calls {
    made: usize,
    last_pos: Option<usize>,
}

impl Scripted {
    fn step(&self, tokens: &[u32], pos: usize, calls: &mut Calls) -> Result<Vec<f32>, String> {
        std::thread::sleep(self.delay);
        self.log
            .lock()
            .map_err(|e| e.to_string())?
            .push((tokens.len(), pos));
        if calls.last_pos != Some(pos) {
            calls.made += 1;
            calls.last_pos = Some(pos);
        }
        let call = calls.made - 1;
        if self.panic_on_call == Some(call) {
            panic!("scripted panic");
        }
        if self.fail_on_call == Some(call) {
            return Err("scripted failure".into());
        }
        let next = self.script.get(call).copied().unwrap_or(EOS) as usize;
        Ok((0..self.vocab)
            .map(|i| if i == next { 10.0 } else { 0.0 })
            .collect())
    }
}

impl StepModel for Scripted {
    type State = Calls;

    fn new_state(&self) -> Calls {
        Calls::default()
    }

    fn state_bytes(&self, _: &Calls) -> usize {
        0
    }

    fn forward(&self, batch: &mut [Feed<'_, Calls>]) -> Result<Vec<Vec<f32>>, String> {
        batch
            .iter_mut()
            .map(|f| {
                let logits = self.step(f.tokens, f.pos, f.state)?;
                Ok(if f.logits { logits } else { Vec::new() })
            })
            .collect()
    }
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        max_sequences: 4,
        prefill_chunk: 10_000,
        context_len: 4096,
        prefix_cache_bytes: 0,
    }
}

fn start(model: Scripted, config: SchedulerConfig) -> SchedulerHandle {
    SchedulerHandle::spawn(
        "test",
        model,
        Arc::new(tiny_tokenizer()),
        Arc::new(ChatTemplate::new(None, "", "<|im_end|>").expect("chatml compiles")),
        config,
        GenMetrics::new("test"),
    )
    .expect("thread starts")
}

fn request(max_tokens: u32, stop: &[&str]) -> GenerateRequest {
    GenerateRequest::new(
        vec![ChatMessage::new(Role::User, "hi")],
        SamplingParams {
            max_tokens,
            temperature: 0.0,
            stop: stop.iter().map(|s| s.to_string()).collect(),
            ..SamplingParams::default()
        },
    )
}

/// Tokens of the ChatML prompt for [`request`] in the tiny vocabulary.
fn prompt_len() -> usize {
    let t = ChatTemplate::new(None, "", "").expect("compiles");
    let text = t
        .prompt(&[ChatMessage::new(Role::User, "hi")], "")
        .expect("renders");
    tiny_tokenizer().encode(&text).expect("encodes").len()
}

#[tokio::test]
async fn finishes_by_table() {
    let p = prompt_len();
    let cases = [
        (
            "end of turn",
            "Hi!",
            config(),
            request(50, &[]),
            "Hi!",
            FinishReason::Stop,
            3,
        ),
        (
            "max_tokens",
            "Hi!",
            config(),
            request(2, &[]),
            "Hi",
            FinishReason::Length,
            2,
        ),
        (
            "stop string",
            "Hi there",
            config(),
            request(50, &["i t"]),
            "H",
            FinishReason::Stop,
            4,
        ),
        (
            "context full",
            "Hi there",
            SchedulerConfig {
                context_len: p + 3,
                ..config()
            },
            request(50, &[]),
            "Hi t",
            FinishReason::Length,
            4,
        ),
        (
            "utf-8 whole",
            "é🦀",
            config(),
            request(50, &[]),
            "é🦀",
            FinishReason::Stop,
            6,
        ),
    ];
    for (name, answer, config, req, want, reason, tokens) in cases {
        let sched = start(Scripted::answer(answer), config);
        let got = collect(sched.submit(req), LIMIT).await;
        let s = got.summary();
        assert_eq!(got.text(), want, "{name}");
        assert_eq!(s.finish_reason, reason, "{name}");
        assert_eq!(s.completion_tokens, tokens, "{name}");
        assert_eq!(s.prompt_tokens as usize, p, "{name}");
    }
}

#[tokio::test]
async fn multibyte_characters_arrive_whole() {
    let sched = start(Scripted::answer("é🦀"), config());
    let got = collect(sched.submit(request(50, &[])), LIMIT).await;
    assert_eq!(got.tokens, vec!["é", "🦀"]);
}

#[tokio::test]
async fn long_prompts_are_fed_in_chunks() {
    let model = Scripted::answer("ok");
    let log = Arc::clone(&model.log);
    let sched = start(
        model,
        SchedulerConfig {
            prefill_chunk: 8,
            ..config()
        },
    );
    let got = collect(sched.submit(request(50, &[])), LIMIT).await;
    // Each chunk call consumes one script entry, so the last chunk already yields EOS.
    assert_eq!(got.summary().completion_tokens, 0);
    let p = prompt_len();
    let calls = log.lock().expect("log").clone();
    let want: Vec<(usize, usize)> = (0..p).step_by(8).map(|at| ((p - at).min(8), at)).collect();
    assert!(
        want.len() >= 3,
        "the prompt should need several chunks: {p} tokens"
    );
    assert_eq!(calls, want);
}

#[tokio::test]
async fn prompt_too_long_is_reported() {
    let sched = start(
        Scripted::answer("x"),
        SchedulerConfig {
            context_len: 5,
            ..config()
        },
    );
    let got = collect(sched.submit(request(5, &[])), LIMIT).await;
    assert!(
        matches!(
            got.end,
            Err(EngineError::PromptTooLong { context_len: 5, .. })
        ),
        "{got:?}"
    );
    assert_eq!(sched.queued(), 0);
}

#[tokio::test]
async fn failures_end_one_answer_and_the_thread_keeps_serving() {
    let cases = [
        (
            "panic",
            Scripted {
                panic_on_call: Some(1),
                ..Scripted::answer("abc")
            },
            "panic",
        ),
        (
            "error",
            Scripted {
                fail_on_call: Some(1),
                ..Scripted::answer("abc")
            },
            "scripted failure",
        ),
    ];
    for (name, model, want) in cases {
        let sched = start(model, config());
        let got = collect(sched.submit(request(50, &[])), LIMIT).await;
        match &got.end {
            Err(EngineError::Inference(msg)) => assert!(msg.contains(want), "{name}: {msg}"),
            other => panic!("{name}: expected an inference error, got {other:?}"),
        }
        assert_eq!(
            got.text(),
            "a",
            "{name}: text before the failure was streamed"
        );
        // The thread is still alive and serves the next request.
        let again = collect(sched.submit(request(1, &[])), LIMIT).await;
        assert_eq!(
            again.summary().finish_reason,
            FinishReason::Length,
            "{name}"
        );
        assert_eq!(sched.active(), 0, "{name}");
    }
}

#[tokio::test]
async fn sequences_are_decoded_concurrently() {
    let model = Scripted {
        delay: Duration::from_millis(3),
        ..Scripted::answer(&"x".repeat(40))
    };
    let sched = start(model, config());
    let a = sched.submit(request(30, &[]));
    let b = sched.submit(request(30, &[]));
    wait_until("two active sequences", LIMIT, || sched.active() == 2).await;
    let (a, b) = tokio::join!(collect(a, LIMIT), collect(b, LIMIT));
    assert_eq!(a.text(), "x".repeat(30));
    assert_eq!(b.text(), "x".repeat(30));
}

#[tokio::test]
async fn extra_requests_wait_for_a_slot() {
    let model = Scripted {
        delay: Duration::from_millis(2),
        ..Scripted::answer(&"y".repeat(50))
    };
    let sched = start(
        model,
        SchedulerConfig {
            max_sequences: 1,
            ..config()
        },
    );
    let a = sched.submit(request(40, &[]));
    let b = sched.submit(request(3, &[]));
    wait_until("one active, one queued", LIMIT, || {
        sched.active() == 1 && sched.queued() == 1
    })
    .await;
    let (a, b) = tokio::join!(collect(a, LIMIT), collect(b, LIMIT));
    assert_eq!(a.summary().completion_tokens, 40);
    assert_eq!(b.text(), "yyy");
}

#[tokio::test]
async fn cancel_and_dropped_receivers_free_the_slot() {
    let model = Scripted {
        delay: Duration::from_millis(5),
        ..Scripted::answer(&"z".repeat(500))
    };
    let sched = start(model, config());
    let req = request(400, &[]);
    let cancel = req.cancel.clone();
    let mut rx = sched.submit(req);
    assert!(matches!(rx.recv().await, Some(GenEvent::Token { .. })));
    let at = Instant::now();
    cancel.cancel();
    let got = collect(rx, LIMIT).await;
    assert_eq!(got.summary().finish_reason, FinishReason::Cancelled);
    assert!(
        at.elapsed() < Duration::from_secs(5),
        "cancel took {:?}",
        at.elapsed()
    );

    let rx = sched.submit(request(400, &[]));
    wait_until("sequence started", LIMIT, || sched.active() == 1).await;
    drop(rx);
    wait_until("slot freed after the receiver was dropped", LIMIT, || {
        sched.active() == 0
    })
    .await;
}

#[tokio::test]
async fn dropping_the_handle_fails_what_it_holds() {
    let model = Scripted {
        delay: Duration::from_millis(5),
        ..Scripted::answer(&"z".repeat(500))
    };
    let sched = start(model, config());
    let rx = sched.submit(request(400, &[]));
    drop(sched);
    let got = collect(rx, LIMIT).await;
    assert_eq!(got.end.err(), Some(EngineError::Shutdown));
}
