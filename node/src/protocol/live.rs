//! Live events: what the user of an ask is shown while it runs (best effort; the workflow result
//! is the durable record).

use super::chat::TokenLogprob;
use super::ids::NodeId;
use serde::{Deserialize, Serialize};

/// The stages of an ask that are shown to its user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum LiveStage {
    Queued {
        position: u32,
        estimated_wait_ms: u64,
    },
    Planning,
    Generating {
        node: NodeId,
    },
    /// The control plane (Temporal) does not answer; the ask goes on and is waited for.
    Reconnecting,
}

/// One live event about one ask.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LiveEvent {
    Status(LiveStage),
    /// `offset` counts the chars of the answer before `text`.
    Chunk {
        offset: usize,
        text: String,
        /// The log-probabilities of the tokens `text` holds, when the ask wants them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        logprobs: Vec<TokenLogprob>,
    },
}
