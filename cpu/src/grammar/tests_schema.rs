//! The JSON-schema compiler: errors, accepted and refused documents, and random walks through the
//! mask whose every result must parse and validate.

use super::schema::json::Json;
use super::tests_mask::{Rng, assert_mask_is_exact, small_vocab};
use super::*;

const PERSON: &str = r##"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 8},
    "age": {"type": "integer"},
    "email": {"type": "string", "format": "email", "description": "annotations are ignored"},
    "tags": {"type": "array", "items": {"enum": ["a", "b", "日本"]}, "minItems": 1, "maxItems": 3},
    "ok": {"type": "boolean"},
    "score": {"type": "number"},
    "nothing": {"type": "null"}
  },
  "required": ["name", "age", "tags"]
}"##;

const LINE: &str = r##"{
  "$defs": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                      "required": ["x", "y"], "additionalProperties": false}},
  "type": "object",
  "properties": {
    "kind": {"const": "line"},
    "from": {"$ref": "#/$defs/point"},
    "to": {"$ref": "#/$defs/point"},
    "label": {"anyOf": [{"type": "string"}, {"type": "null"}]}
  },
  "required": ["kind", "from", "to"]
}"##;

const TREE: &str = r##"{
  "definitions": {"node": {"type": "object", "properties": {
    "v": {"type": "integer"},
    "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}, "maxItems": 2}
  }, "required": ["v"]}},
  "$ref": "#/definitions/node"
}"##;

const OTHERS: &[&str] = &[
    "true",
    "{}",
    r##"{"type": "object", "additionalProperties": {"type": "integer"}}"##,
    r##"{"type": ["string", "integer", "null"]}"##,
    r##"{"type": "array", "items": {"type": "string", "minLength": 2, "maxLength": 3}, "minItems": 2}"##,
    r##"{"oneOf": [{"type": "boolean"}, {"type": "array", "maxItems": 0}]}"##,
    r##"{"allOf": [{"type": "object", "properties": {"a\"b/c": {"type": "string"}}, "additionalProperties": false}]}"##,
];

fn compile(schema: &str) -> Grammar {
    compile_schema(schema, &SchemaOptions::default()).unwrap()
}

fn accepts(g: &Grammar, text: &str) -> bool {
    let mut state = GrammarState::new(g);
    state.advance(text.as_bytes()).is_ok() && state.is_complete()
}

#[test]
fn schema_errors_name_the_keyword_and_the_path() {
    let cases: &[(&str, &str)] = &[
        (
            r##"{"type":"string","pattern":"a+"}"##,
            "Unsupported pattern #",
        ),
        (
            r##"{"properties":{"a":{"type":"integer","minimum":0}}}"##,
            "Unsupported minimum #/properties/a",
        ),
        (r##"{"type":"array","items":[{}]}"##, "Unsupported items #"),
        (r##"{"allOf":[{},{}]}"##, "Unsupported allOf #/allOf"),
        (r##"{"$ref":"https://example.com/s.json"}"##, "Ref #/$ref"),
        (r##"{"$ref":"#/$defs/missing"}"##, "Ref #/$ref"),
        (r##"{"type":"strin"}"##, "Invalid type #"),
        (r##"{"enum":3}"##, "Invalid enum #"),
        (r##"{"type":"array","minItems":-1}"##, "Invalid minItems #"),
        (
            r##"{"type":"object","properties":{"a":{}},"required":["b"]}"##,
            "Invalid required #",
        ),
        (
            r##"{"type":"array","minItems":3,"maxItems":2}"##,
            "Unsatisfiable #",
        ),
        (r##"{"type":"string","enum":[1,2]}"##, "Unsatisfiable #"),
        (r##"{"enum":[]}"##, "Unsatisfiable #"),
        (
            r##"{"properties":{"a":false},"required":["a"]}"##,
            "Unsatisfiable #/properties/a",
        ),
        (
            r##"{"type":"object","properties":{"a":{}},"additionalProperties":true}"##,
            "Combination #",
        ),
        (
            r##"{"$ref":"#/$defs/a","type":"object","$defs":{"a":{}}}"##,
            "Combination #",
        ),
        (r##"{"minLength":1,"items":{}}"##, "Combination #"),
        (r##"{"$ref":"#"}"##, "Grammar"),
        (r##"{"type":"array","maxItems":100000000}"##, "Grammar"),
        (r##"{"type": "string""##, "Json"),
    ];
    for (schema, expected) in cases {
        let err = compile_schema(schema, &SchemaOptions::default()).unwrap_err();
        let got = match &err {
            SchemaError::Unsupported { keyword, path } => {
                format!(
                    "Unsupported {} {path}",
                    keyword.split(' ').next().unwrap_or("")
                )
            }
            SchemaError::Invalid { keyword, path, .. } => {
                format!("Invalid {} {path}", keyword.split(' ').next().unwrap_or(""))
            }
            SchemaError::Ref { path, .. } => format!("Ref {path}"),
            SchemaError::Combination { path, .. } => format!("Combination {path}"),
            SchemaError::Unsatisfiable { path } => format!("Unsatisfiable {path}"),
            SchemaError::TooDeep { .. } => "TooDeep".into(),
            SchemaError::Grammar(_) => "Grammar".into(),
            SchemaError::Json(_) => "Json".into(),
        };
        assert_eq!(&got, expected, "{schema}: {err}");
    }
    // A chain of 10 000 `$ref`s: refused, not a stack overflow.
    let defs: Vec<String> = (0..10_000)
        .map(|i| format!(r##""d{i}":{{"$ref":"#/$defs/d{}"}}"##, i + 1))
        .collect();
    let chain = format!(
        r##"{{"$defs":{{{},"d10000":{{}}}},"$ref":"#/$defs/d0"}}"##,
        defs.join(",")
    );
    let err = compile_schema(&chain, &SchemaOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            SchemaError::TooDeep {
                limit: MAX_DEPTH,
                ..
            }
        ),
        "{err}"
    );
    let err = compile_schema(
        r##"{"properties":{"a":{"pattern":"x"}}}"##,
        &SchemaOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported keyword \"pattern\" at #/properties/a"
    );
}

#[test]
fn objects_follow_the_schema() {
    let g = compile(PERSON);
    let ok = [
        r##"{"name":"Al","age":30,"tags":["a"]}"##,
        "{\n  \"name\": \"日本語\",\n  \"age\": -3,\n  \"tags\": [ \"b\", \"日本\" ],\n  \"ok\": false\n}\n",
        r##"{"name":"","age":0,"email":"a@b","tags":["a","a","a"],"ok":true,"score":1.5e-3,"nothing":null}"##,
        r##"{"name":"\"\\\/\u00e9\n","age":1,"tags":["a"]}"##,
    ];
    for text in ok {
        assert!(accepts(&g, text), "{text}");
    }
    let bad = [
        r##"{"name":"Al","tags":["a"]}"##,          // age is required
        r##"{"age":30,"name":"Al","tags":["a"]}"##, // properties in schema order
        r##"{"name":"Al","age":30,"tags":["a"],"extra":1}"##, // no undeclared properties
        r##"{"name":"Alexander","age":30,"tags":["a"]}"##, // maxLength 8
        r##"{"name":"Al","age":30,"tags":[]}"##,    // minItems 1
        r##"{"name":"Al","age":30,"tags":["a","a","a","a"]}"##, // maxItems 3
        r##"{"name":"Al","age":3.5,"tags":["a"]}"##, // integer
        r##"{"name":"Al","age":030,"tags":["a"]}"##, // leading zero
        r##"{"name":"Al","age":30,"tags":["c"]}"##, // enum
        r##"{"name":"Al","age":30,"tags":["a"],}"##, // trailing comma
        r##"{"name":"A	l","age":30,"tags":["a"]}"##, // raw tab in a string
        r##"{"name":"\uD800","age":30,"tags":["a"]}"##, // lone surrogate escape
        r##"{"name":"\x","age":30,"tags":["a"]}"##, // unknown escape
        r##"{"name":"Al","age":12345678901234567,"tags":["a"]}"##, // 17 digits
    ];
    for text in bad {
        assert!(!accepts(&g, text), "{text}");
    }
    let indented = format!(
        "{{\n{}\"name\":\"A\",\"age\":1,\"tags\":[\"a\"]}}",
        " ".repeat(21)
    );
    assert!(!accepts(&g, &indented), "at most 20 spaces of indentation");
}

#[test]
fn refs_choices_and_constants() {
    let g = compile(LINE);
    assert!(accepts(
        &g,
        r##"{"kind":"line","from":{"x":0,"y":1.5},"to":{"x":-2,"y":3e2},"label":null}"##
    ));
    assert!(accepts(
        &g,
        r##"{"kind":"line","from":{"x":0,"y":1},"to":{"x":1,"y":1},"label":"ab"}"##
    ));
    assert!(!accepts(
        &g,
        r##"{"kind":"lane","from":{"x":0,"y":1},"to":{"x":1,"y":1}}"##
    ));
    assert!(!accepts(
        &g,
        r##"{"kind":"line","from":{"x":0},"to":{"x":1,"y":1}}"##
    ));

    let tree = compile(TREE);
    assert!(accepts(
        &tree,
        r##"{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]}"##
    ));
    assert!(!accepts(
        &tree,
        r##"{"v":1,"kids":[{"v":2},{"v":3},{"v":4}]}"##
    ));
}

#[test]
fn any_json_and_whitespace_policies() {
    let g = any_json(&SchemaOptions::default());
    for text in [
        "0",
        " {\"a\": [1, -2.5e+10, \"x\", true, null, {}]} ",
        "[[[]]]",
        "\"\\u00e9😀\"",
    ] {
        assert!(accepts(&g, text), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
    }
    for text in [
        "{\"a\":}",
        "[1,]",
        "{a:1}",
        "'x'",
        "01",
        "1.",
        "\"\u{1}\"",
        "nul",
    ] {
        assert!(!accepts(&g, text), "{text}");
    }
    let compact = compile_schema(
        PERSON,
        &SchemaOptions {
            whitespace: Whitespace::None,
        },
    )
    .unwrap();
    assert!(accepts(&compact, r##"{"name":"A","age":1,"tags":["a"]}"##));
    assert!(!accepts(
        &compact,
        r##"{"name": "A","age":1,"tags":["a"]}"##
    ));
}

#[test]
fn property_order_is_the_texts_unless_given_a_sorted_value() {
    let schema = r##"{"type":"object","properties":{"b":{"type":"integer"},"a":{"type":"integer"}},"required":["b","a"]}"##;
    assert!(accepts(&compile(schema), r##"{"b":1,"a":2}"##));
    let value: serde_json::Value = serde_json::from_str(schema).unwrap();
    let sorted = compile_value(&value, &SchemaOptions::default()).unwrap();
    assert!(accepts(&sorted, r##"{"a":2,"b":1}"##));
}

/// Draws tokens from the mask until the grammar is complete; after `soft` steps it prefers the
/// end token, then tokens that start by closing something, so that every walk ends.
fn random_walk(g: &Grammar, vocab: &TokenVocab, rng: &mut Rng, soft: usize) -> Vec<u8> {
    let mut state = GrammarState::new(g);
    let mut text = Vec::new();
    for step in 0..soft * 20 {
        let mask = state.allowed_tokens(vocab);
        let allowed: Vec<u32> = mask.iter().collect();
        assert!(
            !allowed.is_empty(),
            "dead end after {:?}",
            String::from_utf8_lossy(&text)
        );
        let ends: Vec<u32> = allowed
            .iter()
            .copied()
            .filter(|&id| vocab.is_end(id))
            .collect();
        let closing: Vec<u32> = allowed
            .iter()
            .copied()
            .filter(|&id| matches!(vocab.token_bytes(id).first(), Some(b'"' | b'}' | b']')))
            .collect();
        let late = step >= soft;
        let pool = match () {
            _ if !ends.is_empty() && (late || rng.below(10) == 0) => &ends,
            _ if late && !closing.is_empty() => &closing,
            _ => &allowed,
        };
        let id = pool[rng.below(pool.len())];
        state.advance_token(vocab, id).unwrap();
        if vocab.is_end(id) {
            return text;
        }
        text.extend_from_slice(vocab.token_bytes(id));
    }
    panic!("no end after {:?}", String::from_utf8_lossy(&text));
}

#[test]
fn random_walks_produce_valid_json_that_validates() {
    let vocab = small_vocab();
    let mut rng = Rng::new(2024);
    for schema_text in [PERSON, LINE, TREE].iter().chain(OTHERS) {
        let g = compile(schema_text);
        let schema: Json = serde_json::from_str(schema_text).unwrap();
        for _ in 0..30 {
            let text = random_walk(&g, &vocab, &mut rng, 40);
            let shown = String::from_utf8_lossy(&text);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&text).is_ok(),
                "{shown}"
            );
            let value: Json = serde_json::from_slice(&text).unwrap();
            if let Err(why) = validate(&value, &schema, &schema) {
                panic!("{shown} does not validate against {schema_text}: {why}");
            }
        }
    }
}

#[test]
fn masks_in_schema_states_match_the_reference() {
    let vocab = small_vocab();
    let mut rng = Rng::new(99);
    for schema_text in [PERSON, LINE, TREE] {
        let g = compile(schema_text);
        let text = random_walk(&g, &vocab, &mut rng, 30);
        let mut state = GrammarState::new(&g);
        for (i, &byte) in text.iter().enumerate() {
            assert_mask_is_exact(&state, &vocab, &String::from_utf8_lossy(&text[..i]));
            state.advance(&[byte]).unwrap();
        }
    }
}

/// A validator for the subset the compiler supports, stricter where the compiler is: objects
/// with `properties` have no other members, in the schema's order.
fn validate(v: &Json, s: &Json, root: &Json) -> Result<(), String> {
    let pairs = match s {
        Json::Bool(b) => {
            return if *b {
                Ok(())
            } else {
                Err("false schema".into())
            };
        }
        Json::Object(pairs) => pairs,
        _ => return Err("bad schema".into()),
    };
    for (key, arg) in pairs {
        let ok = match (key.as_str(), arg, v) {
            ("$ref", Json::String(r), _) => {
                let target = r
                    .trim_start_matches("#/")
                    .split('/')
                    .try_fold(root, |at, k| at.get(k));
                return validate(v, target.ok_or("bad ref")?, root);
            }
            ("anyOf" | "oneOf", Json::Array(subs), _) => {
                subs.iter().any(|sub| validate(v, sub, root).is_ok())
            }
            ("allOf", Json::Array(subs), _) => {
                subs.iter().all(|sub| validate(v, sub, root).is_ok())
            }
            ("const", c, _) => c == v,
            ("enum", Json::Array(options), _) => options.contains(v),
            ("type", Json::String(t), _) => v.has_type(t),
            ("type", Json::Array(ts), _) => ts
                .iter()
                .any(|t| matches!(t, Json::String(t) if v.has_type(t))),
            ("minLength", Json::Number(n), Json::String(x)) => {
                x.chars().count() as u64 >= n.as_u64().unwrap_or(0)
            }
            ("maxLength", Json::Number(n), Json::String(x)) => {
                x.chars().count() as u64 <= n.as_u64().unwrap_or(0)
            }
            ("minItems", Json::Number(n), Json::Array(x)) => {
                x.len() as u64 >= n.as_u64().unwrap_or(0)
            }
            ("maxItems", Json::Number(n), Json::Array(x)) => {
                x.len() as u64 <= n.as_u64().unwrap_or(0)
            }
            ("items", items, Json::Array(x)) => {
                x.iter().all(|item| validate(item, items, root).is_ok())
            }
            ("required", Json::Array(names), Json::Object(_)) => names
                .iter()
                .all(|n| matches!(n, Json::String(n) if v.get(n).is_some())),
            ("properties", Json::Object(props), Json::Object(members)) => {
                let mut last = 0;
                members.iter().all(|(k, value)| {
                    let Some(at) = props.iter().position(|(p, _)| p == k) else {
                        return false;
                    };
                    let in_order = at >= last;
                    last = at;
                    in_order && validate(value, &props[at].1, root).is_ok()
                })
            }
            ("additionalProperties", extra, Json::Object(members))
                if s.get("properties").is_none() =>
            {
                members
                    .iter()
                    .all(|(_, value)| validate(value, extra, root).is_ok())
            }
            _ => true,
        };
        if !ok {
            return Err(format!("{key} fails"));
        }
    }
    Ok(())
}
