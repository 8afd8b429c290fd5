//! Grammar building and the matcher on hand-written grammars.

use super::*;

/// `greeting ::= ("hi" | "héllo") " " name "!"`, `name ::= [a-z日本]+`.
fn greeting() -> Grammar {
    let mut b = GrammarBuilder::new();
    let letter = Term::Chars(CharClass::new(&[('a', 'z'), ('日', '日'), ('本', '本')]));
    let name = b.repeat("name", &[letter], 1, None).unwrap();
    let root = b
        .rule(
            "greeting",
            vec![
                vec![
                    Term::lit("hi"),
                    Term::lit(" "),
                    Term::Rule(name),
                    Term::lit("!"),
                ],
                vec![
                    Term::lit("héllo"),
                    Term::lit(" "),
                    Term::Rule(name),
                    Term::lit("!"),
                ],
            ],
        )
        .unwrap();
    b.build(root).unwrap()
}

fn accepts_all(g: &Grammar, text: &str) -> bool {
    let mut state = GrammarState::new(g);
    state.advance(text.as_bytes()).is_ok() && state.is_complete()
}

#[test]
fn matcher_accepts_the_language_and_nothing_else() {
    let g = greeting();
    for ok in ["hi bob!", "héllo 日本!", "hi a日b!"] {
        assert!(accepts_all(&g, ok), "{ok}");
    }
    for bad in [
        "hi !",
        "hi Bob!",
        "hello bob!",
        "hi bob",
        "hi bob!!",
        "hi 中!",
    ] {
        assert!(!accepts_all(&g, bad), "{bad}");
    }
}

#[test]
fn a_partial_utf8_character_is_a_valid_intermediate_state() {
    let g = greeting();
    let mut state = GrammarState::new(&g);
    state.advance(b"hi ").unwrap();
    // 日 is E6 97 A5: its first two bytes are a valid prefix, a wrong third byte is not.
    assert!(state.accepts_bytes(&[0xE6, 0x97]));
    assert!(!state.accepts_bytes(&[0xE6, 0x97, 0xA6]));
    // 中 is E4 B8 AD: refused at its first byte.
    assert_eq!(
        state.clone().advance("中".as_bytes()),
        Err(Rejected::Byte {
            offset: 0,
            byte: 0xE4
        })
    );
    state.advance(&[0xE6]).unwrap();
    state.advance(&[0x97, 0xA5]).unwrap();
    state.advance(b"!").unwrap();
    assert!(state.is_complete());
    assert!(state.is_finished());
}

#[test]
fn a_rejected_advance_leaves_the_state_unchanged() {
    let g = greeting();
    let mut state = GrammarState::new(&g);
    state.advance(b"hi b").unwrap();
    assert_eq!(
        state.advance(b"ob?"),
        Err(Rejected::Byte {
            offset: 2,
            byte: b'?'
        })
    );
    state.advance(b"ob!").unwrap();
    assert!(state.is_complete());
}

#[test]
fn char_classes_spell_only_valid_utf8() {
    let mut b = GrammarBuilder::new();
    let root = b
        .rule("any", vec![vec![Term::Chars(CharClass::any())]])
        .unwrap();
    let g = b.build(root).unwrap();
    for c in [
        '\0',
        'a',
        '\u{7f}',
        'é',
        '\u{800}',
        '\u{ffff}',
        '😀',
        '\u{10ffff}',
    ] {
        assert!(accepts_all(&g, &c.to_string()), "U+{:04X}", c as u32);
    }
    // A surrogate (ED A0 80), an overlong '/' (C0 AF), a stray continuation byte, past U+10FFFF.
    for bad in [
        &[0xED, 0xA0, 0x80][..],
        &[0xC0, 0xAF],
        &[0x80],
        &[0xF4, 0x90, 0x80, 0x80],
    ] {
        let mut state = GrammarState::new(&g);
        assert!(state.advance(bad).is_err(), "{bad:02X?}");
    }
}

#[test]
fn negated_classes_exclude_their_characters() {
    let class = CharClass::new(&[('"', '"'), ('\0', '\u{1f}')]).negate();
    assert!(!class.contains('"') && !class.contains('\n'));
    assert!(class.contains('a') && class.contains('é') && class.contains('\u{10ffff}'));
}

#[test]
fn undefined_and_left_recursive_rules_are_refused() {
    let mut b = GrammarBuilder::new();
    let missing = b.declare("missing");
    let root = b.rule("root", vec![vec![Term::Rule(missing)]]).unwrap();
    assert_eq!(
        b.build(root).unwrap_err(),
        GrammarError::Undefined {
            name: "missing".into()
        }
    );

    // list ::= list "," item | item — left recursion, even through a nullable prefix.
    let mut b = GrammarBuilder::new();
    let list = b.declare("list");
    let nothing = b.rule("nothing", vec![vec![]]).unwrap();
    b.define(
        list,
        vec![
            vec![Term::Rule(nothing), Term::Rule(list), Term::lit(",x")],
            vec![Term::lit("x")],
        ],
    )
    .unwrap();
    assert_eq!(
        b.build(list).unwrap_err(),
        GrammarError::LeftRecursive {
            name: "list".into()
        }
    );

    // Right recursion is fine: list ::= "x" ("," list)?
    let mut b = GrammarBuilder::new();
    let list = b.declare("list");
    let more = b
        .rule("more", vec![vec![Term::lit(","), Term::Rule(list)], vec![]])
        .unwrap();
    b.define(list, vec![vec![Term::lit("x"), Term::Rule(more)]])
        .unwrap();
    let g = b.build(list).unwrap();
    assert!(accepts_all(&g, "x,x,x"));
}

#[test]
fn repetition_counts_are_exact() {
    let mut b = GrammarBuilder::new();
    let root = b.repeat("ab", &[Term::lit("ab")], 2, Some(4)).unwrap();
    let g = b.build(root).unwrap();
    for (n, ok) in [
        (0, false),
        (1, false),
        (2, true),
        (3, true),
        (4, true),
        (5, false),
    ] {
        assert_eq!(accepts_all(&g, &"ab".repeat(n)), ok, "{n} repetitions");
    }
    let mut b = GrammarBuilder::new();
    assert_eq!(
        b.repeat("huge", &[Term::lit("a")], 0, Some(MAX_ELEMENTS))
            .unwrap_err(),
        GrammarError::TooLarge {
            limit: MAX_ELEMENTS
        }
    );
}

#[test]
fn deep_right_recursion_does_not_grow_the_stacks() {
    // 10 000 repetitions of an unbounded rule: tail references push nothing.
    let mut b = GrammarBuilder::new();
    let root = b.repeat("as", &[Term::lit("a")], 0, None).unwrap();
    let g = b.build(root).unwrap();
    let mut state = GrammarState::new(&g);
    state.advance(&[b'a'; 10_000]).unwrap();
    assert!(state.is_complete());
    assert!(format!("{state:?}").len() < 1_000, "{state:?}");
}

#[test]
fn grammars_print_as_gbnf_like_text() {
    let text = greeting().to_string();
    assert!(
        text.starts_with("greeting ::= [h] [i] [\\x20] name [!] |"),
        "{text}"
    );
    assert!(text.contains("name-more ::="), "{text}");
}

#[test]
fn token_vocab_keeps_control_and_end_tokens_out_of_the_trie() {
    let tokens: Vec<&[u8]> = vec![b"a", b"", b"ab", b"<eos>", b"ab", b"b"];
    let vocab = TokenVocab::new(&tokens, &[3]);
    assert_eq!(vocab.len(), 6);
    assert_eq!(vocab.token_bytes(3), b"");
    assert_eq!(vocab.token_bytes(4), b"ab");
    assert!(vocab.is_end(3) && !vocab.is_end(1));
    // Nodes: a, ab, b — duplicates share a node, the empty and end tokens have none.
    assert_eq!(vocab.nodes.len(), 3);
    let mut tokens = vocab.tokens.clone();
    tokens.sort_unstable();
    assert_eq!(tokens, vec![0, 2, 4, 5]);
}

#[test]
fn token_mask_bits_and_logits() {
    let mut mask = TokenMask::new(130);
    for id in [0, 63, 64, 129, 500] {
        mask.allow(id);
    }
    assert_eq!(mask.count(), 4);
    assert_eq!(mask.iter().collect::<Vec<_>>(), vec![0, 63, 64, 129]);
    assert!(mask.allows(63) && !mask.allows(1) && !mask.allows(500));
    let mut logits = vec![1.0f32; 131];
    mask.apply(&mut logits);
    assert_eq!(logits[0], 1.0);
    assert_eq!(logits[1], f32::NEG_INFINITY);
    assert_eq!(logits[130], f32::NEG_INFINITY);
}

#[test]
fn token_vocab_from_a_tokenizer_uses_its_bytes_control_and_end_tokens() {
    use crate::tokenizer::{Tokenizer, VocabSpec};
    // A SentencePiece vocabulary: <unk> (unknown), <s> and </s> (control), the 256 byte-fallback
    // tokens, a few pieces, and <|im_end|> (control, an end of turn).
    let (normal, unknown, control, byte) = (1, 2, 3, 6);
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    let mut token_types = vec![unknown, control, control];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    token_types.extend([byte; 256]);
    tokens.extend(["▁{", "\"", "日本", "<|im_end|>"].map(String::from));
    token_types.extend([normal, normal, normal, control]);
    let im_end = tokens.len() as u32 - 1;
    let tokenizer = Tokenizer::from_spec(VocabSpec {
        model: "llama".into(),
        tokens,
        token_types,
        ..VocabSpec::default()
    })
    .unwrap();
    let vocab = TokenVocab::from_tokenizer(&tokenizer);
    assert_eq!(vocab.len(), tokenizer.vocab_size());
    assert_eq!(vocab.end_ids(), &[2, im_end]);
    assert_eq!(vocab.token_bytes(3 + 0xC3), &[0xC3]);
    assert_eq!(vocab.token_bytes(259), b" {");

    let g = any_json(&SchemaOptions::default());
    let mut state = GrammarState::new(&g);
    let mask = state.allowed_tokens(&vocab);
    assert!(mask.allows(3 + u32::from(b'{')) && mask.allows(259) && mask.allows(260));
    assert!(!mask.allows(3 + u32::from(b'}')) && !mask.allows(261));
    for never in [0, 1, 2, im_end] {
        assert!(!mask.allows(never), "token {never}");
    }
    state.advance(b"\"").unwrap();
    assert!(
        state.allowed_tokens(&vocab).allows(261),
        "日本 inside a string"
    );
    state.advance_token(&vocab, 3 + 0xE6).unwrap();
    let mask = state.allowed_tokens(&vocab);
    assert_eq!(
        mask.iter().collect::<Vec<_>>(),
        (3 + 0x80..3 + 0xC0).collect::<Vec<u32>>()
    );
    state
        .advance("\u{65e5}\"".as_bytes().get(1..).unwrap())
        .unwrap();
    let mask = state.allowed_tokens(&vocab);
    assert!(mask.allows(2) && mask.allows(im_end) && !mask.allows(1));
}
