//! The rules of JSON syntax: whitespace, the built-in value rules (llama.cpp's primitives), and
//! objects, arrays and strings shaped by a schema's keywords.

use super::json::{Json, quoted};
use super::{Compiler, SchemaError, Whitespace, invalid, rule_name};
use crate::grammar::{ByteSet, CharClass, GrammarBuilder, GrammarError, RuleId, Term};

/// Most spaces or tabs after a newline in [`Whitespace::Bounded`].
const MAX_INDENT: usize = 20;
/// Digits of an integer, or of a number's integral part: more than an `f64` holds exactly, few
/// enough that a small model cannot loop on digits for long.
const MAX_INT_DIGITS: usize = 16;
const MAX_FRACTION_DIGITS: usize = 16;
/// Exponent digits: two keep every number finite as an `f64`.
const MAX_EXPONENT_DIGITS: usize = 2;

fn lit(text: &str) -> Term {
    Term::lit(text)
}

fn set(bytes: &[u8]) -> Term {
    let mut set = ByteSet::default();
    for &b in bytes {
        set.insert(b);
    }
    Term::Bytes(set)
}

fn digits(from: u8) -> Term {
    digits_range(from, b'9')
}

fn digits_range(from: u8, to: u8) -> Term {
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

/// A built-in rule; each value rule ends with whitespace.
pub(super) fn builtin(c: &mut Compiler, name: &'static str) -> Result<RuleId, SchemaError> {
    let ws = Term::Rule(c.ws);
    let rule = match name {
        "value" => {
            // Declared first: objects and arrays refer back to it.
            let value = c.b.declare("value");
            c.builtins.insert("value", value);
            let mut alternatives = Vec::new();
            for kind in [
                "any-object",
                "any-array",
                "string",
                "number",
                "boolean",
                "null",
            ] {
                alternatives.push(vec![Term::Rule(c.builtin(kind)?)]);
            }
            c.b.define(value, alternatives)?;
            value
        }
        "any-object" => {
            let member = vec![
                Term::Rule(c.builtin("string")?),
                lit(":"),
                ws,
                Term::Rule(c.builtin("value")?),
            ];
            members(c, "object", ("{", "}"), &member, 0, None)?
        }
        "any-array" => {
            let item = [Term::Rule(c.builtin("value")?)];
            members(c, "array", ("[", "]"), &item, 0, None)?
        }
        "char" => {
            let plain = CharClass::new(&[
                ('"', '"'),
                ('\\', '\\'),
                ('\0', '\u{1f}'),
                ('\u{7f}', '\u{7f}'),
            ])
            .negate();
            let hex = Term::Bytes(hex_digits());
            let mut not_d = hex_digits();
            not_d.remove(b'd');
            not_d.remove(b'D');
            c.b.rule(
                "char",
                vec![
                    vec![Term::Chars(plain)],
                    vec![lit("\\"), set(b"\"\\/bfnrt")],
                    // No surrogate escapes: a lone one is not a character, and serde_json
                    // refuses it. Raw UTF-8 spells every character outside the BMP instead.
                    vec![
                        lit("\\u"),
                        Term::Bytes(not_d),
                        hex.clone(),
                        hex.clone(),
                        hex.clone(),
                    ],
                    vec![
                        lit("\\u"),
                        set(b"dD"),
                        digits_range(b'0', b'7'),
                        hex.clone(),
                        hex,
                    ],
                ],
            )?
        }
        "string" => {
            let char = Term::Rule(c.builtin("char")?);
            let chars = c.b.repeat("chars", &[char], 0, None)?;
            c.b.rule(
                "string",
                vec![vec![lit("\""), Term::Rule(chars), lit("\""), ws]],
            )?
        }
        "int-part" => {
            let rest =
                c.b.repeat("int-digits", &[digits(b'0')], 0, Some(MAX_INT_DIGITS - 1))?;
            c.b.rule(
                "int-part",
                vec![vec![lit("0")], vec![digits(b'1'), Term::Rule(rest)]],
            )?
        }
        "sign" => c.b.rule("sign", vec![vec![], vec![lit("-")]])?,
        "integer" => {
            let (sign, int) = (c.builtin("sign")?, c.builtin("int-part")?);
            c.b.rule("integer", vec![vec![Term::Rule(sign), Term::Rule(int), ws]])?
        }
        "number" => number(c)?,
        "boolean" => c.b.rule(
            "boolean",
            vec![vec![lit("true"), ws.clone()], vec![lit("false"), ws]],
        )?,
        "null" => c.b.rule("null", vec![vec![lit("null"), ws]])?,
        other => unreachable_builtin(other)?,
    };
    Ok(rule)
}

/// Only the names above are ever asked for; a typo would surface in the unit tests as this error.
fn unreachable_builtin(name: &str) -> Result<RuleId, SchemaError> {
    Err(SchemaError::Unsupported {
        keyword: format!("built-in rule {name}"),
        path: "#".into(),
    })
}

fn hex_digits() -> ByteSet {
    let mut hex = ByteSet::range(b'0', b'9');
    for b in (b'a'..=b'f').chain(b'A'..=b'F') {
        hex.insert(b);
    }
    hex
}

/// `-? int-part ("." digits)? ([eE] [-+]? digits)?`, digit counts bounded.
fn number(c: &mut Compiler) -> Result<RuleId, SchemaError> {
    let (sign, int) = (c.builtin("sign")?, c.builtin("int-part")?);
    let fraction_digits = c.b.repeat(
        "fraction-digits",
        &[digits(b'0')],
        1,
        Some(MAX_FRACTION_DIGITS),
    )?;
    let fraction = c.b.rule(
        "fraction",
        vec![vec![], vec![lit("."), Term::Rule(fraction_digits)]],
    )?;
    let exponent_digits = c.b.repeat(
        "exponent-digits",
        &[digits(b'0')],
        1,
        Some(MAX_EXPONENT_DIGITS),
    )?;
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

/// `open ws (item ("," ws item){min-1,max-1})? close ws`: an array's items or an object's
/// members.
fn members(
    c: &mut Compiler,
    name: &str,
    (open, close): (&str, &str),
    item: &[Term],
    min: usize,
    max: Option<usize>,
) -> Result<RuleId, GrammarError> {
    let ws = Term::Rule(c.ws);
    let mut seq = vec![lit(open), ws.clone()];
    if max != Some(0) {
        let mut more = vec![lit(","), ws.clone()];
        more.extend_from_slice(item);
        let rest = c.b.repeat(
            &format!("{name}-more"),
            &more,
            min.saturating_sub(1),
            max.map(|m| m - 1),
        )?;
        let mut some = item.to_vec();
        some.push(Term::Rule(rest));
        if min == 0 {
            let optional = c.b.rule(&format!("{name}-items"), vec![some, vec![]])?;
            seq.push(Term::Rule(optional));
        } else {
            seq.extend(some);
        }
    }
    seq.extend([lit(close), ws]);
    c.b.rule(name, vec![seq])
}

/// A non-negative integer keyword (`minItems`, `maxLength`, ...), if present.
fn count(schema: &Json, keyword: &str, path: &str) -> Result<Option<usize>, SchemaError> {
    match schema.get(keyword) {
        None => Ok(None),
        Some(Json::Number(n)) => match n.as_u64().and_then(|n| usize::try_from(n).ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(invalid(keyword, path, "a non-negative integer")),
        },
        Some(_) => Err(invalid(keyword, path, "a non-negative integer")),
    }
}

/// `min`/`max` keyword pair, checked to leave some count possible.
fn bounds(
    schema: &Json,
    keywords: (&str, &str),
    path: &str,
) -> Result<(usize, Option<usize>), SchemaError> {
    let min = count(schema, keywords.0, path)?.unwrap_or(0);
    let max = count(schema, keywords.1, path)?;
    if max.is_some_and(|max| max < min) {
        return Err(SchemaError::Unsatisfiable {
            path: path.to_string(),
        });
    }
    Ok((min, max))
}

/// A string, with `minLength`/`maxLength` counted in characters (an escape is one).
pub(super) fn string(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    if schema.get("minLength").is_none() && schema.get("maxLength").is_none() {
        return c.builtin("string");
    }
    let (min, max) = bounds(schema, ("minLength", "maxLength"), path)?;
    let char = Term::Rule(c.builtin("char")?);
    let name = rule_name(path);
    let chars = c.b.repeat(&format!("{name}-chars"), &[char], min, max)?;
    Ok(c.b.rule(
        &name,
        vec![vec![
            lit("\""),
            Term::Rule(chars),
            lit("\""),
            Term::Rule(c.ws),
        ]],
    )?)
}

/// An array of `items` (any values when absent), `minItems` to `maxItems` of them.
pub(super) fn array(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    let item = match schema.get("items") {
        None => c.builtin("value")?,
        Some(Json::Array(_)) => {
            return Err(SchemaError::Unsupported {
                keyword: "items (as an array of schemas)".into(),
                path: path.to_string(),
            });
        }
        Some(items) => c.compile(items, &format!("{path}/items"))?,
    };
    let (min, max) = bounds(schema, ("minItems", "maxItems"), path)?;
    if schema.get("items").is_none() && min == 0 && max.is_none() {
        return c.builtin("any-array");
    }
    Ok(members(
        c,
        &rule_name(path),
        ("[", "]"),
        &[Term::Rule(item)],
        min,
        max,
    )?)
}

/// An object. With `properties`, exactly those (in their order; the `required` ones always, the
/// others optionally) unless `additionalProperties` says otherwise, which is refused; without,
/// any members whose values match `additionalProperties` (any value when absent or `true`).
pub(super) fn object(c: &mut Compiler, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
    let required: Vec<&str> = match schema.get("required") {
        None => Vec::new(),
        Some(Json::Array(names)) => names
            .iter()
            .map(|n| match n {
                Json::String(s) => Ok(s.as_str()),
                _ => Err(invalid("required", path, "an array of property names")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("required", path, "an array of property names")),
    };
    let properties = match schema.get("properties") {
        None => None,
        Some(Json::Object(pairs)) => Some(pairs.as_slice()),
        Some(_) => return Err(invalid("properties", path, "an object of schemas")),
    };
    let additional = schema.get("additionalProperties");
    let closed = matches!(additional, Some(Json::Bool(false)));
    let declared = |name: &str| properties.is_some_and(|p| p.iter().any(|(k, _)| k == name));
    if let Some(missing) = required.iter().find(|name| !declared(name)) {
        return Err(SchemaError::Invalid {
            keyword: format!("required ({missing:?})"),
            path: path.to_string(),
            reason: "only properties declared in \"properties\" can be required",
        });
    }
    match (properties, additional) {
        (Some(properties), None) => closed_object(c, properties, &required, path),
        (Some(_), Some(_)) | (None, Some(_)) if closed => {
            closed_object(c, properties.unwrap_or(&[]), &required, path)
        }
        (Some(_), Some(_)) => Err(SchemaError::Combination {
            keywords: "\"properties\" and \"additionalProperties\" other than false".into(),
            path: path.to_string(),
        }),
        (None, None) | (None, Some(Json::Bool(true))) => c.builtin("any-object"),
        (None, Some(values)) => {
            let value = c.compile(values, &format!("{path}/additionalProperties"))?;
            let member = [
                Term::Rule(c.builtin("string")?),
                lit(":"),
                Term::Rule(c.ws),
                Term::Rule(value),
            ];
            Ok(members(c, &rule_name(path), ("{", "}"), &member, 0, None)?)
        }
    }
}

/// `{ws A0 }ws`: `A_i` is the members from property `i` on when none came before, `B_i` when
/// some did (so each is preceded by a comma); optional properties may be skipped.
fn closed_object(
    c: &mut Compiler,
    properties: &[(String, Json)],
    required: &[&str],
    path: &str,
) -> Result<RuleId, SchemaError> {
    let name = rule_name(path);
    let ws = Term::Rule(c.ws);
    let mut first = c.b.rule(&format!("{name}-end"), vec![vec![]])?;
    let mut later = first;
    for (key, schema) in properties.iter().rev() {
        let escaped = key.replace('~', "~0").replace('/', "~1");
        let value = c.compile(schema, &format!("{path}/properties/{escaped}"))?;
        let member = vec![
            lit(&quoted(key)),
            ws.clone(),
            lit(":"),
            ws.clone(),
            Term::Rule(value),
        ];
        let mut here = member.clone();
        here.push(Term::Rule(later));
        let mut after = vec![lit(","), ws.clone()];
        after.extend(member);
        after.push(Term::Rule(later));
        let (mut first_alts, mut later_alts) = (vec![here], vec![after]);
        if !required.contains(&key.as_str()) {
            first_alts.push(vec![Term::Rule(first)]);
            later_alts.push(vec![Term::Rule(later)]);
        }
        first = c.b.rule(&format!("{name}-first"), first_alts)?;
        later = c.b.rule(&format!("{name}-later"), later_alts)?;
    }
    Ok(c.b.rule(
        &name,
        vec![vec![lit("{"), ws.clone(), Term::Rule(first), lit("}"), ws]],
    )?)
}
