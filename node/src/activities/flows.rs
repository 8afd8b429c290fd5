//! The non-LLM steps of the report, multi-agent and codegen workflows (their LLM steps are child
//! AskWorkflows): render a report's PDF, record its metadata, notify the user, allocate and
//! release a codegen's model, save generated code. Registered on both task queues: notify runs
//! on the user's node (its sessions are there), the rest anywhere.

use super::non_retryable;
use crate::actors::mesh;
use crate::config::Config;
use crate::notify::UserEvents;
use crate::protocol::{INVALID_REQUEST, ModelId, NodeId, Priority};
use crate::reports::{self, ReportDoc};
use crate::store::{ReportRow, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// The type of the failure when a report's font is missing or unusable (no retry fixes it).
pub const BAD_FONT: &str = "BadFont";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenderInput {
    pub report_id: String,
    pub title: String,
    pub prompt: String,
    pub content: String,
    pub model: ModelId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RenderOutput {
    pub path: String,
    pub bytes: u64,
    pub pages: u32,
    pub render_ms: u64,
    pub node: NodeId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NotifyInput {
    pub user: String,
    pub workflow_id: String,
    pub kind: String,
    /// completed | failed
    pub status: String,
    /// What the event says beyond that (the report's path, the review's state, ...).
    pub summary: Value,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NotifyOutput {
    /// Sessions of the user on the notifying node that got the event.
    pub sessions: u32,
    /// The webhook's answer (`200`, or why it failed); None without a webhook.
    pub webhook: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocateInput {
    pub workflow_id: String,
    pub user: String,
    pub model: ModelId,
    pub priority: Priority,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Allocated {
    pub model: ModelId,
    /// The node expected to serve it (None: the ask's plan loads it where it can).
    pub node: Option<NodeId>,
    pub fallback: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SaveCodeInput {
    pub workflow_id: String,
    pub language: String,
    pub code: String,
    pub review: String,
}

pub struct FlowActivities {
    node: NodeId,
    config: Arc<Config>,
    store: Store,
    events: UserEvents,
    http: reqwest::Client,
}

fn now() -> String {
    prost_types::Timestamp::from(SystemTime::now()).to_string()
}

/// Writes `bytes` to `path` whole or not at all (a retried step never leaves half a file).
async fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let tmp = path.with_extension("partial");
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, path).await
}

/// The file extension of code in `language`.
pub fn code_extension(language: &str) -> &'static str {
    match language {
        "rust" => "rs",
        "python" => "py",
        "javascript" => "js",
        "typescript" => "ts",
        "go" => "go",
        "java" => "java",
        "c" => "c",
        "cpp" => "cpp",
        "sql" => "sql",
        "bash" => "sh",
        _ => "txt",
    }
}

impl FlowActivities {
    pub fn new(config: Arc<Config>, store: Store, events: UserEvents) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            node: config.node_id.clone(),
            config,
            store,
            events,
            http,
        }
    }

    pub fn report_path(reports_dir: &Path, report_id: &str) -> PathBuf {
        reports_dir.join(format!("{report_id}.pdf"))
    }
}

#[activities]
impl FlowActivities {
    /// Renders the report's PDF into the reports directory.
    #[activity]
    pub async fn render_report(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RenderInput,
    ) -> Result<RenderOutput, ActivityError> {
        let started = Instant::now();
        let font_path = self.config.storage.font.clone();
        let font = tokio::fs::read(&font_path).await.map_err(|e| {
            non_retryable(
                BAD_FONT,
                format!("report font {}: {e}", font_path.display()),
            )
        })?;
        let doc = ReportDoc {
            sections: reports::sections(&input.content, "Report"),
            byline: format!("Orrery research report · {} · {}", input.model, now()),
            title: input.title,
            prompt: input.prompt,
        };
        let rendered = tokio::task::spawn_blocking(move || reports::render(&doc, &font))
            .await
            .map_err(|e| ActivityError::from(anyhow::anyhow!("render thread: {e}")))?
            .map_err(|e| non_retryable(BAD_FONT, e.to_string()))?;
        let path = Self::report_path(&self.config.storage.reports_dir, &input.report_id);
        write_atomically(&path, &rendered.bytes)
            .await
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        tracing::info!(workflow.id = %input.report_id, path = %path.display(),
                       pages = rendered.pages, "report rendered");
        Ok(RenderOutput {
            path: path.display().to_string(),
            bytes: rendered.bytes.len() as u64,
            pages: rendered.pages as u32,
            render_ms: started.elapsed().as_millis() as u64,
            node: self.node.clone(),
        })
    }

    /// Records the report's metadata row.
    #[activity]
    pub async fn store_report(
        self: Arc<Self>,
        _ctx: ActivityContext,
        mut row: ReportRow,
    ) -> Result<String, ActivityError> {
        row.created_at = now();
        self.store
            .put_report(&row)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(self.store.kind().to_string())
    }

    /// Tells the user: an event to their sessions on this node, and the webhook, if configured.
    /// Lenient: a webhook that fails is reported in the output, never as a failure.
    #[activity]
    pub async fn notify(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: NotifyInput,
    ) -> Result<NotifyOutput, ActivityError> {
        let event = json!({
            "workflow_id": input.workflow_id, "kind": input.kind, "status": input.status,
            "user": input.user, "summary": input.summary,
        });
        let sessions = self.events.publish(&input.user, &event) as u32;
        let webhook = match &self.config.workflows.webhook_url {
            None => None,
            Some(url) => Some(match self.http.post(url).json(&event).send().await {
                Ok(r) => r.status().as_u16().to_string(),
                Err(e) => format!("failed: {e}"),
            }),
        };
        tracing::info!(workflow.id = %input.workflow_id, user = %input.user, sessions,
                       webhook = ?webhook, "workflow notified");
        Ok(NotifyOutput { sessions, webhook })
    }

    /// Chooses the model a codegen runs on (local, or its fallback by load and tier) and
    /// records the allocation.
    #[activity]
    pub async fn allocate(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: AllocateInput,
    ) -> Result<Allocated, ActivityError> {
        let Some(model) = self.config.model(&input.model) else {
            return Err(non_retryable(
                crate::protocol::UNKNOWN_MODEL,
                format!("model `{}` is not served by this cluster", input.model),
            ));
        };
        let snapshots = mesh::snapshots(Duration::from_millis(1500)).await;
        let a = crate::placement::allocate(
            &snapshots,
            &input.model,
            model.fallback.as_ref(),
            input.priority == Priority::High,
        );
        let node = a.node.clone().unwrap_or_else(|| self.node.clone());
        self.store
            .allocate(
                &input.workflow_id,
                &input.user,
                a.model.as_str(),
                node.as_str(),
                &now(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(workflow.id = %input.workflow_id, model.id = %a.model,
                       fallback = a.fallback, "codegen allocated");
        Ok(Allocated {
            model: a.model,
            node: a.node,
            fallback: a.fallback,
        })
    }

    /// Releases what `allocate` recorded for the workflow; false when nothing was held.
    #[activity]
    pub async fn release(
        self: Arc<Self>,
        _ctx: ActivityContext,
        workflow_id: String,
    ) -> Result<bool, ActivityError> {
        let released = self
            .store
            .release(&workflow_id, &now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(workflow.id = %workflow_id, released, "codegen allocation released");
        Ok(released)
    }

    /// Saves generated code and its review next to the reports; the code file's path.
    #[activity]
    pub async fn save_code(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: SaveCodeInput,
    ) -> Result<String, ActivityError> {
        if input.workflow_id.contains('/') || input.workflow_id.contains("..") {
            return Err(non_retryable(INVALID_REQUEST, "bad workflow id"));
        }
        let dir = self.config.storage.reports_dir.join("codegen");
        let code = dir.join(format!(
            "{}.{}",
            input.workflow_id,
            code_extension(&input.language)
        ));
        let review = dir.join(format!("{}.review.md", input.workflow_id));
        for (path, text) in [(&code, &input.code), (&review, &input.review)] {
            write_atomically(path, text.as_bytes())
                .await
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Ok(code.display().to_string())
    }
}
