//! Every chat template llama.cpp ships (`models/templates/*.jinja`, real templates of Llama 3.x,
//! Qwen 2.5/3, Phi-3.5, Gemma, Mistral, SmolLM3, DeepSeek, ...) renders a system + user +
//! assistant + user conversation, or refuses it with a clear error for a listed reason.

use std::path::PathBuf;

use super::*;
use crate::engine::Role;

const PEER_VERSION: &str = "11434.0.0";

const SYSTEM: &str = "You are terse.";
const USER_1: &str = "Hi there";
const ASSISTANT: &str = "Hello! How can I help?";
const USER_2: &str = "Name a colour.";

/// Templates that refuse the conversation, and a part of the error that says why.
const REFUSED: &[(&str, &str)] = &[
    // A function-calling template: it requires a `functions` list, which a plain chat lacks.
    (
        "fireworks-ai-llama-3-firefunction-v2",
        "`functions` is undefined",
    ),
    // Gemma 2 has no system role and its template says so (Gemma 3's folds it into the user turn).
    ("google-gemma-2-2b-it", "System role not supported"),
];

fn templates_dir() -> PathBuf {
    let dir = std::env::var_os("ORRERY_LLAMA_CPP_SRC")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache/orrery-bench")
                    .join(format!("llama.cpp-{PEER_VERSION}"))
            })
        })
        .unwrap_or_default()
        .join("models/templates");
    assert!(
        dir.is_dir(),
        "llama.cpp's chat templates not found at {}: run `scripts/peer-source` from the \
         repository root and point ORRERY_LLAMA_CPP_SRC at the folder it prints",
        dir.display()
    );
    dir
}

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(Role::System, SYSTEM),
        ChatMessage::new(Role::User, USER_1),
        ChatMessage::new(Role::Assistant, ASSISTANT),
        ChatMessage::new(Role::User, USER_2),
    ]
}

#[test]
fn every_llama_cpp_template_renders_or_refuses_clearly() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(templates_dir())
        .expect("list templates")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
        .collect();
    names.sort();
    assert!(names.len() >= 60, "only {} templates found", names.len());
    let mut problems = Vec::new();
    let mut rendered = 0;
    for path in &names {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let source = std::fs::read_to_string(path).expect("read template");
        let refusal = REFUSED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, why)| why);
        let result = ChatTemplate::new(Some(&source), "<BOS>", "<EOS>")
            .and_then(|t| t.prompt_segments(&conversation(), "").map(|s| (t, s)));
        match (result, refusal) {
            (Ok((template, segments)), None) => {
                rendered += 1;
                let text = template.prompt(&conversation(), "").expect("renders");
                for content in [SYSTEM, USER_1, USER_2] {
                    if !text.contains(content) {
                        problems.push(format!("{name}: {content:?} missing from {text:?}"));
                    }
                }
                let texts: Vec<&str> = segments
                    .iter()
                    .filter_map(|s| match s {
                        Segment::Text(t) => Some(t.as_str()),
                        Segment::Markup(_) => None,
                    })
                    .collect();
                for content in [USER_1, USER_2] {
                    if !texts.contains(&content) {
                        problems.push(format!(
                            "{name}: {content:?} not a text segment: {segments:?}"
                        ));
                    }
                }
            }
            (Ok(_), Some(why)) => {
                problems.push(format!("{name}: rendered, but listed as refused ({why})"))
            }
            (Err(e), Some(why)) => {
                if !matches!(&e, EngineError::Template(m) if m.contains(why)) {
                    problems.push(format!("{name}: refused with {e:?}, expected {why:?}"));
                }
            }
            (Err(e), None) => problems.push(format!("{name}: {e}")),
        }
    }
    eprintln!("{rendered} of {} templates rendered", names.len());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A tool-using conversation as the model sees it when it answers from a tool's result: a
/// question, the call it made, the call's result; one tool offered.
fn tool_conversation() -> (Vec<ChatMessage>, SamplingParams) {
    use crate::protocol::tools::{ToolCall, ToolChoice, ToolDef, ToolSpec};
    let call = ChatMessage {
        tool_calls: vec![ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: r#"{"city": "Paris"}"#.into(),
        }],
        ..ChatMessage::new(Role::Assistant, "")
    };
    let result = ChatMessage {
        tool_call_id: Some("call_1".into()),
        ..ChatMessage::new(Role::Tool, "18 degrees and sunny")
    };
    let messages = vec![
        ChatMessage::new(Role::System, SYSTEM),
        ChatMessage::new(Role::User, "Weather in Paris?"),
        call,
        result,
    ];
    let params = SamplingParams {
        tools: Some(Box::new(ToolSpec {
            tools: vec![ToolDef {
                name: "get_weather".into(),
                description: "The weather in a city now".into(),
                parameters_text: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
            }],
            choice: ToolChoice::Auto,
            parallel: true,
        })),
        ..SamplingParams::default()
    };
    (messages, params)
}

/// Templates that cannot render the tool conversation, and a part of the error that says why.
const TOOLS_REFUSED: &[(&str, &str)] = &[
    (
        "fireworks-ai-llama-3-firefunction-v2",
        "`functions` is undefined",
    ),
    ("google-gemma-2-2b-it", "System role not supported"),
    // Cohere's own tool format (`parameter_definitions`), not the JSON-schema tools OpenAI sends.
    (
        "CohereForAI-c4ai-command-r-plus-tool_use",
        "`param_fields.description` is undefined",
    ),
    // Builds its tool list with Python's `list.append`, which Jinja (and minijinja) lacks.
    ("Kimi-K2-Instruct", "no method named append"),
    ("Kimi-K2-Thinking", "no method named append"),
];

#[test]
fn every_llama_cpp_template_renders_a_tool_conversation() {
    let (messages, params) = tool_conversation();
    let mut problems = Vec::new();
    let mut native = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(templates_dir())
        .expect("list templates")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jinja"))
        .collect();
    names.sort();
    for path in &names {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?");
        let source = std::fs::read_to_string(path).expect("read template");
        let refusal = TOOLS_REFUSED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, why)| why);
        let result = ChatTemplate::new(Some(&source), "<BOS>", "<EOS>")
            .and_then(|t| t.request_text(&messages, &params, ""));
        match (result, refusal) {
            (Ok(text), None) => {
                native += usize::from(source.contains("tools"));
                for needle in ["Weather in Paris?", "18 degrees and sunny", "get_weather"] {
                    if !text.contains(needle) {
                        problems.push(format!("{name}: {needle:?} missing from {text:?}"));
                    }
                }
            }
            (Ok(_), Some(why)) => {
                problems.push(format!("{name}: rendered, but listed as refused ({why})"))
            }
            (Err(e), Some(why)) => {
                if !matches!(&e, EngineError::Template(m) if m.contains(why)) {
                    problems.push(format!("{name}: refused with {e:?}, expected {why:?}"));
                }
            }
            (Err(e), None) => problems.push(format!("{name}: {e}")),
        }
    }
    eprintln!(
        "{native} of {} templates render tools natively",
        names.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
