//! Token-mask speed on a real vocabulary (any GGUF with a tokenizer, vocab-only files too):
//! `cargo run --release -p orrery-cpu --example grammar_mask -- MODEL.gguf`
//! compiles a JSON schema, tokenizes a matching answer with the model's tokenizer, and times the
//! mask at every token of it, checking on the way that each real token is allowed.

use std::path::Path;
use std::time::{Duration, Instant};

use orrery_cpu::gguf::Gguf;
use orrery_cpu::grammar::{GrammarState, SchemaOptions, TokenVocab, any_json, compile_schema};
use orrery_cpu::tokenizer::Tokenizer;

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer"},
    "languages": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    "city": {"type": "string"},
    "married": {"type": "boolean"}
  },
  "required": ["name", "age", "languages"]
}"#;

const ANSWER: &str = "{\n  \"name\": \"Zoë Müller, a data scientist from Zürich who writes about 日本 and emoji 🎉\",\n  \"age\": 37,\n  \"languages\": [\"German\", \"English\", \"Japanese\"],\n  \"city\": \"Zürich\",\n  \"married\": false\n}";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: grammar_mask MODEL.gguf")?;
    let gguf = Gguf::open(Path::new(&path))?;
    let tokenizer = Tokenizer::from_gguf(&gguf)?;
    let t0 = Instant::now();
    let vocab = TokenVocab::from_tokenizer(&tokenizer);
    println!(
        "vocabulary: {} tokens, built in {:?}",
        vocab.len(),
        t0.elapsed()
    );

    for (label, grammar) in [
        ("schema", compile_schema(SCHEMA, &SchemaOptions::default())?),
        ("any JSON", any_json(&SchemaOptions::default())),
    ] {
        let ids = tokenizer.encode_text(ANSWER)?;
        let mut state = GrammarState::new(&grammar);
        let mut times: Vec<(Duration, usize)> = Vec::with_capacity(ids.len() + 1);
        for &id in ids.iter().chain(&[tokenizer.eos_id()]) {
            let t = Instant::now();
            let mask = state.allowed_tokens(&vocab);
            times.push((t.elapsed(), mask.count()));
            if !mask.allows(id) {
                return Err(format!("token {id} ({:?}) refused", tokenizer.decode(&[id])).into());
            }
            state.advance_token(&vocab, id)?;
        }
        let mut sorted: Vec<Duration> = times.iter().map(|t| t.0).collect();
        sorted.sort();
        let total: Duration = sorted.iter().sum();
        let widest = times.iter().max_by_key(|t| t.1).map_or(0, |t| t.1);
        println!(
            "{label}: {} masks, mean {:?}, median {:?}, max {:?}; widest mask {widest} tokens",
            sorted.len(),
            total / sorted.len() as u32,
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
        );
    }
    Ok(())
}
