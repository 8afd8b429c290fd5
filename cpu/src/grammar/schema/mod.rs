//! JSON schema → [`Grammar`], after llama.cpp's `json-schema-to-grammar`: the subset that
//! structured output needs, and a typed error naming the keyword and the JSON pointer of anything
//! else. `docs/structured-output.md` lists what is supported.
//!
//! Every value rule matches the value followed by optional whitespace ([`Whitespace`]), so a
//! position in the output has exactly one place where whitespace may go.

mod builtin;
pub(crate) mod json;
mod rules;

use rustc_hash::FxHashMap;

use super::{Grammar, GrammarBuilder, GrammarError, RuleId, Term};
use builtin::Builtin;
pub use json::Json;

/// Where the generated JSON may have whitespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Whitespace {
    /// After each token of JSON syntax: nothing, one space, or one or two newlines and up to 20
    /// spaces or tabs (llama.cpp's rule). Bounded, so a model cannot loop on whitespace, and
    /// loose enough for models that were trained on pretty-printed JSON.
    #[default]
    Bounded,
    /// None at all: compact JSON.
    None,
}

/// How to compile a schema.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchemaOptions {
    pub whitespace: Whitespace,
}

/// Why a schema cannot be compiled; every variant is the client's mistake or a limit (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported keyword {keyword:?} at {path}")]
    Unsupported { keyword: String, path: String },
    #[error("unsupported combination of {keywords} at {path}")]
    Combination { keywords: String, path: String },
    #[error("invalid {keyword:?} at {path}: {reason}")]
    Invalid {
        keyword: String,
        path: String,
        reason: &'static str,
    },
    #[error(
        "cannot resolve $ref {reference:?} at {path}: only local references (\"#/...\") to existing schemas are supported"
    )]
    Ref { reference: String, path: String },
    #[error("the schema at {path} accepts no value")]
    Unsatisfiable { path: String },
    /// Schemas (through `$ref` chains too) nested deeper than [`MAX_DEPTH`]: compiling recurses.
    #[error("the schema at {path} is nested more than {limit} deep")]
    TooDeep { path: String, limit: usize },
    #[error("the schema cannot be compiled to a grammar: {0}")]
    Grammar(#[from] GrammarError),
}

/// Compiles a JSON schema given as text. Properties are generated in the text's order.
pub fn compile_schema(text: &str, options: &SchemaOptions) -> Result<Grammar, SchemaError> {
    let schema: Json = serde_json::from_str(text)?;
    Compiler::run(&schema, options)
}

/// Compiles a parsed JSON schema. Properties are generated in the map's order, which for
/// serde_json without its `preserve_order` feature is sorted by name: prefer
/// [`compile_schema`] with the request's text.
pub fn compile_value(
    schema: &serde_json::Value,
    options: &SchemaOptions,
) -> Result<Grammar, SchemaError> {
    Compiler::run(&Json::from_value(schema), options)
}

/// A grammar for any JSON value (OpenAI's `json_object` mode).
pub fn any_json(options: &SchemaOptions) -> Grammar {
    // The schema `true` uses only the fixed built-in rules, which the unit tests build.
    Compiler::run(&Json::Bool(true), options).expect("the any-JSON grammar always compiles")
}

/// How deeply schemas may nest, `$ref` chains included: far beyond real schemas, and shallow
/// enough that compiling one cannot overflow a thread's stack.
pub const MAX_DEPTH: usize = 64;

/// Keywords that change nothing in what is generated.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$anchor",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    // An annotation unless a validator opts in (JSON Schema 2020-12, section 7.2.1).
    "format",
    "contentEncoding",
    "contentMediaType",
];

/// Keywords that constrain the value, by the type they apply to (`None`: any type).
const CONSTRAINTS: &[(&str, Option<&str>)] = &[
    ("type", None),
    ("enum", None),
    ("const", None),
    ("$ref", None),
    ("anyOf", None),
    ("oneOf", None),
    ("allOf", None),
    ("properties", Some("object")),
    ("required", Some("object")),
    ("additionalProperties", Some("object")),
    ("items", Some("array")),
    ("minItems", Some("array")),
    ("maxItems", Some("array")),
    ("minLength", Some("string")),
    ("maxLength", Some("string")),
];

/// Types by their JSON schema name.
const TYPES: &[&str] = &[
    "object", "array", "string", "integer", "number", "boolean", "null",
];

struct Compiler<'s> {
    b: GrammarBuilder,
    root: &'s Json,
    ws: RuleId,
    /// Rules of `$ref` targets by pointer, declared before they are compiled so that recursive
    /// schemas become recursive rules.
    refs: FxHashMap<String, RuleId>,
    /// Built-in rules, made on first use.
    builtins: FxHashMap<Builtin, RuleId>,
    /// Schemas being compiled, one inside the other.
    depth: usize,
}

impl<'s> Compiler<'s> {
    fn run(schema: &'s Json, options: &SchemaOptions) -> Result<Grammar, SchemaError> {
        let mut b = GrammarBuilder::new();
        let ws = builtin::whitespace(&mut b, options.whitespace)?;
        let mut compiler = Compiler {
            b,
            root: schema,
            ws,
            refs: FxHashMap::default(),
            builtins: FxHashMap::default(),
            depth: 0,
        };
        let value = compiler.compile(schema, "#")?;
        // Whitespace before the value too, as after it.
        let root = compiler.b.rule(
            "root",
            vec![vec![Term::Rule(compiler.ws), Term::Rule(value)]],
        )?;
        Ok(compiler.b.build(root)?)
    }

    /// The rule for a value that `schema` (at JSON pointer `path`) accepts, then whitespace.
    fn compile(&mut self, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
        if self.depth >= MAX_DEPTH {
            return Err(SchemaError::TooDeep {
                path: path.to_string(),
                limit: MAX_DEPTH,
            });
        }
        self.depth += 1;
        let rule = self.compile_at_depth(schema, path);
        self.depth -= 1;
        rule
    }

    fn compile_at_depth(&mut self, schema: &Json, path: &str) -> Result<RuleId, SchemaError> {
        let pairs = match schema {
            Json::Bool(true) => return self.builtin(Builtin::Value),
            Json::Bool(false) => return Err(unsatisfiable(path)),
            Json::Object(pairs) => pairs,
            _ => {
                return Err(invalid(
                    "schema",
                    path,
                    "a schema is an object or a boolean",
                ));
            }
        };
        let keys = constraint_keys(pairs, path)?;
        // Keywords that stand alone: a reference, a choice, a fixed set of values.
        for alone in ["$ref", "anyOf", "oneOf", "allOf", "enum", "const"] {
            let Some(value) = schema.get(alone) else {
                continue;
            };
            let allowed_with =
                |k: &&str| *k == alone || (matches!(alone, "enum" | "const") && *k == "type");
            if let Some(other) = keys.iter().find(|k| !allowed_with(k)) {
                return Err(SchemaError::Combination {
                    keywords: format!("{alone:?} and {other:?}"),
                    path: path.to_string(),
                });
            }
            let at = format!("{path}/{alone}");
            return match alone {
                "$ref" => self.reference(value, &at),
                "enum" | "const" => self.values(schema, alone, value, path),
                _ => self.choice(alone, value, &at),
            };
        }
        let types = self.types(schema, &keys, path)?;
        let mut alternatives = Vec::with_capacity(types.len());
        for name in types {
            let rule = match name {
                "object" => rules::object(self, schema, path)?,
                "array" => rules::array(self, schema, path)?,
                "string" => rules::string(self, schema, path)?,
                "integer" => self.builtin(Builtin::Integer)?,
                "number" => self.builtin(Builtin::Number)?,
                "boolean" => self.builtin(Builtin::Boolean)?,
                "null" => self.builtin(Builtin::Null)?,
                // `types` gives the names in `TYPES`, or "value" for any type.
                _ => self.builtin(Builtin::Value)?,
            };
            alternatives.push(rule);
        }
        match alternatives.as_slice() {
            [single] => Ok(*single),
            _ => {
                let alternatives = alternatives
                    .into_iter()
                    .map(|r| vec![Term::Rule(r)])
                    .collect();
                Ok(self.b.rule(&rule_name(path), alternatives)?)
            }
        }
    }

    /// The types a schema without `enum`/`const`/`$ref`/combinators accepts: its `type`, or the
    /// type its keywords imply, or every type.
    fn types(
        &self,
        schema: &Json,
        keys: &[&str],
        path: &str,
    ) -> Result<Vec<&'static str>, SchemaError> {
        let named = |name: &str| TYPES.iter().copied().find(|t| *t == name);
        let bad = || {
            invalid(
                "type",
                path,
                "a type name or a non-empty array of type names",
            )
        };
        match schema.get("type") {
            Some(Json::String(name)) => Ok(vec![named(name).ok_or_else(bad)?]),
            Some(Json::Array(names)) if !names.is_empty() => names
                .iter()
                .map(|n| match n {
                    Json::String(name) => named(name).ok_or_else(bad),
                    _ => Err(bad()),
                })
                .collect(),
            Some(_) => Err(bad()),
            None => {
                let mut implied: Vec<&'static str> = keys
                    .iter()
                    .filter_map(|k| {
                        CONSTRAINTS
                            .iter()
                            .find(|(c, _)| c == k)
                            .and_then(|(_, t)| *t)
                    })
                    .collect();
                implied.dedup();
                match implied.as_slice() {
                    [] => Ok(vec!["value"]),
                    [one] => Ok(vec![*one]),
                    _ => Err(SchemaError::Combination {
                        keywords: format!("keywords of types {implied:?} without \"type\""),
                        path: path.to_string(),
                    }),
                }
            }
        }
    }

    /// `enum` or `const`: the values' compact JSON text, those of the wrong `type` left out.
    fn values(
        &mut self,
        schema: &Json,
        keyword: &str,
        value: &Json,
        path: &str,
    ) -> Result<RuleId, SchemaError> {
        let values: Vec<&Json> = match (keyword, value) {
            ("const", v) => vec![v],
            (_, Json::Array(items)) => items.iter().collect(),
            _ => return Err(invalid(keyword, path, "an array of values")),
        };
        let types: Vec<&str> = match schema.get("type") {
            None => TYPES.to_vec(),
            Some(_) => self.types(schema, &[], path)?,
        };
        let alternatives: Vec<Vec<Term>> = values
            .into_iter()
            .filter(|v| types.iter().any(|t| v.has_type(t)))
            .map(|v| vec![Term::lit(&v.to_string()), Term::Rule(self.ws)])
            .collect();
        if alternatives.is_empty() {
            return Err(unsatisfiable(path));
        }
        Ok(self.b.rule(&rule_name(path), alternatives)?)
    }

    /// `anyOf`/`oneOf` (exclusivity is not enforced) and `allOf` of one schema.
    fn choice(&mut self, keyword: &str, value: &Json, path: &str) -> Result<RuleId, SchemaError> {
        let Json::Array(schemas) = value else {
            return Err(invalid(keyword, path, "a non-empty array of schemas"));
        };
        match (keyword, schemas.as_slice()) {
            (_, []) => Err(invalid(keyword, path, "a non-empty array of schemas")),
            ("allOf", [single]) => self.compile(single, &format!("{path}/0")),
            ("allOf", _) => Err(SchemaError::Unsupported {
                keyword: "allOf (of more than one schema)".into(),
                path: path.to_string(),
            }),
            _ => {
                let mut alternatives = Vec::with_capacity(schemas.len());
                for (i, schema) in schemas.iter().enumerate() {
                    alternatives.push(vec![Term::Rule(
                        self.compile(schema, &format!("{path}/{i}"))?,
                    )]);
                }
                Ok(self.b.rule(&rule_name(path), alternatives)?)
            }
        }
    }

    /// A `$ref` to a local JSON pointer; one rule per target, however often it is referenced.
    fn reference(&mut self, value: &Json, path: &str) -> Result<RuleId, SchemaError> {
        let Json::String(reference) = value else {
            return Err(invalid("$ref", path, "a string"));
        };
        if let Some(&rule) = self.refs.get(reference) {
            return Ok(rule);
        }
        let bad = || SchemaError::Ref {
            reference: reference.clone(),
            path: path.to_string(),
        };
        let pointer = reference.strip_prefix('#').ok_or_else(bad)?;
        let mut target = self.root;
        for token in pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            target = match target {
                Json::Object(_) => target.get(&token),
                Json::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            }
            .ok_or_else(bad)?;
        }
        let rule = self.b.declare(&rule_name(reference));
        self.refs.insert(reference.clone(), rule);
        let body = self.compile(target, reference)?;
        self.b.define(rule, vec![vec![Term::Rule(body)]])?;
        Ok(rule)
    }

    /// A built-in rule, made once.
    fn builtin(&mut self, which: Builtin) -> Result<RuleId, SchemaError> {
        if let Some(&rule) = self.builtins.get(&which) {
            return Ok(rule);
        }
        let rule = builtin::make(self, which)?;
        self.builtins.insert(which, rule);
        Ok(rule)
    }
}

/// The keywords of a schema object that constrain the value; an unknown keyword is an error,
/// annotations and `x-` extensions are left out.
fn constraint_keys<'a>(
    pairs: &'a [(String, Json)],
    path: &str,
) -> Result<Vec<&'a str>, SchemaError> {
    let mut keys = Vec::new();
    for (key, _) in pairs {
        if key.starts_with("x-") || ANNOTATIONS.contains(&key.as_str()) {
            continue;
        }
        if !CONSTRAINTS.iter().any(|(k, _)| k == key) {
            return Err(SchemaError::Unsupported {
                keyword: key.clone(),
                path: path.to_string(),
            });
        }
        keys.push(key.as_str());
    }
    Ok(keys)
}

/// A readable rule name from a JSON pointer.
fn rule_name(path: &str) -> String {
    let name: String = path
        .trim_start_matches('#')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    match name.trim_matches('-') {
        "" => "value".to_string(),
        name => name.to_string(),
    }
}

fn invalid(keyword: &str, path: &str, reason: &'static str) -> SchemaError {
    SchemaError::Invalid {
        keyword: keyword.to_string(),
        path: path.to_string(),
        reason,
    }
}

fn unsatisfiable(path: &str) -> SchemaError {
    SchemaError::Unsatisfiable {
        path: path.to_string(),
    }
}
