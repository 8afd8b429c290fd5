//! Why an ask cannot be taken, found or followed. Front doors map these to their own error
//! shapes (the API's JSON error, OpenAI's, a WebSocket error frame) through [`AskError::code`].

use crate::protocol::{ModelId, RequestId};

#[derive(thiserror::Error, Clone, Debug, PartialEq, Eq)]
pub enum AskError {
    #[error("model `{0}` is not served by this cluster")]
    UnknownModel(ModelId),
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("an ask needs {0}")]
    MissingField(&'static str),
    #[error("{0}")]
    InvalidParams(String),
    #[error("the prompt has {chars} characters; the limit is {limit}")]
    PromptTooLong { chars: usize, limit: usize },
    #[error(
        "the prompt is {prompt_tokens} tokens after the chat template; model `{model}` holds \
         {context_len} (answer included)"
    )]
    ContextExceeded {
        model: ModelId,
        prompt_tokens: u32,
        context_len: u32,
    },
    #[error("no ask {0}")]
    UnknownRequest(RequestId),
    #[error("ask {0} belongs to another user")]
    Forbidden(RequestId),
    /// The control plane (Temporal) did not answer or refused.
    #[error("{0}")]
    Unavailable(String),
}

impl AskError {
    /// The stable machine-readable code of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            AskError::UnknownModel(_) => "unknown_model",
            AskError::EmptyPrompt => "empty_prompt",
            AskError::MissingField(_) => "missing_field",
            AskError::InvalidParams(_) => "invalid_params",
            AskError::PromptTooLong { .. } | AskError::ContextExceeded { .. } => "prompt_too_long",
            AskError::UnknownRequest(_) => "unknown_request",
            AskError::Forbidden(_) => "forbidden",
            AskError::Unavailable(_) => "unavailable",
        }
    }
}
