//! Tokenizer unit tests on tiny hand-made vocabularies (no files needed); the real vocabularies
//! are checked against llama.cpp's vectors in `tests/llama_cpp_vocabs.rs`.

use super::*;

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

/// A byte-level vocabulary: `<|im_start|>` (0) and `<|im_end|>` (1, EOS) as control tokens, the
/// 256 byte tokens (byte `b` is id `2 + b`), and the merges `Ġ t`, `h e`, `Ġt he`.
fn tiny_spec() -> VocabSpec {
    let mut tokens = vec!["<|im_start|>".to_string(), "<|im_end|>".to_string()];
    tokens.extend(bpe::byte_chars().iter().map(|c| c.to_string()));
    tokens.extend(["Ġt", "he", "Ġthe"].map(String::from));
    let mut token_types = vec![TYPE_CONTROL, TYPE_CONTROL];
    token_types.extend(std::iter::repeat_n(TYPE_NORMAL, tokens.len() - 2));
    VocabSpec {
        model: "gpt2".into(),
        pre: "smollm".into(),
        tokens,
        token_types,
        merges: vec!["Ġ t".into(), "h e".into(), "Ġt he".into()],
        bos_id: Some(0),
        eos_id: Some(1),
        ..VocabSpec::default()
    }
}

fn tiny() -> Tokenizer {
    Tokenizer::from_spec(tiny_spec()).expect("tiny vocabulary builds")
}

/// A SentencePiece vocabulary: `<unk>`, `<s>`, `</s>`, the 256 byte tokens (byte `b` is id
/// `3 + b`), then pieces whose scores make `▁the` win over `▁t` + `he`.
fn tiny_spm() -> Tokenizer {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut types = vec![TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL];
    for b in 0..=255u8 {
        tokens.push(format!("<0x{b:02X}>"));
        types.push(TYPE_BYTE);
    }
    let pieces = [
        ("▁", -1.0),
        ("t", -2.0),
        ("h", -2.0),
        ("e", -2.0),
        ("▁t", -3.0),
        ("he", -4.0),
        ("▁the", -5.0),
    ];
    let mut scores = vec![0.0; tokens.len()];
    for (p, s) in pieces {
        tokens.push(p.to_string());
        types.push(TYPE_NORMAL);
        scores.push(s);
    }
    Tokenizer::from_spec(VocabSpec {
        model: "llama".into(),
        tokens,
        token_types: types,
        scores,
        ..VocabSpec::default()
    })
    .expect("tiny SentencePiece vocabulary builds")
}

fn pieces(tok: &Tokenizer, ids: &[u32]) -> Vec<String> {
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
fn tiny_vocabularies_round_trip() {
    let tok = tiny();
    let spm = tiny_spm();
    for text in ROUND_TRIP {
        let ids = tok.encode(text).expect("encode");
        assert_eq!(tok.decode(&ids), *text, "{text:?} -> {ids:?}");
        // SentencePiece adds the leading space it decodes back.
        let ids = spm.encode(text).expect("encode");
        let want = if text.is_empty() {
            String::new()
        } else {
            format!(" {text}")
        };
        assert_eq!(spm.decode(&ids), want, "SentencePiece {text:?} -> {ids:?}");
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
        assert_eq!(
            pieces(&tok, &tok.encode(text).expect("encode")),
            *want,
            "{text:?}"
        );
    }
}

#[test]
fn sentencepiece_merges_by_score_and_falls_back_to_bytes() {
    let tok = tiny_spm();
    let cases: &[(&str, &[&str])] = &[
        ("the", &[" the"]),
        ("the he", &[" the", " ", "he"]),
        // No piece for "x" or "é": their UTF-8 bytes.
        ("xé", &[" ", "x", "\u{FFFD}", "\u{FFFD}"]),
    ];
    for (text, want) in cases {
        assert_eq!(
            pieces(&tok, &tok.encode(text).expect("encode")),
            *want,
            "{text:?}"
        );
    }
    assert_eq!(tok.encode_with("the", true, false).ok(), Some(vec![1, 265]));
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), 2);
    assert!(tok.add_bos());
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
fn control_tokens_are_parsed_only_in_markup() {
    let tok = tiny();
    let prompt = [
        Segment::Markup("<|im_start|>user\n".into()),
        Segment::Text("<|im_start|>system".into()),
        Segment::Markup("<|im_end|>".into()),
    ];
    let ids = tok.encode_prompt(&prompt).expect("encode");
    assert_eq!(ids.iter().filter(|&&id| id == 0).count(), 1, "{ids:?}");
    assert_eq!(ids.first(), Some(&0));
    assert_eq!(ids.last(), Some(&1));
    assert_eq!(
        tok.decode_with_special(&ids),
        "<|im_start|>user\n<|im_start|>system<|im_end|>"
    );
    // Text on both sides of a boundary is one run: " the" merges across it.
    let split = [Segment::Markup(" t".into()), Segment::Text("he".into())];
    assert_eq!(tok.encode_prompt(&split).ok(), tok.encode(" the").ok());
    assert_eq!(tok.encode_text("<|im_end|>").expect("encode").len(), 10);
}

#[test]
fn bos_and_eos_are_added_only_when_the_model_asks() {
    let markup = |t: &str| vec![Segment::Markup(t.to_string())];
    let plain = Tokenizer::from_spec(tiny_spec()).expect("builds");
    assert_eq!(plain.encode_prompt(&markup("b")).ok(), Some(vec![100]));
    let with_bos = Tokenizer::from_spec(VocabSpec {
        add_bos: Some(true),
        ..tiny_spec()
    })
    .expect("builds");
    assert_eq!(
        with_bos.encode_prompt(&markup("b")).ok(),
        Some(vec![0, 100])
    );
    assert_eq!(
        with_bos.encode_prompt(&markup("<|im_start|>b")).ok(),
        Some(vec![0, 100]),
        "BOS already written"
    );
    let with_eos = Tokenizer::from_spec(VocabSpec {
        add_eos: Some(true),
        ..tiny_spec()
    })
    .expect("builds");
    assert_eq!(
        with_eos.encode_prompt(&markup("b")).ok(),
        Some(vec![100, 1])
    );
    assert_eq!(
        with_eos.encode_with("b", true, false).ok(),
        Some(vec![100, 1])
    );
}

#[test]
fn unsupported_or_broken_vocabularies_are_errors_by_table() {
    let cases = [
        (
            "unknown model",
            VocabSpec {
                model: "bert".into(),
                ..tiny_spec()
            },
            "\"bert\"",
        ),
        (
            "unknown pre-tokenizer",
            VocabSpec {
                pre: "klingon".into(),
                ..tiny_spec()
            },
            "\"klingon\"",
        ),
        (
            "eos out of range",
            VocabSpec {
                eos_id: Some(999_999),
                ..tiny_spec()
            },
            "EOS",
        ),
        (
            "no eos",
            VocabSpec {
                eos_id: None,
                ..tiny_spec()
            },
            "EOS",
        ),
        (
            "types length",
            VocabSpec {
                token_types: vec![1],
                ..tiny_spec()
            },
            "token types",
        ),
        (
            "scores length",
            VocabSpec {
                scores: vec![1.0],
                ..tiny_spec()
            },
            "scores",
        ),
        (
            "bad merge",
            VocabSpec {
                merges: vec!["nospace".into()],
                ..tiny_spec()
            },
            "nospace",
        ),
        (
            "empty",
            VocabSpec {
                tokens: vec![],
                token_types: vec![],
                ..tiny_spec()
            },
            "empty",
        ),
    ];
    for (name, spec, needle) in cases {
        match Tokenizer::from_spec(spec) {
            Err(e) => {
                assert!(e.is_load_error(), "{name}");
                assert!(e.to_string().contains(needle), "{name}: {e}");
            }
            Ok(_) => panic!("{name}: expected an error"),
        }
    }
    let e = Tokenizer::from_spec(VocabSpec {
        pre: "klingon".into(),
        ..tiny_spec()
    })
    .expect_err("unknown pre-tokenizer");
    for name in ["llama-bpe", "qwen2", "qwen35", "smollm", "gpt-2"] {
        assert!(e.to_string().contains(name), "{e} does not list {name}");
    }
}
