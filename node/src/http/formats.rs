//! Structured-output parameters as the OpenAI API (`response_format`) and the Ollama API
//! (`format`) send them, turned into a [`ResponseFormat`] and checked by compiling it (off the
//! async runtime: a hostile schema can take a while) before the ask starts. Schemas are read as
//! [`OrderedJson`], which keeps the client's key order: properties are generated in it, and a
//! `serde_json::Value` would sort them. Supported schemas: docs/structured-output.md.

use crate::engine::ResponseFormat;
use orrery_cpu::grammar::Json as OrderedJson;
use serde::Deserialize;

/// Why a format is refused (HTTP 400); each API wraps it in its own error shape.
#[derive(Debug, PartialEq, Eq)]
pub struct FormatError {
    pub message: String,
    /// OpenAI's error code.
    pub code: &'static str,
}

/// OpenAI's `response_format`, as sent.
#[derive(Debug, Deserialize)]
pub struct OpenAiFormat {
    #[serde(rename = "type")]
    kind: String,
    json_schema: Option<OpenAiJsonSchema>,
    /// llama.cpp's shorthand: `{"type": "json_object", "schema": {...}}`.
    schema: Option<OrderedJson>,
}

#[derive(Debug, Deserialize)]
struct OpenAiJsonSchema {
    name: Option<String>,
    schema: Option<OrderedJson>,
    strict: Option<bool>,
}

/// `text` (or none) is plain text; `json_object` any JSON object; `json_schema` JSON valid against
/// its schema (`strict` is kept, the schema is enforced either way; without a schema, as
/// `json_object`).
pub fn from_openai(f: Option<OpenAiFormat>) -> Result<Option<ResponseFormat>, FormatError> {
    let Some(f) = f else { return Ok(None) };
    let (schema, name, strict) = match f.kind.as_str() {
        "text" => return Ok(None),
        "json_object" => (f.schema, None, None),
        "json_schema" => match f.json_schema {
            Some(js) => (js.schema.or(f.schema), js.name, js.strict),
            None => (f.schema, None, None),
        },
        other => {
            return Err(FormatError {
                message: format!(
                    "response_format type `{other}` is not supported: use text, json_object or json_schema"
                ),
                code: "unsupported_parameter",
            });
        }
    };
    let format = match schema {
        None => ResponseFormat::JsonObject,
        Some(schema) => ResponseFormat::JsonSchema {
            name: name.unwrap_or_else(|| "response".into()),
            schema_text: schema.to_string(),
            strict: strict.unwrap_or(false),
        },
    };
    Ok(Some(format))
}

/// Ollama's `format`: `"json"` (any JSON object) or a JSON schema object; absent, null or `""` is
/// plain text.
pub fn from_ollama(format: Option<OrderedJson>) -> Result<Option<ResponseFormat>, FormatError> {
    let format = match format {
        None | Some(OrderedJson::Null) => return Ok(None),
        Some(OrderedJson::String(s)) if s.is_empty() => return Ok(None),
        Some(OrderedJson::String(s)) if s == "json" => ResponseFormat::JsonObject,
        Some(schema @ OrderedJson::Object(_)) => ResponseFormat::JsonSchema {
            name: "format".into(),
            schema_text: schema.to_string(),
            strict: true,
        },
        Some(other) => {
            return Err(FormatError {
                message: format!("invalid format {other}: use \"json\" or a JSON schema object"),
                code: "invalid_format",
            });
        }
    };
    Ok(Some(format))
}

/// Compiles `format` on the blocking pool: Ok if the schema is in the supported subset,
/// otherwise an error naming the keyword and where it is
/// (`unsupported keyword "pattern" at #/properties/id`).
pub async fn check(format: Option<&ResponseFormat>) -> Result<(), FormatError> {
    let Some(format) = format.cloned() else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || check_now(&format))
        .await
        .unwrap_or_else(|e| {
            Err(FormatError {
                message: format!("checking the schema failed: {e}"),
                code: "invalid_json_schema",
            })
        })
}

fn check_now(format: &ResponseFormat) -> Result<(), FormatError> {
    format.grammar().map(drop).map_err(|e| FormatError {
        message: format!("invalid JSON schema: {e}"),
        code: "invalid_json_schema",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str, text: &str, strict: bool) -> Option<ResponseFormat> {
        Some(ResponseFormat::JsonSchema {
            name: name.into(),
            schema_text: text.into(),
            strict,
        })
    }

    #[test]
    fn openai_formats_map_to_constraints_in_schema_order() {
        // (response_format, wanted)
        let table = [
            ("null", None),
            (r#"{"type": "text"}"#, None),
            (
                r#"{"type": "json_object"}"#,
                Some(ResponseFormat::JsonObject),
            ),
            (
                r#"{"type": "json_schema", "json_schema": {"name": "p", "strict": true,
                    "schema": {"type": "object", "properties": {"z": {"type": "integer"}, "a": {"enum": [1, "x"]}}}}}"#,
                schema(
                    "p",
                    r#"{"type":"object","properties":{"z":{"type":"integer"},"a":{"enum":[1,"x"]}}}"#,
                    true,
                ),
            ),
            (
                r#"{"type": "json_schema", "json_schema": {"name": "p"}}"#,
                Some(ResponseFormat::JsonObject),
            ),
            (
                r#"{"type": "json_object", "schema": {"type": "boolean"}}"#,
                schema("response", r#"{"type":"boolean"}"#, false),
            ),
        ];
        for (text, want) in table {
            let f: Option<OpenAiFormat> = serde_json::from_str(text).unwrap();
            assert_eq!(from_openai(f), Ok(want), "{text}");
        }
    }

    #[test]
    fn ollama_formats_map_to_constraints_in_schema_order() {
        // (format, wanted)
        let table = [
            ("null", None),
            (r#""""#, None),
            (r#""json""#, Some(ResponseFormat::JsonObject)),
            (
                r#"{"type": "object", "properties": {"z": {"type": "string"}, "a": {"type": "boolean"}}}"#,
                schema(
                    "format",
                    r#"{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"boolean"}}}"#,
                    true,
                ),
            ),
        ];
        for (text, want) in table {
            let f: Option<OrderedJson> = serde_json::from_str(text).unwrap();
            assert_eq!(from_ollama(f), Ok(want), "{text}");
        }
    }

    #[tokio::test]
    async fn refusals_say_why() {
        let openai = |t: &str| {
            from_openai(serde_json::from_str(t).unwrap())
                .and_then(|f| check_now(&f.expect("a format")))
                .unwrap_err()
        };
        let ollama = |t: &str| {
            from_ollama(serde_json::from_str(t).unwrap())
                .and_then(|f| check_now(&f.expect("a format")))
                .unwrap_err()
        };
        let pattern =
            r#"{"type": "object", "properties": {"id": {"type": "string", "pattern": "^a"}}}"#;
        // (error, wanted code, words the message must have)
        let table = [
            (openai(r#"{"type": "xml"}"#), "unsupported_parameter", "xml"),
            (
                openai(&format!(
                    r#"{{"type": "json_schema", "json_schema": {{"name": "x", "schema": {pattern}}}}}"#
                )),
                "invalid_json_schema",
                "\"pattern\" at #/properties/id",
            ),
            (ollama(r#""yaml""#), "invalid_format", "yaml"),
            (ollama("3"), "invalid_format", "3"),
            (
                ollama(pattern),
                "invalid_json_schema",
                "\"pattern\" at #/properties/id",
            ),
            (
                ollama(r#"{"type": "integer", "minimum": 0}"#),
                "invalid_json_schema",
                "\"minimum\" at #",
            ),
        ];
        for (e, code, words) in table {
            assert_eq!(e.code, code, "{e:?}");
            assert!(e.message.contains(words), "{e:?}");
        }
        let format = from_ollama(serde_json::from_str(pattern).unwrap()).unwrap();
        let e = check(format.as_ref()).await.unwrap_err();
        assert!(e.message.contains("pattern"), "{e:?}");
        assert_eq!(check(None).await, Ok(()));
    }
}
