//! What an ask is and how it ends, as the workflows, activities and front doors share it.

use super::chat::{FinishReason, TokenLogprob};
use super::ids::{ModelId, NodeId};
use super::tools::ToolCall;
use serde::{Deserialize, Serialize};

/// Failure types that mean the request itself is at fault: no other node would do better.
pub const INVALID_REQUEST: &str = "InvalidRequest";
pub const UNKNOWN_MODEL: &str = "UnknownModel";
pub const NO_CAPACITY: &str = "NoCapacity";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Normal,
    Low,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AskOutcome {
    pub text: String,
    pub node: NodeId,
    pub model: ModelId,
    pub finish_reason: FinishReason,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub first_token_ms: u64,
    pub total_ms: u64,
    /// Placements tried (1 when the first node finished the answer).
    pub attempts: u32,
    /// The function calls in `text`, when the request offered tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Prompt tokens the engine's prefix cache already held (not prefilled again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u32,
    /// With `logprobs` asked for: each answer token's, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<TokenLogprob>,
    /// For an embedding request: one unit vector per input, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embeddings: Vec<Vec<f32>>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
