//! The leaf of the crate: the types and names every other module shares — ids, actor and group
//! names, the conversation and sampling types, live events, node snapshots, ask outcomes. It
//! depends on nothing else in the crate; everything else may depend on it.

pub mod ask;
pub mod chat;
pub mod flow;
pub mod ids;
pub mod live;
pub mod names;
pub mod prefix;
pub mod snapshot;
pub mod tools;

pub use ask::{AskOutcome, INVALID_REQUEST, NO_CAPACITY, Priority, UNKNOWN_MODEL};
pub use chat::{ChatMessage, FinishReason, ResponseFormat, Role, SamplingParams};
pub use flow::{FlowKind, FlowProgress, StepState, StepStatus, child_ask_id};
pub use ids::{ModelId, NodeId, RequestId};
pub use live::{LiveEvent, LiveStage};
pub use names::{
    ASK_WORKFLOW_PREFIX, CLUSTER_TASK_QUEUE, RESOURCE_WORKFLOW_ID, ROUTES_QUERY,
    USER_SEARCH_ATTRIBUTE, node_task_queue,
};
pub use names::{actor_names, groups};
pub use prefix::{PrefixMark, answer_mark, conversation_marks};
pub use snapshot::{ModelLoad, NodeRow, NodeSnapshot};
pub use tools::{ToolCall, ToolChoice, ToolDef, ToolSpec};
