//! Token masks checked against a brute-force reference, resumption from text, and a mask over a
//! 50 000-token synthetic vocabulary.

use std::time::Instant;

use super::*;

/// xorshift64*: a fixed-seed generator, so failures reproduce.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Token 0 is a control token (no bytes), 1 is EOS, 2..258 are the 256 single bytes (byte
/// fallback), then JSON pieces, whole and partial UTF-8 characters.
pub(super) fn small_vocab() -> TokenVocab {
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(), b"</s>".to_vec()];
    tokens.extend((0..=255u8).map(|b| vec![b]));
    let pieces: &[&[u8]] = &[
        b"{\"",
        b"\":",
        b"\",",
        b"\"}",
        b" \"",
        b"\n",
        b"\n  ",
        b"  ",
        b"    ",
        b"true",
        b"false",
        b"null",
        b"0",
        b"12",
        b"3.",
        b".5",
        b"e+",
        b"E-1",
        b"-",
        b"name",
        b"\"name\"",
        b"age",
        b"\":\"",
        b"tags",
        b"[\"",
        b"\"]",
        b"\"]}",
        b"},",
        b"}]",
        b"{}",
        b"[]",
        b"\\\"",
        b"\\u00",
        b"\\ud8",
        b"ab",
        b"abc",
        b"x\"",
        b"\xC3\xA9",
        b"\xC3",
        b"\xA9",
        b"\xE6\x97\xA5\xE6\x9C\xAC",
        b"\xE6\x97",
        b"\xA5",
        b"\xF0\x9F\x8E\x89",
        b"\xF0\x9F",
        b"\x8E\x89",
        b"\xED\xA0\x80",
        b"\xC0\xAF",
        b"line",
        b"\"kind\":\"line\"",
        b"\"x\":",
        b"1e99",
        b"\"}}",
        b"\t",
        b"\n\n\n",
    ];
    tokens.extend(pieces.iter().map(|p| p.to_vec()));
    let refs: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
    TokenVocab::new(&refs, &[1])
}

/// The mask the definition asks for, token by token.
fn reference_mask(state: &GrammarState, vocab: &TokenVocab) -> TokenMask {
    let mut mask = TokenMask::new(vocab.len());
    for id in 0..vocab.len() as u32 {
        let bytes = vocab.token_bytes(id);
        let allowed = if vocab.is_end(id) {
            state.is_complete()
        } else {
            !bytes.is_empty() && state.accepts_bytes(bytes)
        };
        if allowed {
            mask.allow(id);
        }
    }
    mask
}

pub(super) fn assert_mask_is_exact(state: &GrammarState, vocab: &TokenVocab, context: &str) {
    let fast = state.allowed_tokens(vocab);
    let slow = reference_mask(state, vocab);
    if fast != slow {
        let extra: Vec<u32> = fast.iter().filter(|&id| !slow.allows(id)).collect();
        let missing: Vec<u32> = slow.iter().filter(|&id| !fast.allows(id)).collect();
        panic!("mask after {context:?}: allows {extra:?} wrongly, misses {missing:?}");
    }
}

fn compile(schema: &str) -> Grammar {
    compile_schema(schema, &SchemaOptions::default()).unwrap()
}

#[test]
fn mask_matches_the_reference_at_every_byte_of_valid_outputs() {
    let vocab = small_vocab();
    let cases = [
        (
            r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},"maxItems":2}},"required":["name"]}"#,
            "{\"name\": \"é日本🎉\\\"x\\u00e9\",\n  \"age\": -12,\"tags\":[\"ab\"]}\n",
        ),
        (r#"true"#, "[1.5e+3, {\"a\": [null, true]}, \"\\n\"]"),
        (r#"{"enum":["日本", 12, null]}"#, "\"日本\" "),
        (r#"{"type":"number"}"#, "-0.25E-12"),
    ];
    for (schema, text) in cases {
        let g = compile(schema);
        let mut state = GrammarState::new(&g);
        for (i, &byte) in text.as_bytes().iter().enumerate() {
            assert_mask_is_exact(&state, &vocab, &text[..text.floor_char_boundary(i)]);
            state.advance(&[byte]).unwrap();
        }
        assert_mask_is_exact(&state, &vocab, text);
        assert!(state.is_complete(), "{text}");
    }
}

#[test]
fn end_tokens_only_where_the_output_may_end_and_control_tokens_never() {
    let vocab = small_vocab();
    let g = compile(r#"{"type":"integer"}"#);
    let mut state = GrammarState::new(&g);
    let mask = state.allowed_tokens(&vocab);
    assert!(!mask.allows(0) && !mask.allows(1));
    assert_eq!(state.advance_token(&vocab, 1), Err(Rejected::Incomplete));
    assert_eq!(
        state.advance_token(&vocab, 0),
        Err(Rejected::Token { id: 0 })
    );
    state.advance(b"12").unwrap();
    let mask = state.allowed_tokens(&vocab);
    assert!(mask.allows(1) && !mask.allows(0));
    state.advance_token(&vocab, 1).unwrap();
}

#[test]
fn resuming_from_the_text_so_far_reproduces_the_state() {
    let vocab = small_vocab();
    let g = compile(
        r#"{"type":"object","properties":{"name":{"type":"string"},"n":{"type":"array","items":{"type":"number"}}},"required":["name","n"]}"#,
    );
    let mut rng = Rng::new(7);
    for _ in 0..20 {
        let mut state = GrammarState::new(&g);
        let mut text = Vec::new();
        for _ in 0..40 {
            let mask = state.allowed_tokens(&vocab);
            let allowed: Vec<u32> = mask.iter().filter(|&id| !vocab.is_end(id)).collect();
            let Some(&id) = allowed.get(rng.below(allowed.len().max(1))) else {
                break;
            };
            state.advance_token(&vocab, id).unwrap();
            text.extend_from_slice(vocab.token_bytes(id));

            // A node taking over mid-answer has only the text, split into tokens its own way.
            let mut resumed = GrammarState::new(&g);
            resumed.advance(&text).unwrap();
            assert_eq!(resumed.allowed_tokens(&vocab), state.allowed_tokens(&vocab));
            assert_eq!(resumed.is_complete(), state.is_complete());
            assert_eq!(resumed.canonical(), state.canonical());
        }
    }
}

/// A vocabulary of `n` random tokens shaped like a real one: words with or without a leading
/// space, punctuation runs, digits, whitespace, multi-byte characters and stray UTF-8 bytes.
fn synthetic_vocab(n: usize, seed: u64) -> TokenVocab {
    let mut rng = Rng::new(seed);
    let alphabet: Vec<&[u8]> = vec![
        b"e",
        b"t",
        b"a",
        b"o",
        b"n",
        b"s",
        b"r",
        b"i",
        b"l",
        b"d",
        b"c",
        b"u",
        b"m",
        b"p",
        b"T",
        b"\"",
        b"{",
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b".",
        b"-",
        b"_",
        b"\\",
        b"/",
        b"0",
        b"1",
        b"7",
        b"\n",
        b"\t",
        b"\xC3\xA9",
        b"\xE6\x97\xA5",
        b"\xF0\x9F\x98\x80",
        b"\xE2",
        b"\x80",
        b"\x9C",
    ];
    let mut tokens: Vec<Vec<u8>> = vec![Vec::new(), b"<|endoftext|>".to_vec()];
    tokens.extend((0..=255u8).map(|b| vec![b]));
    while tokens.len() < n {
        let mut token = Vec::new();
        match rng.below(4) {
            0 => token.push(b' '),
            1 => token.extend_from_slice(b"  "),
            _ => {}
        }
        for _ in 0..1 + rng.below(9) {
            token.extend_from_slice(alphabet[rng.below(alphabet.len())]);
        }
        tokens.push(token);
    }
    let refs: Vec<&[u8]> = tokens.iter().map(Vec::as_slice).collect();
    TokenVocab::new(&refs, &[1])
}

#[test]
fn masks_over_a_50k_vocabulary_match_the_reference() {
    let vocab = synthetic_vocab(50_000, 42);
    let g = compile(
        r#"{"type":"object","properties":{"title":{"type":"string"},"year":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"}}},"required":["title","year","tags"]}"#,
    );
    // Timings are printed for `--nocapture`, never asserted: speed belongs to benchmarks.
    let prefixes: [&[u8]; 6] = [
        b"",
        b"{",
        b"{\"title\": \"The ",
        b"{\"title\": \"The \xE6\x97",
        b"{\"title\":\"x\",\"year\":19",
        b"{\"title\":\"x\",\"year\":1,\"tags\":[",
    ];
    for prefix in prefixes {
        let mut state = GrammarState::new(&g);
        state.advance(prefix).unwrap();
        let prefix = String::from_utf8_lossy(prefix);
        let start = Instant::now();
        let mask = state.allowed_tokens(&vocab);
        let elapsed = start.elapsed();
        println!(
            "{} trie nodes, prefix {prefix:?}: {} tokens allowed in {elapsed:?}",
            vocab.nodes.len(),
            mask.count()
        );
        assert_mask_is_exact(&state, &vocab, &prefix);
    }
}
