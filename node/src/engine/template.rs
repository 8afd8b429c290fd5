//! Chat prompt rendering: the model's own Jinja chat template (from GGUF metadata), rendered with
//! minijinja the way Hugging Face transformers renders it; plain ChatML when the model has none.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};

#[path = "template_fns.rs"]
mod fns;

use super::tokenizer::Segment;
use super::{ChatMessage, EngineError, SamplingParams};
use crate::protocol::chat::plain_conversation;
use crate::protocol::tools::ToolSpec;

/// ChatML without a default system message, for models that ship no template.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}\
{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\
{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template reads `tools` (and so renders tool calls and results itself); otherwise tools
    /// are described in a generic system prompt and calls and results written as text.
    supports_tools: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`, or [`CHATML_TEMPLATE`] when `None`. `bos_token`/`eos_token` are the
    /// texts templates see under those names.
    pub fn new(
        source: Option<&str>,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, EngineError> {
        let mut env = Environment::new();
        // transformers renders chat templates with trim_blocks and lstrip_blocks on.
        let syntax = SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| EngineError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        // HF templates call Python string methods (`.strip()`, `.startswith()`, ...).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        fns::register(&mut env);
        let source = fns::without_generation_tags(source.unwrap_or(CHATML_TEMPLATE));
        let supports_tools = source.contains("tools");
        env.add_template_owned(TEMPLATE_NAME, source)
            .map_err(|e| EngineError::Template(format!("compiling the chat template: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            supports_tools,
        })
    }

    /// Renders `messages`, ending with the assistant's generation prompt when asked.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        self.render_with(messages, Extras::default(), add_generation_prompt)
    }

    /// [`Self::render`] with the request's tools.
    fn render_with(
        &self,
        messages: &[ChatMessage],
        extras: Extras<'_>,
        add_generation_prompt: bool,
    ) -> Result<String, EngineError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| message_value(m, extras.arguments_as_text))
            .collect();
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let base = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
        };
        // Without tools, `tools` stays undefined: templates test it every way (`is defined`,
        // `is not none`, `| length`) and undefined satisfies all of them.
        let ctx = match extras.tools {
            Some(t) => context! { tools => Value::from(Serde(t)), ..base },
            None => base,
        };
        template
            .render(ctx)
            .map_err(|e| EngineError::Template(e.to_string()))
    }

    /// The conversation as this template should see it, with the tools' JSON to pass as `tools`:
    /// unchanged for a template with tool support; otherwise the tools described in the system
    /// message ([`crate::protocol::tools::generic_tool_prompt`]), earlier calls written into their assistant turns
    /// and tool results sent as user turns, in the form that prompt teaches.
    fn with_tools(
        &self,
        messages: &[ChatMessage],
        spec: Option<&ToolSpec>,
    ) -> (Vec<ChatMessage>, Option<serde_json::Value>) {
        if self.supports_tools {
            let active = spec.filter(|s| s.active());
            return (messages.to_vec(), active.map(ToolSpec::as_json));
        }
        (plain_conversation(messages, spec), None)
    }

    /// The prompt of a request as segments: its raw prompt (control tokens parsed: the caller
    /// wrote the whole prompt) or its conversation through this template with its tools, then
    /// `resume_text`.
    pub fn request_segments(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        resume_text: &str,
    ) -> Result<Vec<Segment>, EngineError> {
        if params.raw_prompt {
            let [only] = messages else {
                return Err(EngineError::InvalidParams(
                    "a raw prompt is one message".into(),
                ));
            };
            let mut segments = vec![Segment::Markup(only.content.clone())];
            if !resume_text.is_empty() {
                segments.push(Segment::Text(resume_text.to_string()));
            }
            return Ok(segments);
        }
        let (messages, tools) = self.with_tools(messages, params.tools.as_deref());
        let extras = Extras {
            tools: tools.as_ref(),
            arguments_as_text: false,
        };
        match self.segments_with(&messages, extras, resume_text) {
            // Most templates take a call's arguments as a mapping (transformers' convention),
            // some as the JSON text (functionary): the other form before giving up.
            Err(e) if messages.iter().any(|m| !m.tool_calls.is_empty()) => {
                let as_text = Extras {
                    arguments_as_text: true,
                    ..extras
                };
                self.segments_with(&messages, as_text, resume_text)
                    .map_err(|_| e)
            }
            other => other,
        }
    }

    /// [`Self::request_segments`] as one string.
    pub fn request_text(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
        resume_text: &str,
    ) -> Result<String, EngineError> {
        Ok(concat(&self.request_segments(
            messages,
            params,
            resume_text,
        )?))
    }

    /// The text the model continues: the conversation, the generation prompt, then the part of
    /// the answer already produced (`resume_text`, empty for a fresh answer).
    pub fn prompt(
        &self,
        messages: &[ChatMessage],
        resume_text: &str,
    ) -> Result<String, EngineError> {
        let mut text = self.render(messages, true)?;
        text.push_str(resume_text);
        Ok(text)
    }
}

/// Brackets a message index in the placeholder that stands for its content while locating it.
/// Private-use characters: no template looks at them and no real text is made of them.
const MARK_OPEN: char = '\u{F8F0}';
const MARK_CLOSE: char = '\u{F8F1}';

impl ChatTemplate {
    /// [`Self::prompt`] as segments: the template's own text ([`Segment::Markup`], where control
    /// tokens are parsed) and the messages' contents and `resume_text` ([`Segment::Text`], never
    /// parsed), so a user who types `<|im_start|>system` cannot open a system turn.
    ///
    /// The contents are found by rendering once more with a placeholder for each; when the
    /// template changed a content (stripped it, escaped it), so that the placeholders do not
    /// explain the real rendering, each content is searched for in order instead, and a content
    /// that cannot be found is an error rather than a risk.
    pub fn prompt_segments(
        &self,
        messages: &[ChatMessage],
        resume_text: &str,
    ) -> Result<Vec<Segment>, EngineError> {
        self.segments_with(messages, Extras::default(), resume_text)
    }

    fn segments_with(
        &self,
        messages: &[ChatMessage],
        extras: Extras<'_>,
        resume_text: &str,
    ) -> Result<Vec<Segment>, EngineError> {
        let real = self.render_with(messages, extras, true)?;
        let mut segments = match self.segments_by_placeholder(messages, extras, &real) {
            Some(segments) => segments,
            None => segments_by_search(messages, &real)?,
        };
        if !resume_text.is_empty() {
            segments.push(Segment::Text(resume_text.to_string()));
        }
        Ok(segments)
    }

    fn segments_by_placeholder(
        &self,
        messages: &[ChatMessage],
        extras: Extras<'_>,
        real: &str,
    ) -> Option<Vec<Segment>> {
        let marked: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage {
                content: format!("{MARK_OPEN}{i}{MARK_CLOSE}"),
                ..m.clone()
            })
            .collect();
        let rendered = self.render_with(&marked, extras, true).ok()?;
        let mut segments = Vec::new();
        let mut rest = rendered.as_str();
        while let Some(open) = rest.find(MARK_OPEN) {
            let after = &rest[open + MARK_OPEN.len_utf8()..];
            let close = after.find(MARK_CLOSE)?;
            let content = &messages.get(after[..close].parse::<usize>().ok()?)?.content;
            if open > 0 {
                segments.push(Segment::Markup(rest[..open].to_string()));
            }
            if !content.is_empty() {
                segments.push(Segment::Text(content.clone()));
            }
            rest = &after[close + MARK_CLOSE.len_utf8()..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Markup(rest.to_string()));
        }
        (concat(&segments) == real).then_some(segments)
    }
}

/// What a rendering passes besides the messages.
#[derive(Clone, Copy, Default)]
struct Extras<'a> {
    /// The tools' JSON, for `tools`.
    tools: Option<&'a serde_json::Value>,
    /// Calls' arguments as JSON text rather than a mapping.
    arguments_as_text: bool,
}

/// A call id as the model sees it: nine letters and digits (Mistral's templates refuse any other
/// form), the same for a call and the result that answers it. The API's ids are kept as they are.
fn template_call_id(id: &str) -> String {
    if id.len() == 9 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return id.to_string();
    }
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    Sha256::digest(id.as_bytes())
        .iter()
        .take(9)
        .map(|b| DIGITS[usize::from(*b) % DIGITS.len()] as char)
        .collect()
}

/// A message as templates read it: `role`, `content`, and as transformers passes them,
/// `tool_calls` (`[{"id", "type": "function", "function": {"name", "arguments": {...}}}]`) and
/// `tool_call_id`.
fn message_value(m: &ChatMessage, arguments_as_text: bool) -> Value {
    let base = context! { role => m.role.as_str(), content => m.content.as_str() };
    if m.tool_calls.is_empty() && m.tool_call_id.is_none() {
        return base;
    }
    let calls: Vec<serde_json::Value> = m
        .tool_calls
        .iter()
        .map(|c| {
            let arguments = if arguments_as_text {
                serde_json::Value::String(c.arguments.clone())
            } else {
                c.arguments_value()
            };
            serde_json::json!({"id": template_call_id(&c.id), "type": "function",
                "function": {"name": c.name, "arguments": arguments}})
        })
        .collect();
    // Only the keys the message has: templates test `'tool_calls' in message`.
    match (calls.is_empty(), m.tool_call_id.as_deref()) {
        (false, Some(id)) => {
            let id = template_call_id(id);
            context! { tool_calls => Value::from(Serde(&calls)), tool_call_id => id, ..base }
        }
        (false, None) => context! { tool_calls => Value::from(Serde(&calls)), ..base },
        (true, Some(id)) => context! { tool_call_id => template_call_id(id), ..base },
        (true, None) => base,
    }
}

/// Finds each message's content (or, failing that, its trimmed content) in `real`, in order.
fn segments_by_search(messages: &[ChatMessage], real: &str) -> Result<Vec<Segment>, EngineError> {
    let mut segments = Vec::new();
    let mut at = 0;
    for (n, m) in messages.iter().enumerate() {
        let trimmed = m.content.trim();
        if trimmed.is_empty() {
            continue;
        }
        let rest = &real[at..];
        let found = rest
            .find(m.content.as_str())
            .map(|i| (i, m.content.len()))
            .or_else(|| rest.find(trimmed).map(|i| (i, trimmed.len())));
        let Some((i, len)) = found else {
            return Err(EngineError::Template(format!(
                "the chat template rewrote the content of message {n} ({}), so it cannot be kept \
                 apart from the template's own markup",
                m.role.as_str()
            )));
        };
        if i > 0 {
            segments.push(Segment::Markup(rest[..i].to_string()));
        }
        segments.push(Segment::Text(rest[i..i + len].to_string()));
        at += i + len;
    }
    if at < real.len() {
        segments.push(Segment::Markup(real[at..].to_string()));
    }
    Ok(segments)
}

fn concat(segments: &[Segment]) -> String {
    segments
        .iter()
        .map(|s| match s {
            Segment::Markup(t) | Segment::Text(t) => t.as_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Role;

    /// `tokenizer.chat_template` of SmolLM2-135M-Instruct, verbatim.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    const DEFAULT_SYSTEM: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

    fn msg(role: Role, content: &str) -> ChatMessage {
        ChatMessage::new(role, content)
    }

    #[test]
    fn renders_by_table() {
        let smollm =
            ChatTemplate::new(Some(SMOLLM2), "<|im_start|>", "<|im_end|>").expect("compiles");
        let chatml = ChatTemplate::new(None, "", "").expect("compiles");
        let cases: Vec<(&str, &ChatTemplate, Vec<ChatMessage>, bool, String)> = vec![
            (
                "smollm inserts the default system message",
                &smollm,
                vec![msg(Role::User, "hi")],
                true,
                format!("{DEFAULT_SYSTEM}<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"),
            ),
            (
                "smollm keeps a given system message",
                &smollm,
                vec![msg(Role::System, "Be brief."), msg(Role::User, "hi")],
                true,
                "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n".into(),
            ),
            (
                "smollm multi-turn without generation prompt",
                &smollm,
                vec![msg(Role::User, "a"), msg(Role::Assistant, "b"), msg(Role::User, "c")],
                false,
                format!(
                    "{DEFAULT_SYSTEM}<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
                ),
            ),
            (
                "plain chatml fallback",
                &chatml,
                vec![msg(Role::User, "hi")],
                true,
                "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n".into(),
            ),
        ];
        for (name, template, messages, gen_prompt, want) in cases {
            assert_eq!(
                template.render(&messages, gen_prompt).expect(name),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn resume_text_follows_the_generation_prompt() {
        let t = ChatTemplate::new(None, "", "").expect("compiles");
        let got = t
            .prompt(&[msg(Role::User, "hi")], "Hello th")
            .expect("renders");
        assert_eq!(
            got,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nHello th"
        );
    }

    #[test]
    fn hf_template_features_work() {
        let cases = [
            (
                "{{ bos_token }}{{ messages[0]['content'].strip() }}",
                "<s>x y",
            ),
            (
                "{% for m in messages %}{{ m.role | upper }}{% endfor %}",
                "USER",
            ),
            ("{{ messages | length }}{{ eos_token }}", "1</s>"),
            ("{{ messages[0].content | tojson }}", "\"  x y \""),
            (
                "{% for m in messages %}{% if loop.last %}{% break %}{% endif %}{% endfor %}ok",
                "ok",
            ),
            (
                "{% if messages[0]['content'].startswith('  x') %}yes{% endif %}",
                "yes",
            ),
        ];
        for (source, want) in cases {
            let t = ChatTemplate::new(Some(source), "<s>", "</s>").expect(source);
            assert_eq!(
                t.render(&[msg(Role::User, "  x y ")], false).expect(source),
                want
            );
        }
    }

    #[test]
    fn a_template_without_tools_gets_them_as_text() {
        use crate::protocol::tools::{ToolCall, ToolChoice, ToolDef, ToolSpec};
        let smollm = ChatTemplate::new(Some(SMOLLM2), "", "").expect("compiles");
        let params = SamplingParams {
            tools: Some(Box::new(ToolSpec {
                tools: vec![ToolDef {
                    name: "get_time".into(),
                    description: "The time now".into(),
                    parameters_text: r#"{"type":"object"}"#.into(),
                }],
                choice: ToolChoice::Auto,
                parallel: true,
            })),
            ..SamplingParams::default()
        };
        let call = ChatMessage {
            tool_calls: vec![ToolCall {
                id: "c1".into(),
                name: "get_time".into(),
                arguments: "{}".into(),
            }],
            ..msg(Role::Assistant, "")
        };
        let result = ChatMessage {
            tool_call_id: Some("c1".into()),
            ..msg(Role::Tool, "<|im_start|>12:00")
        };
        let messages = [msg(Role::User, "Time?"), call, result];
        let segments = smollm
            .request_segments(&messages, &params, "")
            .expect("renders");
        let text = concat(&segments);
        assert!(
            text.starts_with("<|im_start|>system\nYou may call"),
            "{text}"
        );
        assert!(text.contains(r#""name":"get_time""#), "{text}");
        assert!(
            text.contains("<|im_start|>assistant\n<tool_call>\n{"),
            "{text}"
        );
        assert!(
            text.contains("<|im_start|>user\n<tool_response>\n<|im_start|>12:00"),
            "{text}"
        );
        // The tool's result is text, never parsed for control tokens.
        assert!(segments.iter().any(
            |s| matches!(s, Segment::Text(t) if t.contains("<tool_response>\n<|im_start|>12:00"))
        ));
        // With tool_choice none, no tools are described.
        let mut none = params.clone();
        if let Some(t) = none.tools.as_mut() {
            t.choice = ToolChoice::None;
        }
        let text = smollm.request_text(&messages, &none, "").expect("renders");
        assert!(!text.contains("You may call"), "{text}");
    }

    #[test]
    fn a_raw_prompt_is_used_as_is() {
        let smollm = ChatTemplate::new(Some(SMOLLM2), "", "").expect("compiles");
        let params = SamplingParams {
            raw_prompt: true,
            ..SamplingParams::default()
        };
        let raw = "<|im_start|>user\nhi<|im_end|>\n";
        let segments = smollm
            .request_segments(&[msg(Role::User, raw)], &params, "Hel")
            .expect("renders");
        assert_eq!(
            segments,
            vec![Segment::Markup(raw.into()), Segment::Text("Hel".into())]
        );
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_template_errors() {
        let t = ChatTemplate::new(Some("{{ raise_exception('no system role') }}"), "", "")
            .expect("compiles");
        match t.render(&[], true) {
            Err(EngineError::Template(m)) => assert!(m.contains("no system role"), "{m}"),
            other => panic!("expected a template error, got {other:?}"),
        }
        assert!(matches!(
            ChatTemplate::new(Some("{% for %}"), "", ""),
            Err(EngineError::Template(_))
        ));
    }
}

#[cfg(test)]
#[path = "template_corpus_tests.rs"]
mod corpus_tests;
