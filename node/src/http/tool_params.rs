//! Tools as the OpenAI and Ollama APIs send them (the same shapes in both): the offered
//! functions, `tool_choice`, and the calls in an assistant turn, turned into the ask's
//! [`ToolSpec`] and [`ToolCall`]s. See `protocol::tools` for what is done with them.

use crate::protocol::tools::{ToolCall, ToolChoice, ToolDef, ToolSpec};
use orrery_cpu::grammar::Json as OrderedJson;
use serde::Deserialize;
use serde_json::Value;

/// Why the tools of a request are refused (HTTP 400), and the parameter at fault.
#[derive(Debug)]
pub struct ToolParamError {
    pub message: String,
    pub param: &'static str,
}

#[derive(Debug, Deserialize)]
pub struct InToolCall {
    pub id: Option<String>,
    pub function: InCalled,
}

#[derive(Debug, Deserialize)]
pub struct InCalled {
    pub name: String,
    /// A JSON string, as OpenAI sends it (an object is accepted too).
    pub arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct InTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: Option<InFunction>,
}

#[derive(Debug, Deserialize)]
pub struct InFunction {
    pub name: String,
    pub description: Option<String>,
    /// Kept in the client's key order: a forced call's arguments are generated in it.
    pub parameters: Option<OrderedJson>,
}

/// `tools`, `tool_choice` and `parallel_tool_calls` as the ask's tools (`None` without
/// tools); the checks every request gets are in `SamplingParams::validate`.
pub fn spec(
    tools: Option<Vec<InTool>>,
    choice: Option<Value>,
    parallel: Option<bool>,
) -> Result<Option<ToolSpec>, ToolParamError> {
    let bad = |message: String, param| ToolParamError { message, param };
    let mut defs = Vec::new();
    for t in tools.unwrap_or_default() {
        let Some(f) = t.function.filter(|_| t.kind == "function") else {
            return Err(bad(
                format!("tools of type `{}` are not supported: use function", t.kind),
                "tools",
            ));
        };
        defs.push(ToolDef {
            name: f.name,
            description: f.description.unwrap_or_default(),
            parameters_text: f
                .parameters
                .map(|p| p.to_string())
                .unwrap_or_else(|| r#"{"type":"object","properties":{}}"#.into()),
        });
    }
    let choice = match choice {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(bad(
                    format!("tool_choice `{other}` is not one of none, auto, required"),
                    "tool_choice",
                ));
            }
        },
        Some(v) => match v.pointer("/function/name").and_then(Value::as_str) {
            Some(name) => ToolChoice::Named(name.to_string()),
            None => {
                return Err(bad(
                    "tool_choice must be none, auto, required or {\"type\": \"function\", \
                     \"function\": {\"name\": ...}}"
                        .into(),
                    "tool_choice",
                ));
            }
        },
    };
    if defs.is_empty() {
        return match choice {
            ToolChoice::Auto | ToolChoice::None => Ok(None),
            _ => Err(bad("tool_choice needs tools".into(), "tool_choice")),
        };
    }
    let spec = ToolSpec {
        tools: defs,
        choice,
        parallel: parallel.unwrap_or(true),
    };
    match spec.problems().first() {
        Some(p) => Err(bad(p.clone(), "tools")),
        None => Ok(Some(spec)),
    }
}

/// An assistant turn's calls; a call without an id gets `call_{n}`.
pub fn calls(calls: Vec<InToolCall>) -> Vec<ToolCall> {
    calls
        .into_iter()
        .enumerate()
        .map(|(i, c)| ToolCall {
            id: c.id.unwrap_or_else(|| format!("call_{i}")),
            name: c.function.name,
            arguments: match c.function.arguments {
                None => "{}".into(),
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
            },
        })
        .collect()
}
