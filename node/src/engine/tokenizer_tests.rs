//! Tokenizer tests: a tiny byte-level vocabulary (no model needed) and the real GGUF vocabulary.

use super::*;
use crate::engine::testutil::{test_model_path, tiny_tokenizer as tiny};

/// Texts that must survive encode → decode unchanged.
const ROUND_TRIP: &[&str] = &[
    "",
    "hello world",
    "The capital of France is Paris.",
    "  leading spaces, trailing   ",
    "runs   of\t\twhitespace\n\n\n  and\r\nnewlines",
    "café naïve résumé Ærøskøbing",
    "日本語のテキストと中文文本",
    "emoji 🎉 family 👩‍👩‍👧 flag 🇫🇷",
    "digits 1234567890 and 3.14159, -42",
    "code: fn main() { println!(\"{}\", x[0]); } // it's",
    "contractions: it's, we're, I've, I'm, you'll, he'd",
    "\u{0} nul and \u{7f} del and \u{ffff}",
];

fn real() -> GgufTokenizer {
    let path = test_model_path();
    let gguf = orrery_cpu::gguf::Gguf::open(&path).expect("read GGUF");
    GgufTokenizer::from_gguf(&gguf).expect("tokenizer from GGUF")
}

fn pieces(tok: &GgufTokenizer, text: &str) -> Vec<String> {
    let ids = tok.encode(text).expect("encode");
    ids.iter()
        .map(|&id| tok.decode_with_special(&[id]))
        .collect()
}

#[test]
fn byte_decoder_is_a_bijection_over_all_bytes() {
    let table = byte_decoder();
    assert_eq!(table.len(), 256);
    let mut bytes: Vec<u8> = table.values().copied().collect();
    bytes.sort_unstable();
    bytes.dedup();
    assert_eq!(bytes.len(), 256);
    assert_eq!(table.get(&'Ġ'), Some(&b' '));
    assert_eq!(table.get(&'Ċ'), Some(&b'\n'));
    assert_eq!(table.get(&'A'), Some(&b'A'));
}

#[test]
fn tiny_vocabulary_round_trips() {
    let tok = tiny();
    for text in ROUND_TRIP {
        let ids = tok.encode(text).expect("encode");
        assert_eq!(tok.decode(&ids), *text, "{text:?} -> {ids:?}");
    }
}

#[test]
fn tiny_vocabulary_splits_like_the_reference() {
    let tok = tiny();
    let cases: &[(&str, &[&str])] = &[
        (" the", &[" the"]),
        ("the", &["t", "he"]),
        ("2024", &["2", "0", "2", "4"]),
        ("<|im_start|>the", &["<|im_start|>", "t", "he"]),
        ("a<|im_end|>\n", &["a", "<|im_end|>", "\n"]),
        // Not a complete control token: plain bytes.
        ("<|im_end", &["<", "|", "i", "m", "_", "e", "n", "d"]),
    ];
    for (text, want) in cases {
        assert_eq!(pieces(&tok, text), *want, "{text:?}");
    }
}

#[test]
fn control_tokens_decode_to_nothing_unless_asked() {
    let tok = tiny();
    let ids = tok.encode("<|im_start|>hi<|im_end|>").expect("encode");
    assert_eq!(ids.first(), Some(&0));
    assert_eq!(ids.last(), Some(&1));
    assert_eq!(tok.decode(&ids), "hi");
    assert_eq!(tok.decode_with_special(&ids), "<|im_start|>hi<|im_end|>");
    assert!(tok.is_end_of_turn(1));
    assert!(!tok.is_end_of_turn(0));
}

#[test]
fn bos_is_prepended_only_when_the_model_asks() {
    let mut spec = tiny_spec();
    spec.bos_id = Some(0);
    let plain = GgufTokenizer::from_spec(spec.clone()).expect("builds");
    assert_eq!(plain.encode_prompt("b").ok(), Some(vec![1]));
    spec.add_bos = true;
    let with_bos = GgufTokenizer::from_spec(spec).expect("builds");
    assert_eq!(with_bos.encode_prompt("b").ok(), Some(vec![0, 1]));
    assert_eq!(
        with_bos.encode_prompt("ab").ok(),
        Some(vec![0, 1]),
        "BOS already written"
    );
}

#[test]
fn unsupported_vocabularies_are_load_errors() {
    let cases = [
        (
            "unknown pre-tokenizer",
            VocabSpec {
                pre: "klingon".into(),
                ..tiny_spec()
            },
        ),
        (
            "eos out of range",
            VocabSpec {
                eos_id: 999_999,
                ..tiny_spec()
            },
        ),
        (
            "types length",
            VocabSpec {
                token_types: vec![1],
                ..tiny_spec()
            },
        ),
        (
            "bad merge",
            VocabSpec {
                merges: vec!["nospace".into()],
                ..tiny_spec()
            },
        ),
    ];
    for (name, spec) in cases {
        match GgufTokenizer::from_spec(spec) {
            Err(EngineError::Load(_)) => {}
            other => panic!("{name}: expected a load error, got {other:?}"),
        }
    }
}

fn tiny_spec() -> VocabSpec {
    VocabSpec {
        tokens: vec!["a".into(), "b".into()],
        token_types: vec![1, 1],
        merges: vec![],
        pre: "smollm".into(),
        bos_id: None,
        eos_id: 1,
        add_bos: false,
    }
}

#[test]
fn real_vocabulary_known_facts() {
    let tok = real();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), 2);
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.control_text(2), Some("<|im_end|>"));
    assert!(tok.is_end_of_turn(2));
    assert!(tok.is_end_of_turn(0), "<|endoftext|> ends a turn too");
    assert!(!tok.is_end_of_turn(1));
}

#[test]
fn real_vocabulary_round_trips() {
    let tok = real();
    for text in ROUND_TRIP {
        let ids = tok.encode(text).expect("encode");
        assert_eq!(tok.decode(&ids), *text, "{text:?} -> {ids:?}");
    }
    let chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n";
    let ids = tok.encode(chat).expect("encode");
    assert_eq!(tok.decode_with_special(&ids), chat);
}

#[test]
fn real_vocabulary_splits_like_the_reference() {
    let tok = real();
    let cases: &[(&str, &[&str])] = &[
        ("Hello world", &["Hello", " world"]),
        ("12345", &["1", "2", "3", "4", "5"]),
        (
            "<|im_start|>user\nhi<|im_end|>",
            &["<|im_start|>", "user", "\n", "hi", "<|im_end|>"],
        ),
        ("it's", &["it", "'s"]),
        (" Paris.", &[" Paris", "."]),
    ];
    for (text, want) in cases {
        assert_eq!(pieces(&tok, text), *want, "{text:?}");
    }
    // Control tokens are single ids; a truncated one is ordinary text.
    assert_eq!(tok.encode("<|im_start|>").ok(), Some(vec![1]));
    assert!(!tok.encode("<|im_start|").expect("encode").contains(&1));
}
