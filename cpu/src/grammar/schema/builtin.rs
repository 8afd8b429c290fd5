//! The fixed rules of JSON syntax (llama.cpp's primitives): whitespace, any value, strings,
//! numbers and literals. Each value rule ends with the whitespace rule.

use super::rules::members;
use super::{Compiler, SchemaError, Whitespace};
use crate::grammar::{ByteSet, CharClass, GrammarBuilder, GrammarError, RuleId, Term};

/// Most spaces or tabs after a newline in [`Whitespace::Bounded`].
const MAX_INDENT: usize = 20;
/// Digits of an integer, or of a number's integral part: more than an `f64` holds exactly, few
/// enough that a small model cannot loop on digits for long.
const MAX_INT_DIGITS: usize = 16;
const MAX_FRACTION_DIGITS: usize = 16;
/// Exponent digits: two keep every number finite as an `f64`.
const MAX_EXPONENT_DIGITS: usize = 2;

/// A rule every schema may share, made on first use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Builtin {
    /// Any JSON value.
    Value,
    AnyObject,
    AnyArray,
    /// One character of a string's content, escapes included.
    Char,
    String,
    /// `0` or up to 16 digits without a leading zero.
    IntPart,
    /// An optional minus sign.
    Sign,
    Integer,
    Number,
    Boolean,
    Null,
}

pub(super) fn lit(text: &str) -> Term {
    Term::lit(text)
}

pub(super) fn set(bytes: &[u8]) -> Term {
    let mut set = ByteSet::default();
    for &b in bytes {
        set.insert(b);
    }
    Term::Bytes(set)
}

fn digits(from: u8, to: u8) -> Term {
    Term::Bytes(ByteSet::range(from, to))
}

/// The whitespace rule of the given policy.
pub(super) fn whitespace(
    b: &mut GrammarBuilder,
    policy: Whitespace,
) -> Result<RuleId, GrammarError> {
    match policy {
        Whitespace::None => b.rule("ws", vec![vec![]]),
        Whitespace::Bounded => {
            let indent = b.repeat("indent", &[set(b" \t")], 0, Some(MAX_INDENT))?;
            b.rule(
                "ws",
                vec![
                    vec![],
                    vec![lit(" ")],
                    vec![lit("\n"), Term::Rule(indent)],
                    vec![lit("\n\n"), Term::Rule(indent)],
                ],
            )
        }
    }
}

/// Makes a built-in rule (the compiler caches it).
pub(super) fn make(c: &mut Compiler, which: Builtin) -> Result<RuleId, SchemaError> {
    let ws = Term::Rule(c.ws);
    let rule = match which {
        Builtin::Value => value(c)?,
        Builtin::AnyObject => {
            let member = [
                Term::Rule(c.builtin(Builtin::String)?),
                lit(":"),
                ws,
                Term::Rule(c.builtin(Builtin::Value)?),
            ];
            members(c, "object", ("{", "}"), &member, 0, None)?
        }
        Builtin::AnyArray => {
            let item = [Term::Rule(c.builtin(Builtin::Value)?)];
            members(c, "array", ("[", "]"), &item, 0, None)?
        }
        Builtin::Char => char(&mut c.b)?,
        Builtin::String => {
            let char = Term::Rule(c.builtin(Builtin::Char)?);
            let chars = c.b.repeat("chars", &[char], 0, None)?;
            c.b.rule(
                "string",
                vec![vec![lit("\""), Term::Rule(chars), lit("\""), ws]],
            )?
        }
        Builtin::IntPart => {
            let rest = c.b.repeat(
                "int-digits",
                &[digits(b'0', b'9')],
                0,
                Some(MAX_INT_DIGITS - 1),
            )?;
            c.b.rule(
                "int-part",
                vec![vec![lit("0")], vec![digits(b'1', b'9'), Term::Rule(rest)]],
            )?
        }
        Builtin::Sign => c.b.rule("sign", vec![vec![], vec![lit("-")]])?,
        Builtin::Integer => {
            let sign = c.builtin(Builtin::Sign)?;
            let int = c.builtin(Builtin::IntPart)?;
            c.b.rule("integer", vec![vec![Term::Rule(sign), Term::Rule(int), ws]])?
        }
        Builtin::Number => number(c)?,
        Builtin::Boolean => c.b.rule(
            "boolean",
            vec![vec![lit("true"), ws.clone()], vec![lit("false"), ws]],
        )?,
        Builtin::Null => c.b.rule("null", vec![vec![lit("null"), ws]])?,
    };
    Ok(rule)
}

/// `value ::= object | array | string | number | boolean | null`.
fn value(c: &mut Compiler) -> Result<RuleId, SchemaError> {
    // Cached before its alternatives are made: objects and arrays refer back to it.
    let value = c.b.declare("value");
    c.builtins.insert(Builtin::Value, value);
    let mut alternatives = Vec::new();
    for kind in [
        Builtin::AnyObject,
        Builtin::AnyArray,
        Builtin::String,
        Builtin::Number,
        Builtin::Boolean,
        Builtin::Null,
    ] {
        alternatives.push(vec![Term::Rule(c.builtin(kind)?)]);
    }
    c.b.define(value, alternatives)?;
    Ok(value)
}

/// A string's character: anything but `"`, `\` and control characters, or an escape.
fn char(b: &mut GrammarBuilder) -> Result<RuleId, GrammarError> {
    let plain = CharClass::new(&[
        ('"', '"'),
        ('\\', '\\'),
        ('\0', '\u{1f}'),
        ('\u{7f}', '\u{7f}'),
    ])
    .negate();
    let mut hex = ByteSet::range(b'0', b'9');
    for b in (b'a'..=b'f').chain(b'A'..=b'F') {
        hex.insert(b);
    }
    let mut not_d = hex;
    not_d.remove(b'd');
    not_d.remove(b'D');
    let hex = Term::Bytes(hex);
    b.rule(
        "char",
        vec![
            vec![Term::Chars(plain)],
            vec![lit("\\"), set(b"\"\\/bfnrt")],
            // No surrogate escapes: a lone one is not a character, and serde_json refuses it.
            // Raw UTF-8 spells every character outside the BMP instead.
            vec![
                lit("\\u"),
                Term::Bytes(not_d),
                hex.clone(),
                hex.clone(),
                hex.clone(),
            ],
            vec![lit("\\u"), set(b"dD"), digits(b'0', b'7'), hex.clone(), hex],
        ],
    )
}

/// `-? int-part ("." digits)? ([eE] [-+]? digits)?`, digit counts bounded.
fn number(c: &mut Compiler) -> Result<RuleId, SchemaError> {
    let sign = c.builtin(Builtin::Sign)?;
    let int = c.builtin(Builtin::IntPart)?;
    let digit = [digits(b'0', b'9')];
    let fraction_digits =
        c.b.repeat("fraction-digits", &digit, 1, Some(MAX_FRACTION_DIGITS))?;
    let fraction = c.b.rule(
        "fraction",
        vec![vec![], vec![lit("."), Term::Rule(fraction_digits)]],
    )?;
    let exponent_digits =
        c.b.repeat("exponent-digits", &digit, 1, Some(MAX_EXPONENT_DIGITS))?;
    let exponent_sign = c.b.rule("exponent-sign", vec![vec![], vec![set(b"+-")]])?;
    let exponent = c.b.rule(
        "exponent",
        vec![
            vec![],
            vec![
                set(b"eE"),
                Term::Rule(exponent_sign),
                Term::Rule(exponent_digits),
            ],
        ],
    )?;
    let terms = vec![
        Term::Rule(sign),
        Term::Rule(int),
        Term::Rule(fraction),
        Term::Rule(exponent),
        Term::Rule(c.ws),
    ];
    Ok(c.b.rule("number", vec![terms])?)
}
