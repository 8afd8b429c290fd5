//! Structured output on the real default model: answers under a response format parse and fit
//! their schema, a cut-off answer ends with `length`, a resumed one completes the same JSON, and
//! the cost of the mask per token is reported. Greedy and short: two shared cores.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::constraint::Constraint;
use super::super::testutil::collect;
use super::super::*;
use super::{LIMIT, shared};

/// Nested object, enum, array with minItems/maxItems, required; strings bounded so that even a
/// rambling model finishes well inside `max_tokens`.
const PERSON: &str = r#"{"type":"object","properties":{
  "name":{"type":"string","maxLength":24},
  "age":{"type":"integer"},
  "colour":{"enum":["red","green","blue"]},
  "hobbies":{"type":"array","items":{"type":"string","maxLength":16},"minItems":1,"maxItems":3},
  "address":{"type":"object","properties":{
      "city":{"type":"string","maxLength":24},"zip":{"type":"string","maxLength":8}},
    "required":["city"]}
},"required":["name","age","colour","hobbies","address"]}"#;

const QUESTION: &str =
    "Invent a person: name, age, favourite colour, hobbies and home city. Answer in JSON.";

fn person() -> ResponseFormat {
    ResponseFormat::JsonSchema {
        name: "person".into(),
        schema_text: PERSON.into(),
        strict: true,
    }
}

fn ask_json(format: ResponseFormat, max_tokens: u32) -> GenerateRequest {
    GenerateRequest::new(
        vec![ChatMessage::new(Role::User, QUESTION)],
        SamplingParams {
            max_tokens,
            temperature: 0.0,
            response_format: Some(Box::new(format)),
            ..SamplingParams::default()
        },
    )
}

fn short_string(v: &Value, max: usize) -> bool {
    v.as_str().is_some_and(|s| s.chars().count() <= max)
}

/// Parses `text` and checks it against [`PERSON`] keyword by keyword; panics saying what broke.
fn check_person(text: &str) {
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    let obj = v.as_object().expect("an object");
    let keys = ["name", "age", "colour", "hobbies", "address"];
    assert!(obj.keys().all(|k| keys.contains(&k.as_str())), "{text}");
    assert!(short_string(&v["name"], 24), "name: {text}");
    assert!(v["age"].is_i64() || v["age"].is_u64(), "age: {text}");
    assert!(
        ["red", "green", "blue"].contains(&v["colour"].as_str().unwrap_or("")),
        "colour: {text}"
    );
    let hobbies = v["hobbies"].as_array().expect("hobbies array");
    assert!((1..=3).contains(&hobbies.len()), "hobbies count: {text}");
    assert!(hobbies.iter().all(|h| short_string(h, 16)), "{text}");
    let address = v["address"].as_object().expect("address object");
    assert!(short_string(&v["address"]["city"], 24), "city: {text}");
    assert!(
        address.keys().all(|k| k == "city" || k == "zip"),
        "address keys: {text}"
    );
    if let Some(zip) = address.get("zip") {
        assert!(short_string(zip, 8), "zip: {text}");
    }
}

/// One answer serves three checks (model time is the scarce thing here): it parses and fits its
/// schema; cut half-way, as a failover would cut it, and resumed, it still does; and replayed
/// through the grammar it gives the mask's cost per token.
#[tokio::test]
async fn schema_answer_fits_its_schema_and_survives_a_resume() {
    let engine = shared();
    let full = collect(engine.generate(ask_json(person(), 200)), LIMIT).await;
    let text = full.text();
    eprintln!("person: {text}");
    assert_eq!(full.summary().finish_reason, FinishReason::Stop, "{text}");
    check_person(&text);

    assert!(full.tokens.len() >= 6, "too short: {:?}", full.tokens);
    let half = full.tokens[..full.tokens.len() / 2].concat();
    let mut req = ask_json(person(), 200);
    req.resume_text = half.clone();
    let rest = collect(engine.generate(req), LIMIT).await;
    let whole = format!("{half}{}", rest.text());
    eprintln!("resumed after {half:?}: {whole}");
    assert_eq!(rest.summary().finish_reason, FinishReason::Stop, "{whole}");
    check_person(&whole);

    mask_overhead_report(engine.tokenizer(), &text, full.summary());
}

#[tokio::test]
async fn json_object_answer_is_an_object() {
    let got = collect(
        shared().generate(ask_json(ResponseFormat::JsonObject, 48)),
        LIMIT,
    )
    .await;
    let text = got.text();
    eprintln!("object: {text}");
    if got.summary().finish_reason == FinishReason::Stop {
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert!(v.is_object(), "{text}");
    } else {
        // Cut off by max_tokens: still a valid beginning of an object.
        assert!(is_prefix(&ResponseFormat::JsonObject, &text), "{text:?}");
        assert!(text.trim_start().starts_with('{'), "{text}");
    }
}

#[tokio::test]
async fn max_tokens_mid_json_ends_with_length() {
    let got = collect(shared().generate(ask_json(person(), 6)), LIMIT).await;
    let text = got.text();
    assert_eq!(got.summary().finish_reason, FinishReason::Length, "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    assert!(is_prefix(&person(), &text), "{text:?}");
}

/// Whether `text` is a beginning of some answer `format` allows.
fn is_prefix(format: &ResponseFormat, text: &str) -> bool {
    let grammar = format.grammar().expect("compiles");
    orrery_cpu::grammar::GrammarState::new(&grammar)
        .advance(text.as_bytes())
        .is_ok()
}

/// The mask's cost per token on this model: `answer` replayed token by token through the
/// grammar, each step's mask computed and applied to a logits vector, against the time one decode
/// step took in the same run.
fn mask_overhead_report(tok: &tokenizer::GgufTokenizer, answer: &str, s: &GenSummary) {
    let decode = s.total.saturating_sub(s.time_to_first_token) / s.completion_tokens.max(2);
    let vocab = std::sync::Arc::new(orrery_cpu::grammar::TokenVocab::from_tokenizer(tok));
    let mut c = Constraint::new(Some(&person()), "", || vocab)
        .expect("compiles")
        .expect("constrained");
    let ids = tok.encode(answer).expect("encode");
    let mut logits = vec![0.0f32; tok.vocab_size()];
    let mut times: Vec<Duration> = Vec::with_capacity(ids.len());
    for &id in &ids {
        let at = Instant::now();
        c.mask(&mut logits).expect("mask");
        times.push(at.elapsed());
        logits.fill(0.0);
        c.accept(id).expect("the answer's own tokens fit");
    }
    times.sort_unstable();
    let median = times[times.len() / 2];
    let max = times[times.len() - 1];
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    eprintln!(
        "mask per token over {} tokens: median {median:?}, mean {mean:?}, max {max:?}; one decode \
         step took {decode:?} in the same run (the mean is {:.1}% of it)",
        ids.len(),
        100.0 * mean.as_secs_f64() / decode.as_secs_f64()
    );
}
