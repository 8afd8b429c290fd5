//! Tools (function calling), shared by the OpenAI and Ollama APIs, the chat templates and the
//! workflows: the functions a request offers ([`ToolSpec`]), the calls a model makes
//! ([`ToolCall`]), the prompt that describes tools to a model whose template has no tool support
//! ([`generic_tool_prompt`]), the schema that forces a call when one is required
//! ([`ToolSpec::call_format`]) and the parser that finds calls in an answer ([`parse_calls`]).
//! Parsing and the schema are pure functions of their inputs, so a resumed answer and a replayed
//! workflow see the same calls. Documented in docs/openai.md ("Tools").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most functions one request may offer (OpenAI's own limit).
pub const MAX_TOOLS: usize = 128;

/// One function the model may call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ToolDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The JSON schema of the arguments, as JSON text in the client's key order.
    pub parameters_text: String,
}

/// Whether and which function the model must call (OpenAI's `tool_choice`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// The model decides; a call it writes is parsed out of the answer.
    #[default]
    Auto,
    /// No call: the tools are not shown to the model.
    None,
    /// Some call: the answer is constrained to one call of any of the tools.
    Required,
    /// A call of this function: the answer is constrained to it.
    Named(String),
}

/// The tools of one request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    pub tools: Vec<ToolDef>,
    #[serde(default)]
    pub choice: ToolChoice,
    /// More than one call per answer (OpenAI's `parallel_tool_calls`, default true).
    #[serde(default = "yes")]
    pub parallel: bool,
}

fn yes() -> bool {
    true
}

/// A call the model made (or, in a conversation, made earlier).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (OpenAI sends and expects a string).
    pub arguments: String,
}

impl ToolCall {
    /// The arguments as a JSON value (an object when they parse, else the text as a string):
    /// what chat templates and the Ollama API expect.
    pub fn arguments_value(&self) -> Value {
        serde_json::from_str(&self.arguments)
            .unwrap_or_else(|_| Value::String(self.arguments.clone()))
    }
}

impl ToolSpec {
    /// What is wrong with these tools, one line each (empty when nothing is).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.tools.len() > MAX_TOOLS {
            problems.push(format!(
                "at most {MAX_TOOLS} tools, got {}",
                self.tools.len()
            ));
        }
        for t in &self.tools {
            let valid = (1..=64).contains(&t.name.len())
                && t.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if !valid {
                problems.push(format!(
                    "tool names must be 1 to 64 of a-z, A-Z, 0-9, _, - and ., got {:?}",
                    t.name
                ));
            }
            if !matches!(
                serde_json::from_str(&t.parameters_text),
                Ok(Value::Object(_))
            ) {
                problems.push(format!(
                    "the parameters of tool `{}` must be a JSON schema object",
                    t.name
                ));
            }
        }
        if let ToolChoice::Named(name) = &self.choice
            && !self.tools.iter().any(|t| &t.name == name)
        {
            problems.push(format!("tool_choice names `{name}`, which is not in tools"));
        }
        if self.choice == ToolChoice::Required && self.tools.is_empty() {
            problems.push("tool_choice `required` needs at least one tool".into());
        }
        problems
    }

    /// True when the model is shown the tools and its answer may hold calls.
    pub fn active(&self) -> bool {
        self.choice != ToolChoice::None && !self.tools.is_empty()
    }

    /// The tools as chat templates and OpenAI list them:
    /// `[{"type": "function", "function": {"name", "description", "parameters"}}]`.
    pub fn as_json(&self) -> Value {
        Value::Array(
            self.tools
                .iter()
                .map(|t| {
                    let parameters: Value = serde_json::from_str(&t.parameters_text)
                        .unwrap_or_else(|_| serde_json::json!({"type": "object"}));
                    serde_json::json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": parameters}})
                })
                .collect(),
        )
    }
}

/// The system text that describes tools to a model whose chat template has no tool support, in
/// the Hermes form most open models are trained on (and that [`parse_calls`] reads).
pub fn generic_tool_prompt(spec: &ToolSpec) -> String {
    let mut text = String::from(
        "You may call one or more functions to help with the user's request. The functions, \
         with their JSON schemas:\n<tools>\n",
    );
    for t in spec.as_json().as_array().into_iter().flatten() {
        text.push_str(&t.to_string());
        text.push('\n');
    }
    text.push_str(
        "</tools>\nTo call a function, answer with a JSON object holding its name and arguments, \
         inside <tool_call></tool_call> tags, one pair of tags per call:\n<tool_call>\n\
         {\"name\": \"<function name>\", \"arguments\": {<arguments as JSON>}}\n</tool_call>\n\
         Answer in plain text when no function is needed.",
    );
    text
}

/// How a call is written in an answer to a model whose template has no tool support.
pub fn call_as_text(call: &ToolCall) -> String {
    let body = serde_json::json!({"name": call.name, "arguments": call.arguments_value()});
    format!("<tool_call>\n{body}\n</tool_call>")
}

/// How a tool's result is written for a model whose template has no tool support.
pub fn result_as_text(content: &str) -> String {
    format!("<tool_response>\n{content}\n</tool_response>")
}

/// The prefix of the ids of an ask's calls: `call_` and the ask's id, without its dashes.
pub fn call_id_prefix(request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("call_{id}")
}

/// The calls in an ask's answer when its request offered tools (none otherwise).
pub fn calls_of(answer: &str, spec: Option<&ToolSpec>, request_id: &str) -> ParsedAnswer {
    match spec.filter(|s| s.active()) {
        Some(spec) => parse_calls(answer, spec, &call_id_prefix(request_id)),
        None => ParsedAnswer {
            content: answer.to_string(),
            calls: Vec::new(),
        },
    }
}

/// Markers that open a call in the formats [`parse_calls`] reads: Hermes / Qwen / SmolLM3
/// (`<tool_call>`), Mistral (`[TOOL_CALLS]`), Llama 3.x (`<|python_tag|>`).
const OPENERS: [&str; 3] = ["<tool_call>", "[TOOL_CALLS]", "<|python_tag|>"];

/// An answer split into its text and its calls.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedAnswer {
    /// The text outside the calls, trimmed; empty when the answer was only calls.
    pub content: String,
    pub calls: Vec<ToolCall>,
}

/// Finds the calls in `answer`, of functions `spec` offers. Reads `<tool_call>{json}</tool_call>`
/// blocks, `[TOOL_CALLS]` followed by a JSON array (or `name[ARGS]{json}`), `<|python_tag|>`
/// followed by JSON, and an answer that is only a call object or an array of them (optionally in a
/// ```json fence), each call `{"name", "arguments" | "parameters"}`. Text that is not a call of an
/// offered function stays content. Ids are `{id_prefix}_{n}`, so the same answer always gets the
/// same ids. With `parallel` off only the first call is kept.
pub fn parse_calls(answer: &str, spec: &ToolSpec, id_prefix: &str) -> ParsedAnswer {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut content = String::new();
    let offered = |name: &str| spec.tools.iter().any(|t| t.name == name);
    let trimmed = answer.trim();
    if let Some(calls) = whole_answer_calls(trimmed) {
        found = calls;
    } else {
        let mut rest = answer;
        while let Some((at, opener)) = OPENERS
            .iter()
            .filter_map(|o| rest.find(o).map(|i| (i, *o)))
            .min_by_key(|(i, _)| *i)
        {
            content.push_str(&rest[..at]);
            let after = &rest[at + opener.len()..];
            let (calls, used) = match opener {
                "<tool_call>" => {
                    let end = after.find("</tool_call>");
                    let body = &after[..end.unwrap_or(after.len())];
                    let used = end.map_or(after.len(), |e| e + "</tool_call>".len());
                    (json_calls(body.trim()).unwrap_or_default(), used)
                }
                "[TOOL_CALLS]" => (mistral_calls(after.trim()), after.len()),
                _ => (json_calls(after.trim()).unwrap_or_default(), after.len()),
            };
            if calls.is_empty() {
                // Not a readable call: keep the marker as text and go on after it.
                content.push_str(opener);
                rest = after;
                continue;
            }
            found.extend(calls);
            rest = &after[used..];
        }
        content.push_str(rest);
    }
    let mut calls = Vec::new();
    for (name, arguments) in found {
        if !offered(&name) {
            continue;
        }
        calls.push(ToolCall {
            id: format!("{id_prefix}_{}", calls.len()),
            name,
            arguments,
        });
        if !spec.parallel {
            break;
        }
    }
    if calls.is_empty() {
        return ParsedAnswer {
            content: answer.to_string(),
            calls,
        };
    }
    ParsedAnswer {
        content: content.trim().to_string(),
        calls,
    }
}

/// The answer as a whole is a call object, an array of them, or one of those in a code fence.
fn whole_answer_calls(trimmed: &str) -> Option<Vec<(String, String)>> {
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|t| t.trim_end().strip_suffix("```"))
        .map(str::trim)
        .unwrap_or(trimmed);
    if !(unfenced.starts_with('{') || unfenced.starts_with('[')) {
        return None;
    }
    json_calls(unfenced).filter(|c| !c.is_empty())
}

/// `{"name", "arguments"}` or an array of such, as (name, arguments JSON text).
fn json_calls(text: &str) -> Option<Vec<(String, String)>> {
    let value: Value = serde_json::from_str(text).ok()?;
    let items = match value {
        Value::Array(items) => items,
        one => vec![one],
    };
    items.iter().map(one_call).collect()
}

fn one_call(v: &Value) -> Option<(String, String)> {
    // OpenAI's own shape `{"type": "function", "function": {...}}` as well.
    let v = v.get("function").filter(|f| f.is_object()).unwrap_or(v);
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get("arguments").or_else(|| v.get("parameters")) {
        None => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Some((name, arguments))
}

/// Mistral's `[TOOL_CALLS]` payloads: a JSON array (v0.3) or `name[ARGS]{json}` (v11+).
fn mistral_calls(after: &str) -> Vec<(String, String)> {
    if let Some(calls) = json_calls(after) {
        return calls;
    }
    let Some((name, args)) = after.split_once("[ARGS]") else {
        return Vec::new();
    };
    match serde_json::from_str::<Value>(args.trim()) {
        Ok(v) => vec![(name.trim().to_string(), v.to_string())],
        Err(_) => Vec::new(),
    }
}

/// How much of a growing answer may be streamed as text now: everything before the first place a
/// call could begin (an opener, a part of one at the end, or an answer that starts as JSON).
pub fn streamable_prefix(answer: &str) -> usize {
    let lead = answer.len() - answer.trim_start().len();
    let start = &answer[lead..];
    if start.is_empty() || start.starts_with(['{', '[']) || start.starts_with("```") {
        return 0;
    }
    // `start` may still be the beginning of "```" or of an opener.
    if "```".starts_with(start) || OPENERS.iter().any(|o| o.starts_with(start)) {
        return 0;
    }
    let mut cut = answer.len();
    for o in OPENERS {
        if let Some(i) = answer.find(o) {
            cut = cut.min(i);
        }
        // A suffix of the answer that is a proper prefix of an opener.
        for k in (1..o.len()).rev() {
            if answer.ends_with(&o[..k]) {
                cut = cut.min(answer.len() - k);
                break;
            }
        }
    }
    // Never in the middle of a character.
    while !answer.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// A streamed answer that may hold calls: text goes out as soon as it cannot be the start of a
/// call; what may be one is held until the end, when the calls are read out of the whole answer.
#[derive(Debug, Default)]
pub struct CallStream {
    text: String,
    sent: usize,
}

impl CallStream {
    /// Adds generated text; returns the text that may be sent now (possibly empty).
    pub fn push(&mut self, text: &str) -> &str {
        self.text.push_str(text);
        let cut = streamable_prefix(&self.text).max(self.sent);
        let out = &self.text[self.sent..cut];
        self.sent = cut;
        out
    }

    /// At the end of the answer: the text not sent yet that is content, and the calls.
    pub fn finish(self, spec: Option<&ToolSpec>, request_id: &str) -> (String, Vec<ToolCall>) {
        let parsed = calls_of(&self.text, spec, request_id);
        if parsed.calls.is_empty() {
            return (self.text[self.sent..].to_string(), parsed.calls);
        }
        let sent = self.text[..self.sent].trim();
        let rest = parsed.content.strip_prefix(sent).unwrap_or_default();
        (rest.to_string(), parsed.calls)
    }
}

/// Tools named `names`, each taking `{"city": string}` (tests).
#[cfg(test)]
pub(crate) fn sample_spec(names: &[&str]) -> ToolSpec {
    ToolSpec {
        tools: names
            .iter()
            .map(|n| ToolDef {
                name: n.to_string(),
                description: String::new(),
                parameters_text: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
            })
            .collect(),
        choice: ToolChoice::Auto,
        parallel: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::sample_spec as spec;

    #[test]
    fn calls_are_read_in_every_format() {
        let s = spec(&["get_weather", "get_time"]);
        // (answer, wanted content, wanted (name, arguments))
        type Case = (
            &'static str,
            &'static str,
            Vec<(&'static str, &'static str)>,
        );
        let table: Vec<Case> = vec![
            (
                "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
                "",
                vec![("get_weather", r#"{"city":"Paris"}"#)],
            ),
            (
                "Let me check.\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>\n<tool_call>{\"name\":\"get_time\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>",
                "Let me check.",
                vec![
                    ("get_weather", r#"{"city":"Oslo"}"#),
                    ("get_time", r#"{"city":"Oslo"}"#),
                ],
            ),
            (
                r#"{"name": "get_weather", "parameters": {"city": "Rome"}}"#,
                "",
                vec![("get_weather", r#"{"city":"Rome"}"#)],
            ),
            (
                "```json\n[{\"name\": \"get_time\", \"arguments\": \"{\\\"city\\\": \\\"Rome\\\"}\"}]\n```",
                "",
                vec![("get_time", r#"{"city": "Rome"}"#)],
            ),
            (
                r#"[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Lima"}}]"#,
                "",
                vec![("get_weather", r#"{"city":"Lima"}"#)],
            ),
            (
                r#"[TOOL_CALLS]get_weather[ARGS]{"city": "Lima"}"#,
                "",
                vec![("get_weather", r#"{"city":"Lima"}"#)],
            ),
            (
                r#"<|python_tag|>{"name": "get_time", "parameters": {"city": "Kyiv"}}"#,
                "",
                vec![("get_time", r#"{"city":"Kyiv"}"#)],
            ),
            // Unterminated block at the end of the answer (max_tokens, a stop string).
            (
                "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}",
                "",
                vec![("get_time", "{}")],
            ),
            // Not calls: plain text, JSON that is not a call, a function not offered.
            ("The weather is fine.", "The weather is fine.", vec![]),
            (r#"{"city": "Paris"}"#, r#"{"city": "Paris"}"#, vec![]),
            (
                r#"{"name": "rm_rf", "arguments": {}}"#,
                r#"{"name": "rm_rf", "arguments": {}}"#,
                vec![],
            ),
            (
                "use <tool_call>not json</tool_call> here",
                "use <tool_call>not json</tool_call> here",
                vec![],
            ),
        ];
        for (answer, content, calls) in table {
            let got = parse_calls(answer, &s, "call_x");
            assert_eq!(got.content, content, "{answer}");
            let got: Vec<(&str, &str)> = got
                .calls
                .iter()
                .map(|c| (c.name.as_str(), c.arguments.as_str()))
                .collect();
            assert_eq!(got, calls, "{answer}");
        }
    }

    #[test]
    fn ids_are_stable_and_parallel_off_keeps_one() {
        let mut s = spec(&["get_time"]);
        let answer = "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call><tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>";
        let ids: Vec<String> = parse_calls(answer, &s, "call_r1")
            .calls
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, ["call_r1_0", "call_r1_1"]);
        s.parallel = false;
        assert_eq!(parse_calls(answer, &s, "c").calls.len(), 1);
    }

    #[test]
    fn streaming_holds_back_only_what_may_be_a_call() {
        let table = [
            ("Hello there", 11),
            ("Hello <tool", 6),
            ("Hello <tool_call>{\"na", 6),
            ("  {\"name\"", 0),
            ("<", 0),
            ("``", 0),
            ("[TOOL", 0),
            ("Sure [TOOL_CALLS]", 5),
            ("Price: 5 €", "Price: 5 €".len()),
        ];
        for (answer, want) in table {
            assert_eq!(streamable_prefix(answer), want, "{answer}");
        }
    }

    #[test]
    fn a_stream_sends_text_and_holds_calls() {
        let s = spec(&["get_time"]);
        let mut stream = CallStream::default();
        let mut sent = String::new();
        for piece in [
            "Let me ",
            "check. <tool",
            "_call>{\"name\": \"get_time\", ",
            "\"arguments\": {}}</tool_call>",
        ] {
            sent.push_str(stream.push(piece));
        }
        assert_eq!(sent, "Let me check. ");
        let (rest, calls) = stream.finish(Some(&s), "r-1");
        assert_eq!(rest, "");
        assert_eq!(calls[0].id, "call_r1_0");
        // Text that turned out not to be a call is sent at the end.
        let mut stream = CallStream::default();
        assert_eq!(stream.push("{not a call"), "");
        assert_eq!(stream.finish(Some(&s), "r").0, "{not a call");
    }
}
