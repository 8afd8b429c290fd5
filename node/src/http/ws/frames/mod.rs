//! The frames of the `/ws` protocol, typed: what a client sends ([`ClientFrame`]) and what the
//! server sends ([`ServerFrame`]). docs/websocket.md documents them; a test checks the two agree.

use crate::asks::{AskEnd, AskFields};
use crate::http::error::ApiError;
use crate::protocol::{
    FinishReason, FlowKind, LiveEvent, LiveStage, ModelId, NodeId, NodeRow, RequestId, StepState,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A frame from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Ask(AskFields),
    Cancel {
        request_id: Option<RequestId>,
    },
    Models,
    Ping,
    /// Starts a workflow of any kind: `kind` and that kind's fields (as its REST body).
    RunWorkflow(serde_json::Map<String, Value>),
    CancelWorkflow {
        workflow_id: Option<String>,
    },
}

/// The frame types a client may send, as `type` names them.
pub const CLIENT_TYPES: [&str; 6] = [
    "ask",
    "cancel",
    "cancel_workflow",
    "models",
    "ping",
    "run_workflow",
];

impl ClientFrame {
    /// Parses one text frame, or says exactly what is wrong with it (with the frame's
    /// `client_id`, when it has one).
    pub fn parse(text: &str) -> Result<ClientFrame, (ApiError, Option<String>)> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            (
                ApiError::new("bad_json", format!("not valid JSON: {e}")),
                None,
            )
        })?;
        let client_id = v
            .get("client_id")
            .and_then(|c| c.as_str())
            .map(String::from);
        let Some(kind) = v.get("type").and_then(|t| t.as_str()) else {
            let e = ApiError::new("missing_field", "a message needs a string `type`");
            return Err((e, None));
        };
        if !CLIENT_TYPES.contains(&kind) {
            let e = ApiError::new(
                "unknown_type",
                format!(
                    "unknown message type `{kind}`; expected {}",
                    CLIENT_TYPES.join(", ")
                ),
            );
            return Err((e, client_id));
        }
        serde_json::from_value(v)
            .map_err(|e| (ApiError::new("invalid_params", e.to_string()), client_id))
    }
}

/// One model in `hello` and `models` frames.
#[derive(Clone, Debug, Serialize)]
pub struct ModelEntry {
    pub id: ModelId,
    /// gguf | synthetic | remote
    pub kind: &'static str,
    pub loaded: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct FrameLimits {
    pub max_prompt_chars: usize,
    pub max_tokens: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens the node's prefix cache already held.
    pub cached_tokens: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Timings {
    pub queue_ms: u64,
    pub first_token_ms: u64,
    pub total_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// A frame to the client.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        node: NodeId,
        models: Vec<ModelEntry>,
        default_model: ModelId,
        temporal_ui: Option<String>,
        limits: FrameLimits,
        cluster: Vec<NodeRow>,
    },
    Accepted {
        request_id: RequestId,
        workflow_id: RequestId,
        workflow_url: Option<String>,
        client_id: Option<String>,
    },
    Status {
        request_id: RequestId,
        /// queued | planning | generating
        stage: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
        #[serde(skip_serializing_if = "Option::is_none")]
        queue_position: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        estimated_wait_ms: Option<u64>,
    },
    Chunk {
        request_id: RequestId,
        offset: usize,
        text: String,
    },
    Done {
        request_id: RequestId,
        text: String,
        node: NodeId,
        model: ModelId,
        finish_reason: FinishReason,
        attempts: u32,
        usage: Usage,
        timings: Timings,
    },
    Failed {
        request_id: RequestId,
        error: ErrorBody,
    },
    Cancelled {
        request_id: RequestId,
        text: String,
    },
    Models {
        models: Vec<ModelEntry>,
        default_model: ModelId,
    },
    Pong,
    Cluster {
        nodes: Vec<NodeRow>,
    },
    Error {
        code: String,
        message: String,
        client_id: Option<String>,
        request_id: Option<RequestId>,
    },
    WorkflowAccepted {
        workflow_id: String,
        kind: FlowKind,
        workflow_url: Option<String>,
        client_id: Option<String>,
    },
    /// Where a workflow this socket started stands; sent when it changes.
    WorkflowProgress {
        workflow_id: String,
        kind: FlowKind,
        status: &'static str,
        current_step: Option<String>,
        percent: u32,
        eta_ms: Option<u64>,
        steps: Vec<StepState>,
        children: Vec<crate::flows::ChildRef>,
        /// When the workflow started and ended (RFC 3339), for its whole duration.
        created_at: Option<String>,
        closed_at: Option<String>,
    },
    /// A workflow this socket started ended.
    WorkflowDone {
        workflow_id: String,
        kind: FlowKind,
        /// completed | failed | cancelled
        status: &'static str,
        result: Option<Value>,
        error: Option<ErrorBody>,
    },
    /// A workflow of this user notified its end (to every session of the user on the node).
    WorkflowEvent {
        workflow_id: String,
        kind: String,
        status: String,
        summary: Value,
    },
}

impl ServerFrame {
    pub fn error(e: &ApiError, client_id: Option<&str>, request_id: Option<&RequestId>) -> Self {
        ServerFrame::Error {
            code: e.code.clone(),
            message: e.message.clone(),
            client_id: client_id.map(String::from),
            request_id: request_id.cloned(),
        }
    }

    pub fn live(request_id: &RequestId, ev: LiveEvent) -> Self {
        let request_id = request_id.clone();
        let status = |stage, node, queue_position, estimated_wait_ms| ServerFrame::Status {
            request_id: request_id.clone(),
            stage,
            node,
            queue_position,
            estimated_wait_ms,
        };
        match ev {
            LiveEvent::Chunk { offset, text, .. } => ServerFrame::Chunk {
                request_id: request_id.clone(),
                offset,
                text,
            },
            LiveEvent::Status(LiveStage::Generating { node }) => {
                status("generating", Some(node), None, None)
            }
            LiveEvent::Status(LiveStage::Planning) => status("planning", None, None, None),
            LiveEvent::Status(LiveStage::Reconnecting) => status("reconnecting", None, None, None),
            LiveEvent::Status(LiveStage::Queued {
                position,
                estimated_wait_ms,
            }) => status("queued", None, Some(position), Some(estimated_wait_ms)),
        }
    }

    /// The last frame of an ask. `shown` is what the user saw of a cancelled answer.
    pub fn end(
        request_id: &RequestId,
        end: AskEnd,
        shown: Option<String>,
        elapsed_ms: u64,
    ) -> Self {
        let request_id = request_id.clone();
        match end {
            AskEnd::Done(o) => ServerFrame::Done {
                request_id,
                timings: Timings {
                    queue_ms: elapsed_ms.saturating_sub(o.total_ms),
                    first_token_ms: o.first_token_ms,
                    total_ms: o.total_ms,
                },
                usage: Usage {
                    prompt_tokens: o.prompt_tokens,
                    completion_tokens: o.completion_tokens,
                    cached_tokens: o.cached_tokens,
                },
                text: o.text,
                node: o.node,
                model: o.model,
                finish_reason: o.finish_reason,
                attempts: o.attempts,
            },
            AskEnd::Failed { code, message } => ServerFrame::Failed {
                request_id,
                error: ErrorBody { code, message },
            },
            AskEnd::Cancelled => ServerFrame::Cancelled {
                request_id,
                text: shown.unwrap_or_default(),
            },
        }
    }
}

impl ServerFrame {
    pub fn progress(s: crate::flows::FlowStatus) -> Self {
        ServerFrame::WorkflowProgress {
            workflow_id: s.workflow_id,
            kind: s.kind,
            status: s.status,
            current_step: s.current_step,
            percent: s.percent,
            eta_ms: s.eta_ms,
            steps: s.steps,
            children: s.children,
            created_at: s.created_at,
            closed_at: s.closed_at,
        }
    }

    /// The last frame of a workflow.
    pub fn workflow_end(workflow_id: String, kind: FlowKind, end: crate::flows::FlowEnd) -> Self {
        use crate::flows::FlowEnd;
        let (status, result, error) = match end {
            FlowEnd::Completed(v) => ("completed", Some(v), None),
            FlowEnd::Failed { code, message } => {
                ("failed", None, Some(ErrorBody { code, message }))
            }
            FlowEnd::Cancelled | FlowEnd::Running => ("cancelled", None, None),
        };
        ServerFrame::WorkflowDone {
            workflow_id,
            kind,
            status,
            result,
            error,
        }
    }

    /// A notification event, as the notify activity published it.
    pub fn event(v: Value) -> Self {
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        ServerFrame::WorkflowEvent {
            workflow_id: s("workflow_id"),
            kind: s("kind"),
            status: s("status"),
            summary: v["summary"].clone(),
        }
    }
}

#[cfg(test)]
mod tests;
