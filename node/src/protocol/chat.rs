//! The conversation and sampling types every front door (WebSocket, REST, OpenAI, Ollama), the
//! workflows and the engines share.

use super::tools::{
    ToolCall, ToolChoice, ToolDef, ToolSpec, call_as_text, generic_tool_prompt, result_as_text,
};
use orrery_cpu::grammar::{Grammar, SchemaError, SchemaOptions, compile_schema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Sampling parameters out of range; the message lists every violation.
#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidParams(pub String);

/// Largest `max_tokens` a request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 4096;
/// Most stop strings per request.
pub const MAX_STOP_STRINGS: usize = 4;
/// Longest stop string, in bytes.
pub const MAX_STOP_BYTES: usize = 64;

/// Who wrote a chat message.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    /// A tool's result, answering an assistant turn's call (`tool_call_id`).
    Tool,
}

impl Role {
    /// The name chat templates expect in `message['role']`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One turn of a conversation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// The calls an assistant turn made (function calling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool turn: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// How to pick tokens and when to stop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Most new tokens this call may generate (a resumed answer counts only its new tokens).
    pub max_tokens: u32,
    /// 0 means greedy (argmax).
    pub temperature: f64,
    pub top_p: Option<f64>,
    pub seed: u64,
    /// Generation stops before the first occurrence of any of these; the match is not emitted.
    pub stop: Vec<String>,
    /// A form the answer must take (JSON), enforced token by token. Absent in payloads written
    /// before structured output existed, and left out when `None` so those stay as they were.
    /// Boxed: these parameters travel in every generate message, most of them without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<Box<ResponseFormat>>,
    /// Functions the model may call: shown to it through its chat template (or a generic tool
    /// prompt) and read back out of its answer. A forced call (`required`, a named function) is
    /// also a `response_format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Box<ToolSpec>>,
    /// The conversation is one user message whose content is the whole prompt, used as is: no
    /// chat template, control tokens in it parsed (legacy completions, Ollama's raw mode).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw_prompt: bool,
    /// No answer: each message's content is a text to embed (`/v1/embeddings`, Ollama's
    /// `/api/embed`); the outcome carries one vector per message.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub embed: bool,
    /// Report each answer token's log-probability and this many most likely alternatives
    /// (0..=[`MAX_TOP_LOGPROBS`]); `None`: no log-probabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u8>,
}

/// Most alternatives `top_logprobs` may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u8 = 20;

/// One answer token's log-probability under the model (its raw distribution: before temperature,
/// `top_p` and any response format's mask), with the most likely alternatives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TokenLogprob {
    /// The token's text (its bytes, lossily decoded: a token may hold part of a character).
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<TopLogprob>,
}

/// An alternative token at one position.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
}

/// The schema `json_object` mode compiles: any JSON object, as OpenAI's mode and Ollama's
/// `"format": "json"` promise (llama.cpp does the same).
const JSON_OBJECT_SCHEMA: &str = r#"{"type":"object"}"#;

/// The form an answer must take: OpenAI's `response_format` (`json_object`, `json_schema`) and
/// Ollama's `format` (`"json"`, a schema). Plain text is the absence of one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid against a schema (the subset in docs/structured-output.md).
    JsonSchema {
        name: String,
        /// The schema as JSON text, in the client's key order: properties are generated in it,
        /// and a parsed `serde_json::Value` would sort them.
        schema_text: String,
        /// OpenAI's `strict`. The schema is always enforced here; kept to pass on to backends.
        strict: bool,
    },
}

impl ResponseFormat {
    /// The grammar that enforces this format. Compiling is deterministic, so every node that
    /// resumes an answer gets the same grammar.
    pub fn grammar(&self) -> Result<Grammar, SchemaError> {
        let options = SchemaOptions::default();
        match self {
            ResponseFormat::JsonObject => compile_schema(JSON_OBJECT_SCHEMA, &options),
            ResponseFormat::JsonSchema { schema_text, .. } => compile_schema(schema_text, &options),
        }
    }
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            max_tokens: 256,
            temperature: 0.7,
            top_p: None,
            seed: 0,
            stop: Vec::new(),
            response_format: None,
            tools: None,
            raw_prompt: false,
            embed: false,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    /// Checks every range and reports all violations in one error.
    pub fn validate(&self) -> Result<(), InvalidParams> {
        let mut problems = Vec::new();
        if !(1..=MAX_TOKENS_LIMIT).contains(&self.max_tokens) {
            problems.push(format!(
                "max_tokens must be in 1..={MAX_TOKENS_LIMIT}, got {}",
                self.max_tokens
            ));
        }
        // `contains` is false for NaN, which is what we want.
        if !(0.0..=2.0).contains(&self.temperature) {
            problems.push(format!(
                "temperature must be in 0..=2, got {}",
                self.temperature
            ));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            problems.push(format!("top_p must be in (0, 1], got {p}"));
        }
        if self.stop.len() > MAX_STOP_STRINGS {
            problems.push(format!(
                "at most {MAX_STOP_STRINGS} stop strings, got {}",
                self.stop.len()
            ));
        }
        for s in &self.stop {
            if s.is_empty() || s.len() > MAX_STOP_BYTES {
                problems.push(format!(
                    "stop strings must be 1..={MAX_STOP_BYTES} bytes, got {} bytes",
                    s.len()
                ));
            }
        }
        // Only that the schema is JSON (linear and cheap): compiling it can take a while for a
        // hostile schema, so the HTTP APIs compile it off the async runtime before an ask starts
        // and the engine compiles it on its inference thread.
        if let Some(format) = &self.response_format
            && let ResponseFormat::JsonSchema { schema_text, .. } = &**format
            && let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(schema_text)
        {
            problems.push(format!("response_format: the schema is not JSON: {e}"));
        }
        if let Some(k) = self.logprobs
            && k > MAX_TOP_LOGPROBS
        {
            problems.push(format!(
                "top_logprobs must be in 0..={MAX_TOP_LOGPROBS}, got {k}"
            ));
        }
        if let Some(spec) = &self.tools {
            problems.extend(spec.problems());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidParams(problems.join("; ")))
        }
    }
}

/// Why a generation ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// End of turn or a stop string.
    Stop,
    /// `max_tokens` or the context window reached.
    Length,
    /// The cancel token fired or the receiver was dropped.
    Cancelled,
}

impl ToolSpec {
    /// For `required` and a named choice: the form the whole answer must take, one call
    /// `{"name": ..., "arguments": {...}}` of an offered function, its arguments valid against
    /// that function's schema. `None` for `auto` and `none`.
    pub fn call_format(&self) -> Option<ResponseFormat> {
        let call = |t: &ToolDef| {
            format!(
                r#"{{"type":"object","properties":{{"name":{{"const":{}}},"arguments":{}}},"required":["name","arguments"],"additionalProperties":false}}"#,
                Value::String(t.name.clone()),
                t.parameters_text
            )
        };
        let schema_text = match &self.choice {
            ToolChoice::Auto | ToolChoice::None => return None,
            ToolChoice::Named(name) => call(self.tools.iter().find(|t| &t.name == name)?),
            ToolChoice::Required => format!(
                r#"{{"anyOf":[{}]}}"#,
                self.tools.iter().map(call).collect::<Vec<_>>().join(",")
            ),
        };
        Some(ResponseFormat::JsonSchema {
            name: "tool_call".into(),
            schema_text,
            strict: true,
        })
    }
}

/// A conversation with tools, for a model that has no tool support of its own: the tools
/// described in the system message ([`generic_tool_prompt`], when `spec` is active), earlier calls
/// written into their assistant turns and tool results sent as user turns, in the form that
/// prompt teaches.
pub fn plain_conversation(messages: &[ChatMessage], spec: Option<&ToolSpec>) -> Vec<ChatMessage> {
    let mut out: Vec<ChatMessage> = messages
        .iter()
        .map(|m| match m.role {
            Role::Tool => ChatMessage::new(Role::User, result_as_text(&m.content)),
            Role::Assistant if !m.tool_calls.is_empty() => {
                let mut text = m.content.clone();
                for call in &m.tool_calls {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&call_as_text(call));
                }
                ChatMessage::new(Role::Assistant, text)
            }
            _ => m.clone(),
        })
        .collect();
    if let Some(spec) = spec.filter(|s| s.active()) {
        let prompt = generic_tool_prompt(spec);
        match out.first_mut() {
            Some(first) if first.role == Role::System => {
                first.content = format!("{}\n\n{prompt}", first.content);
            }
            _ => out.insert(0, ChatMessage::new(Role::System, prompt)),
        }
    }
    out
}

#[cfg(test)]
mod tool_tests {
    use super::*;
    use crate::protocol::tools::parse_calls;

    use crate::protocol::tools::sample_spec as spec;

    #[test]
    fn forced_calls_compile_to_a_grammar_the_parser_reads() {
        let mut s = spec(&["get_weather", "get_time"]);
        assert!(s.call_format().is_none());
        s.choice = ToolChoice::Required;
        let format = s.call_format().expect("a format");
        format.grammar().expect("the call schema compiles");
        s.choice = ToolChoice::Named("get_time".into());
        let format = s.call_format().expect("a format");
        let grammar = format.grammar().expect("compiles");
        let mut state = orrery_cpu::grammar::GrammarState::new(&grammar);
        let out = r#"{"name":"get_time","arguments":{"city":"Oslo"}}"#;
        state
            .advance(out.as_bytes())
            .expect("a call of get_time is accepted");
        assert!(state.is_complete());
        let other = r#"{"name":"get_weather""#;
        let mut state = orrery_cpu::grammar::GrammarState::new(&grammar);
        assert!(state.advance(other.as_bytes()).is_err());
        assert_eq!(parse_calls(out, &s, "c").calls[0].name, "get_time");
        s.choice = ToolChoice::Named("nope".into());
        assert!(s.call_format().is_none());
    }
}
