//! Tests against the real default model (SmolLM2-135M-Instruct Q4_1). They fail, saying how to get
//! the model, when it is missing. Answers are kept short: this runs on two shared cores.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use candle_core::{D, Device, Tensor};

use super::testutil::{Collected, candle_f32_reference, collect, test_model_path, wait_until};
use super::tokenizer::Segment;
use super::*;

#[path = "json_tests.rs"]
mod json;

const LIMIT: Duration = Duration::from_secs(120);
const FRANCE: &str = "What is the capital of France?";

/// One quantized engine shared by the tests that don't measure it (loading takes a while).
fn shared() -> Arc<LocalEngine> {
    static ENGINE: OnceLock<Arc<LocalEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| Arc::new(load(LocalConfig::default()))))
}

/// The same model dequantized to f32, for tests that need reference numerics.
fn shared_f32() -> Arc<LocalEngine> {
    static ENGINE: OnceLock<Arc<LocalEngine>> = OnceLock::new();
    Arc::clone(ENGINE.get_or_init(|| {
        Arc::new(load(LocalConfig {
            precision: Precision::F32,
            ..LocalConfig::default()
        }))
    }))
}

fn load(config: LocalConfig) -> LocalEngine {
    let path = test_model_path();
    LocalEngine::load_with(&path, "smollm2-135m", config)
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
}

fn ask(question: &str, max_tokens: u32) -> GenerateRequest {
    GenerateRequest::new(
        vec![ChatMessage::new(Role::User, question)],
        SamplingParams {
            max_tokens,
            temperature: 0.0,
            ..SamplingParams::default()
        },
    )
}

/// Greedy decoding written out plainly with candle's own llama over the dequantized weights
/// (whole prompt in one pass, then one token at a time), to check the engine against.
fn reference_greedy(prompt: &[u32], max_tokens: usize, is_end: impl Fn(u32) -> bool) -> Vec<u32> {
    let mut model = candle_f32_reference();
    let argmax = |logits: Tensor| -> u32 {
        logits
            .squeeze(0)
            .and_then(|l| l.argmax(D::Minus1))
            .and_then(|t| t.to_scalar())
            .expect("argmax")
    };
    let input = Tensor::new(prompt, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input");
    let mut next = argmax(model.forward(&input, 0).expect("prefill"));
    let mut out = Vec::new();
    while !is_end(next) && out.len() < max_tokens {
        out.push(next);
        let input = Tensor::new(&[next], &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("input");
        next = argmax(
            model
                .forward(&input, prompt.len() + out.len() - 1)
                .expect("decode"),
        );
    }
    out
}

/// Generates greedily with `engine` and checks the stream against [`reference_greedy`].
async fn greedy_matches_reference(engine: &LocalEngine, precision: Precision) -> String {
    let got = collect(engine.generate(ask(FRANCE, 24)), LIMIT).await;
    let messages = [ChatMessage::new(Role::User, FRANCE)];
    let prompt_text = engine.render_prompt(&messages, "").expect("prompt");
    let prompt = engine
        .tokenizer()
        .encode_prompt(&[Segment::Markup(prompt_text)])
        .expect("encode");
    assert_eq!(got.summary().prompt_tokens as usize, prompt.len());
    let is_end = |t| engine.tokenizer().is_end_of_turn(t);
    let reference = reference_greedy(&prompt, 24, is_end);
    let text = got.text();
    assert_eq!(
        text,
        engine.tokenizer().decode(&reference),
        "stream vs plain greedy decoding"
    );
    assert_eq!(got.summary().completion_tokens as usize, reference.len());
    eprintln!("{precision:?} greedy answer: {text:?}");
    text
}

#[tokio::test]
async fn greedy_stream_equals_plain_candle_decoding() {
    // The weights stay quantized but the activations are f32, so the answer is token for token
    // candle's greedy answer over the dequantized model: Paris. (8-bit activations, as candle's
    // and llama.cpp's quantized matmuls use, flip a near tie on the first token to "L'Étoile".)
    let text = greedy_matches_reference(&shared(), Precision::Quantized).await;
    assert!(text.contains("Paris"), "answer: {text:?}");
}

#[tokio::test]
async fn greedy_answer_at_f32_names_paris() {
    let text = greedy_matches_reference(&shared_f32(), Precision::F32).await;
    assert!(text.contains("Paris"), "answer: {text:?}");
}

#[tokio::test]
async fn cancel_mid_stream_ends_quickly() {
    let engine = load(LocalConfig {
        max_sequences: 1,
        ..LocalConfig::default()
    });
    let req = ask(
        "Write a long story about a dragon who learns to bake bread.",
        400,
    );
    let cancel = req.cancel.clone();
    let mut rx = engine.generate(req);
    let mut tokens = 0;
    while tokens < 3 {
        match tokio::time::timeout(LIMIT, rx.recv()).await {
            Ok(Some(GenEvent::Token { .. })) => tokens += 1,
            other => panic!("expected tokens, got {other:?}"),
        }
    }
    let at = Instant::now();
    cancel.cancel();
    let got = collect(rx, LIMIT).await;
    let latency = at.elapsed();
    assert_eq!(got.summary().finish_reason, FinishReason::Cancelled);
    // Counted in tokens, not seconds (a loaded machine slows both alike): the decode loop checks
    // the token between steps, so at most a step or two lands after the cancel.
    let after = got.summary().completion_tokens.saturating_sub(tokens);
    assert!(after <= 3, "{after} tokens came after the cancel");
    eprintln!("cancel latency: {latency:?}");
    wait_until("the slot to free", LIMIT, || engine.active_sequences() == 0).await;
}

#[tokio::test]
async fn concurrent_generations_both_complete_with_their_solo_answers() {
    let engine = load(LocalConfig::default());
    let questions = ["What is 2+2?", "Name a primary colour."];
    let mut solo = Vec::new();
    for q in questions {
        solo.push(collect(engine.generate(ask(q, 12)), LIMIT).await.text());
    }
    let a = engine.generate(ask(questions[0], 12));
    let b = engine.generate(ask(questions[1], 12));
    wait_until("both sequences active", LIMIT, || {
        engine.active_sequences() == 2
    })
    .await;
    let (a, b): (Collected, Collected) = tokio::join!(collect(a, LIMIT), collect(b, LIMIT));
    for got in [&a, &b] {
        assert_ne!(got.summary().finish_reason, FinishReason::Cancelled);
    }
    assert_eq!(
        [a.text(), b.text()],
        [solo[0].clone(), solo[1].clone()],
        "own KV cache each"
    );
}

/// Generates a greedy answer, then resumes it from half-way (cut at a token boundary, as a
/// failover would); returns (full answer, resumed half, continuation).
async fn resume_half_way(engine: &LocalEngine) -> (String, String, String) {
    let full = collect(engine.generate(ask(FRANCE, 24)), LIMIT).await;
    assert!(
        full.tokens.len() >= 4,
        "answer too short to split: {:?}",
        full.tokens
    );
    let half = full.tokens[..full.tokens.len() / 2].concat();
    let mut req = ask(FRANCE, 24);
    req.resume_text = half.clone();
    let rest = collect(engine.generate(req), LIMIT).await;
    let rest_text = rest.text();
    assert!(!rest_text.is_empty(), "nothing after {half:?}");
    assert!(
        !rest_text.starts_with(&half),
        "resume text repeated: {rest_text:?}"
    );
    eprintln!("resumed {half:?} with {rest_text:?}");
    (full.text(), half, rest_text)
}

#[tokio::test]
async fn resume_at_f32_continues_the_same_answer() {
    let (full, half, rest) = resume_half_way(&shared_f32()).await;
    assert_eq!(format!("{half}{rest}"), full);
}

#[tokio::test]
async fn resume_quantized_continues_the_same_answer() {
    let (full, half, rest) = resume_half_way(&shared()).await;
    assert_eq!(format!("{half}{rest}"), full);
}

#[tokio::test]
async fn speed_report() {
    let question = format!(
        "Summarise the following notes in one sentence. {}",
        "The cluster runs several nodes, each serving a small model on its CPU. ".repeat(12)
    );
    for (precision, engine) in [
        (Precision::Quantized, shared()),
        (Precision::F32, shared_f32()),
    ] {
        let got = collect(engine.generate(ask(&question, 48)), LIMIT).await;
        let s = got.summary();
        let prompt_rate = f64::from(s.prompt_tokens) / s.time_to_first_token.as_secs_f64();
        let decode = s.total.saturating_sub(s.time_to_first_token).as_secs_f64();
        let gen_rate = f64::from(s.completion_tokens.saturating_sub(1)) / decode;
        eprintln!(
            "speed {precision:?} (other tests may run at the same time): prompt {} tokens at \
             {prompt_rate:.1} tok/s, generated {} tokens at {gen_rate:.1} tok/s",
            s.prompt_tokens, s.completion_tokens
        );
        assert!(s.completion_tokens > 0);
    }
}

#[test]
fn an_unconfigured_max_sequences_is_measured_at_load_and_counted_in_memory() {
    let one = load(LocalConfig {
        max_sequences: 1,
        ..LocalConfig::default()
    })
    .info();
    let auto = load(LocalConfig {
        max_sequences: 0,
        ..LocalConfig::default()
    })
    .info();
    let n = auto.max_sequences;
    eprintln!("measured max_sequences: {n}");
    assert!((1..=super::batch_size::MAX_AUTO).contains(&n), "{n}");
    // Each sequence is counted with a full context's KV cache: 30 layers x 3 KV heads x 64 x
    // (K and V) x 4 bytes per token, 4096 tokens.
    let kv_per_seq = 30 * 3 * 64 * 2 * 4 * 4096;
    assert_eq!(
        auto.memory_bytes,
        one.memory_bytes + (n as u64 - 1) * kv_per_seq
    );
}

#[test]
fn facts_about_the_loaded_model() {
    let engine = shared();
    let info = engine.info();
    assert_eq!(info.kind, "gguf");
    assert_eq!(info.model_id, "smollm2-135m");
    assert_eq!(info.context_len, 4096);
    assert_eq!(info.max_sequences, 4);
    let file_len = std::fs::metadata(test_model_path())
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(info.memory_bytes > file_len);

    let hi = [ChatMessage::new(Role::User, "hi")];
    assert_eq!(
        engine.render_prompt(&hi, "").expect("renders"),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let text = engine.render_prompt(&hi, "").expect("renders");
    let n = engine.tokenizer().encode(&text).expect("encodes").len() as u32;
    assert_eq!(
        engine.count_tokens(&hi, &SamplingParams::default()).ok(),
        Some(n)
    );
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_gguf = dir.path().join("not.gguf");
    std::fs::write(&not_gguf, "hello").expect("write");
    let missing = dir.path().join("missing.gguf");
    for path in [not_gguf, missing] {
        match LocalEngine::load(&path, "x") {
            Err(EngineError::Load(msg)) => {
                assert!(msg.contains(&path.display().to_string()), "{msg}")
            }
            Err(e) => panic!("expected a load error, got {e}"),
            Ok(_) => panic!("loaded {}", path.display()),
        }
    }
}

#[test]
fn truncated_crafted_and_foreign_files_are_refused_in_plain_words() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = std::fs::read(test_model_path()).expect("read model");
    let refused = |name: &str, bytes: &[u8], want: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        match LocalEngine::load(&path, "x") {
            Err(EngineError::Load(msg)) => assert!(msg.contains(want), "{name}: {msg}"),
            Err(e) => panic!("{name}: expected a load error, got {e}"),
            Ok(_) => panic!("{name}: loaded"),
        }
    };
    // Cut inside the metadata, and inside the tensor data.
    refused("head.gguf", &real[..4096], "truncated");
    refused("tail.gguf", &real[..real.len() / 2], "past the end");
    // A tensor declaring an enormous shape: refused from the header, before any allocation.
    let mut huge = Vec::new();
    orrery_cpu::gguf::write(
        &mut huge,
        &[(
            "general.architecture",
            orrery_cpu::gguf::Value::String("llama".into()),
        )],
        &[orrery_cpu::gguf::TensorOut {
            name: "token_embd.weight",
            dims: &[1 << 32, 1 << 30],
            ggml_type: 0,
            data: &[0; 64],
        }],
    )
    .expect("writes");
    refused("huge.gguf", &huge, "far larger than");
    // An architecture the engine does not run: named, with the supported ones.
    let mut mamba = Vec::new();
    orrery_cpu::gguf::write(
        &mut mamba,
        &[(
            "general.architecture",
            orrery_cpu::gguf::Value::String("mamba".into()),
        )],
        &[],
    )
    .expect("writes");
    refused(
        "mamba.gguf",
        &mamba,
        "\"mamba\" is not supported (supported: llama, smollm3",
    );
}

#[test]
fn embeddings_are_unit_vectors_that_place_like_texts_together() {
    let engine = shared();
    let texts: Vec<String> = [
        "The cat sat on the mat.",
        "A cat was sitting on a mat.",
        "Quarterly revenue grew by five percent.",
    ]
    .map(String::from)
    .to_vec();
    let e = engine.embed(&texts).expect("embeds");
    assert_eq!(e.vectors.len(), 3);
    assert!(e.tokens >= 3 * 5, "{}", e.tokens);
    let dim = e.vectors[0].len();
    assert!(dim > 0 && e.vectors.iter().all(|v| v.len() == dim));
    for v in &e.vectors {
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let near = cos(&e.vectors[0], &e.vectors[1]);
    let far = cos(&e.vectors[0], &e.vectors[2]);
    assert!(near > far, "cat/cat {near} vs cat/revenue {far}");
    // Deterministic, and one text alone embeds as it does in a batch.
    let again = engine.embed(&texts[..1]).expect("embeds");
    assert_eq!(again.vectors[0], e.vectors[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn greedy_logprobs_spell_the_answer_and_rank_the_sampled_token_first() {
    let engine = shared();
    let mut req = ask(FRANCE, 12);
    req.params.logprobs = Some(3);
    let got = collect(engine.generate(req), LIMIT).await;
    got.summary();
    let text = got.text();
    let spelled: Vec<u8> = got.logprobs.iter().flat_map(|l| l.bytes.clone()).collect();
    assert_eq!(String::from_utf8_lossy(&spelled), text);
    assert_eq!(got.logprobs.len() as u32, got.summary().completion_tokens);
    for l in &got.logprobs {
        assert!(l.logprob <= 0.0, "{l:?}");
        assert_eq!(l.top.len(), 3);
        // Greedy: the sampled token is the most likely one.
        assert_eq!(l.top[0].bytes, l.bytes, "{l:?}");
        assert!((l.top[0].logprob - l.logprob).abs() < 1e-6);
        assert!(l.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
    }
    // Without asking, none are sent.
    let plain = collect(engine.generate(ask(FRANCE, 4)), LIMIT).await;
    assert!(plain.logprobs.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_turn_reuses_the_cached_conversation_and_answers_the_same() {
    let cached = load(LocalConfig::default());
    let plain = load(LocalConfig {
        prefix_cache: false,
        ..LocalConfig::default()
    });
    let first = collect(cached.generate(ask(FRANCE, 12)), LIMIT).await;
    let turn = vec![
        ChatMessage::new(Role::User, FRANCE),
        ChatMessage::new(Role::Assistant, first.text()),
        ChatMessage::new(Role::User, "And the capital of Italy?"),
    ];
    let params = SamplingParams {
        max_tokens: 12,
        temperature: 0.0,
        ..SamplingParams::default()
    };
    let with = collect(
        cached.generate(GenerateRequest::new(turn.clone(), params.clone())),
        LIMIT,
    )
    .await;
    let without = collect(plain.generate(GenerateRequest::new(turn, params)), LIMIT).await;
    assert_eq!(with.text(), without.text());
    // The whole first prompt (and the answer's tokens, where they tokenize the same) came from
    // the cache; the engine without one prefilled everything.
    assert!(
        with.summary().cached_tokens >= first.summary().prompt_tokens,
        "{} cached of a first prompt of {}",
        with.summary().cached_tokens,
        first.summary().prompt_tokens
    );
    assert_eq!(without.summary().cached_tokens, 0);
    assert_eq!(
        with.summary().prompt_tokens,
        without.summary().prompt_tokens
    );
}
