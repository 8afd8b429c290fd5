//! Inference engines behind one interface, [`Engine`]: the local engine ([`LocalEngine`]: GGUF
//! models on the CPU through `orrery-cpu`, tokenizer and chat template from the file, one
//! inference thread round-robining up to `max_sequences` answers, see `scheduler`), remote
//! backends ([`RemoteEngine`]: Ollama or any OpenAI-compatible server, streamed) and, for
//! orchestration tests and benchmarks only, [`SyntheticEngine`] (a fixed token rate).
//!
//! A generation is a [`GenerateRequest`] in, a channel of [`GenEvent`]s out (text, then `Done` or
//! `Failed`). Errors are [`EngineError`]s; [`EngineError::is_bad_request`] is the one list of
//! those that no other node could do better on.

mod batch_size;
mod constraint;
mod jobs;
mod local;
mod prefix_cache;
mod remote;
mod scheduler;
mod sequence;
mod stats;
mod synthetic;
mod weights;

pub mod sampling;
pub mod template;
pub mod tokenizer;

#[cfg(test)]
mod cpu_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod testutil;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

pub use self::local::{DEFAULT_CONTEXT, LocalConfig, LocalEngine, THREADS_ENV};
pub use self::remote::{RemoteConfig, RemoteEngine, RemoteKind};
pub use self::stats::GenMetrics;
pub use self::synthetic::{
    SyntheticConfig, SyntheticEngine, stamped_word, synthetic_token, synthetic_word, word_stamp,
};
pub use self::weights::Precision;

pub use crate::protocol::chat::{
    ChatMessage, FinishReason, InvalidParams, MAX_STOP_BYTES, MAX_STOP_STRINGS, MAX_TOKENS_LIMIT,
    ResponseFormat, Role, SamplingParams, TokenLogprob, TopLogprob,
};

/// One chat completion to produce.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    pub params: SamplingParams,
    /// Answer text already produced (failover/resume): generation continues after it and emits
    /// only new text. Empty for a fresh answer.
    pub resume_text: String,
    /// Checked between tokens.
    pub cancel: CancellationToken,
}

impl GenerateRequest {
    /// A fresh answer with its own cancel token.
    pub fn new(messages: Vec<ChatMessage>, params: SamplingParams) -> Self {
        GenerateRequest {
            messages,
            params,
            resume_text: String::new(),
            cancel: CancellationToken::new(),
        }
    }
}

/// What a generation reports, in order, over its channel.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum GenEvent {
    /// New answer text: valid UTF-8, never a split character, held back while it may be the
    /// start of a stop string.
    Token { text: String },
    /// The log-probabilities of the tokens of the `Token` event that follows (only when the
    /// request asked for them).
    Logprobs(Vec<TokenLogprob>),
    /// Last event on success or cancellation.
    Done(GenSummary),
    /// Last event on error.
    Failed(EngineError),
}

/// Embeddings of some texts.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedded {
    /// One unit vector per text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, all texts together.
    pub tokens: u32,
}

/// Counts and timings of a finished generation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GenSummary {
    pub finish_reason: FinishReason,
    /// Tokens of the rendered prompt, resume text included.
    pub prompt_tokens: u32,
    /// Of those, the ones the prefix cache already held (not prefilled again).
    #[serde(default)]
    pub cached_tokens: u32,
    /// New tokens sampled, the end-of-turn token excluded.
    pub completion_tokens: u32,
    /// From `generate` to the first sampled token (zero when none was sampled).
    pub time_to_first_token: Duration,
    /// From `generate` to the end.
    pub total: Duration,
}

/// Errors an engine reports; callers branch on the variant (see [`EngineError::code`]).
#[derive(thiserror::Error, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum EngineError {
    #[error("invalid sampling parameters: {0}")]
    InvalidParams(String),
    #[error("prompt of {prompt_tokens} tokens leaves no room in the {context_len}-token context")]
    PromptTooLong {
        prompt_tokens: u32,
        context_len: u32,
    },
    #[error("cannot load model: {0}")]
    Load(String),
    #[error("cannot render the chat template: {0}")]
    Template(String),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("engine is shutting down")]
    Shutdown,
    /// The request asks for something this engine cannot do (a response format from the
    /// synthetic engine); no retry can help.
    #[error("not supported by this engine: {0}")]
    Unsupported(String),
}

impl EngineError {
    /// A stable machine-readable code for API errors.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidParams(_) => "invalid_params",
            EngineError::PromptTooLong { .. } => "prompt_too_long",
            EngineError::Load(_) => "model_load_failed",
            EngineError::Template(_) => "template_error",
            EngineError::Tokenizer(_) => "tokenizer_error",
            EngineError::Inference(_) => "inference_failed",
            EngineError::Shutdown => "engine_shutdown",
            EngineError::Unsupported(_) => "unsupported",
        }
    }

    /// True when the request itself is at fault, so retrying it elsewhere cannot help.
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            EngineError::InvalidParams(_)
                | EngineError::PromptTooLong { .. }
                | EngineError::Template(_)
                | EngineError::Unsupported(_)
        )
    }
}

impl From<InvalidParams> for EngineError {
    fn from(e: InvalidParams) -> Self {
        EngineError::InvalidParams(e.0)
    }
}

impl From<tokenizer::TokenizerError> for EngineError {
    fn from(e: tokenizer::TokenizerError) -> Self {
        if e.is_load_error() {
            EngineError::Load(e.to_string())
        } else {
            EngineError::Tokenizer(e.to_string())
        }
    }
}

/// For an engine that cannot constrain its output (the synthetic one): a request with a response
/// format is refused, rather than answered with text that ignores it.
pub(crate) fn refuse_response_format(
    params: &SamplingParams,
    engine: &str,
) -> Result<(), EngineError> {
    match params.response_format {
        None => Ok(()),
        Some(_) => Err(EngineError::Unsupported(format!(
            "{engine} cannot produce structured output (response_format / format)"
        ))),
    }
}

/// What an engine is and roughly what it costs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EngineInfo {
    pub model_id: String,
    /// "gguf" (the local engine), "synthetic", or a remote backend's kind.
    pub kind: String,
    /// Prompt plus answer tokens one sequence may hold.
    pub context_len: u32,
    /// Upper-bound estimate: weights plus a full-context KV cache for every sequence slot.
    pub memory_bytes: u64,
    /// Sequences decoded concurrently; further requests queue.
    pub max_sequences: usize,
}

/// An inference engine serving one model.
pub trait Engine: Send + Sync + 'static {
    fn model_id(&self) -> &str;
    fn info(&self) -> EngineInfo;
    /// Prompt tokens of `messages` after the chat template (with the generation prompt and the
    /// tools in `params`), or of its raw prompt.
    fn count_tokens(
        &self,
        messages: &[ChatMessage],
        params: &SamplingParams,
    ) -> Result<u32, EngineError>;
    /// Starts a generation; events arrive on the returned channel, ending with `Done` or `Failed`.
    fn generate(&self, req: GenerateRequest) -> UnboundedReceiver<GenEvent>;
    /// The embedding of each text (a unit vector), and the tokens read. Blocking: call it from
    /// `spawn_blocking`. Engines without embeddings refuse with `Unsupported`.
    fn embed(&self, texts: &[String]) -> Result<Embedded, EngineError> {
        let _ = texts;
        Err(EngineError::Unsupported(format!(
            "embeddings from {} models",
            self.info().kind
        )))
    }
    /// Sequences being decoded now.
    fn active_sequences(&self) -> usize;
    /// Requests waiting for a sequence slot.
    fn queued(&self) -> usize;
    /// The conversation marks ([`crate::protocol::PrefixMark`] hashes) of what this engine's
    /// prefix cache holds: where a follow-up turn would prefill less.
    fn cached_marks(&self) -> Vec<u64> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_accepts_and_rejects_by_table() {
        let ok = SamplingParams::default();
        let cases: Vec<(&str, SamplingParams, bool)> = vec![
            ("default", ok.clone(), true),
            (
                "greedy",
                SamplingParams {
                    temperature: 0.0,
                    ..ok.clone()
                },
                true,
            ),
            (
                "max temperature",
                SamplingParams {
                    temperature: 2.0,
                    ..ok.clone()
                },
                true,
            ),
            (
                "top_p 1",
                SamplingParams {
                    top_p: Some(1.0),
                    ..ok.clone()
                },
                true,
            ),
            (
                "max_tokens 4096",
                SamplingParams {
                    max_tokens: 4096,
                    ..ok.clone()
                },
                true,
            ),
            (
                "max_tokens 0",
                SamplingParams {
                    max_tokens: 0,
                    ..ok.clone()
                },
                false,
            ),
            (
                "max_tokens 4097",
                SamplingParams {
                    max_tokens: 4097,
                    ..ok.clone()
                },
                false,
            ),
            (
                "negative temperature",
                SamplingParams {
                    temperature: -0.1,
                    ..ok.clone()
                },
                false,
            ),
            (
                "temperature 2.1",
                SamplingParams {
                    temperature: 2.1,
                    ..ok.clone()
                },
                false,
            ),
            (
                "NaN temperature",
                SamplingParams {
                    temperature: f64::NAN,
                    ..ok.clone()
                },
                false,
            ),
            (
                "top_p 0",
                SamplingParams {
                    top_p: Some(0.0),
                    ..ok.clone()
                },
                false,
            ),
            (
                "top_p 1.5",
                SamplingParams {
                    top_p: Some(1.5),
                    ..ok.clone()
                },
                false,
            ),
            (
                "4 stops",
                SamplingParams {
                    stop: vec!["a".into(); 4],
                    ..ok.clone()
                },
                true,
            ),
            (
                "5 stops",
                SamplingParams {
                    stop: vec!["a".into(); 5],
                    ..ok.clone()
                },
                false,
            ),
            (
                "empty stop",
                SamplingParams {
                    stop: vec![String::new()],
                    ..ok.clone()
                },
                false,
            ),
            (
                "64-byte stop",
                SamplingParams {
                    stop: vec!["x".repeat(64)],
                    ..ok.clone()
                },
                true,
            ),
            (
                "65-byte stop",
                SamplingParams {
                    stop: vec!["x".repeat(65)],
                    ..ok.clone()
                },
                false,
            ),
        ];
        for (name, params, valid) in cases {
            let result = params.validate().map_err(EngineError::from);
            assert_eq!(result.is_ok(), valid, "{name}: {result:?}");
            if let Err(e) = result {
                assert_eq!(e.code(), "invalid_params", "{name}");
            }
        }
    }

    #[test]
    fn validate_reports_every_problem_at_once() {
        let params = SamplingParams {
            max_tokens: 0,
            temperature: 9.0,
            ..SamplingParams::default()
        };
        let Err(InvalidParams(msg)) = params.validate() else {
            panic!("expected InvalidParams");
        };
        assert!(
            msg.contains("max_tokens") && msg.contains("temperature"),
            "{msg}"
        );
    }

    #[test]
    fn response_formats_round_trip_and_old_payloads_still_read() {
        let old = r#"{"max_tokens":5,"temperature":0.0,"top_p":null,"seed":1,"stop":[]}"#;
        let params: SamplingParams = serde_json::from_str(old).expect("old payload");
        assert_eq!(params.response_format, None);
        assert_eq!(serde_json::to_string(&params).ok().as_deref(), Some(old));
        for format in [
            ResponseFormat::JsonObject,
            ResponseFormat::JsonSchema {
                name: "p".into(),
                schema_text: r#"{"type":"object","properties":{"z":{},"a":{}}}"#.into(),
                strict: true,
            },
        ] {
            let params = SamplingParams {
                response_format: Some(Box::new(format)),
                ..params.clone()
            };
            let text = serde_json::to_string(&params).expect("serialise");
            let back: SamplingParams = serde_json::from_str(&text).expect("deserialise");
            assert_eq!(back, params, "{text}");
            assert_eq!(back.validate(), Ok(()));
        }
        let format = |schema_text: &str| {
            Some(Box::new(ResponseFormat::JsonSchema {
                name: "p".into(),
                schema_text: schema_text.into(),
                strict: false,
            }))
        };
        let not_json = SamplingParams {
            response_format: format(r#"{"type":"#),
            ..params.clone()
        };
        let Err(InvalidParams(msg)) = not_json.validate() else {
            panic!("a schema that is not JSON passed validation");
        };
        assert!(msg.contains("response_format"), "{msg}");
        // Unsupported keywords are found by compiling, off the runtime (see `validate`).
        let unsupported = format(r#"{"type":"integer","minimum":0}"#).expect("format");
        let msg = unsupported.grammar().expect_err("unsupported").to_string();
        assert!(msg.contains("minimum") && msg.contains('#'), "{msg}");
    }

    #[tokio::test]
    async fn the_synthetic_engine_refuses_a_response_format() {
        let engine = SyntheticEngine::new("syn", SyntheticConfig::default()).expect("starts");
        let mut req = GenerateRequest::new(
            vec![ChatMessage::new(Role::User, "count")],
            SamplingParams::default(),
        );
        req.params.response_format = Some(Box::new(ResponseFormat::JsonObject));
        let got = testutil::collect(engine.generate(req), Duration::from_secs(5)).await;
        let Err(e) = got.end else {
            panic!("a constrained request ran: {:?}", got.tokens);
        };
        assert!(matches!(e, EngineError::Unsupported(_)), "{e}");
        assert!(e.is_bad_request(), "not retried elsewhere");
        assert!(got.tokens.is_empty());
    }

    #[test]
    fn serde_names_match_the_contract() {
        let cases = [
            (serde_json::to_string(&Role::System), "\"system\""),
            (serde_json::to_string(&Role::User), "\"user\""),
            (serde_json::to_string(&Role::Assistant), "\"assistant\""),
            (serde_json::to_string(&FinishReason::Stop), "\"stop\""),
            (serde_json::to_string(&FinishReason::Length), "\"length\""),
            (
                serde_json::to_string(&FinishReason::Cancelled),
                "\"cancelled\"",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got.ok().as_deref(), Some(want));
        }
    }
}
