//! The HTTP surface of a node: the web UI, `/ws`, the OpenAI- and Ollama-compatible APIs, the
//! REST workflow API, the codec endpoint of encrypted payloads, health, readiness and metrics.

mod admin;
pub mod auth;
mod codec;
mod completions;
mod embeddings;
pub mod error;
pub mod follow;
mod formats;
mod guard;
#[cfg(test)]
pub(crate) use guard::{
    host_allowed as guard_host_allowed, origin_allowed as guard_origin_allowed,
};
pub mod observe;
pub mod ollama;
pub mod openai;
pub mod openai_error;
pub mod rest;
pub mod server;
mod tool_params;
mod web;
pub mod workflows;
pub mod ws;

use crate::asks::AskService;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState {
    pub asks: AskService,
    /// Report, multi-agent and codegen workflows.
    pub flows: crate::flows::FlowService,
    /// Events for the users' sessions on this node (workflow notifications).
    pub user_events: crate::notify::UserEvents,
    /// This node's actors.
    pub node: crate::actors::NodeHandle,
    pub metrics: Option<PrometheusHandle>,
    /// False until the node can answer, and again once it starts shutting down.
    pub ready: Arc<AtomicBool>,
    /// Cancelled at shutdown: sessions close.
    pub shutdown: CancellationToken,
    /// Tasks that follow asks to their end; shutdown waits for them.
    pub tasks: TaskTracker,
    /// The cluster view, refreshed every second.
    pub cluster: tokio::sync::watch::Receiver<Vec<crate::protocol::NodeRow>>,
    /// API keys and per-user limits.
    pub auth: Arc<auth::Auth>,
    /// Open WebSocket sessions, per user and per address.
    pub ws_sessions: ws::Sessions,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
        .route("/workflows.js", get(web::workflows_js))
        .route("/wf-view.js", get(web::wf_view_js))
        .route("/style.css", get(web::style_css))
        .route("/ws", get(ws::upgrade))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/cluster", get(cluster))
        .route("/admin", get(web::admin_page))
        .route("/admin.js", get(web::admin_js))
        .route("/admin/cluster", get(admin::cluster))
        .route("/admin/decisions", get(admin::decisions))
        .route("/admin/policy", put(admin::put_policy))
        .route("/admin/models/{model}/replicas", post(admin::replicas))
        .route("/admin/nodes/{node}/drain", post(admin::drain))
        .route("/admin/nodes/{node}/undrain", post(admin::undrain))
        .route("/admin/autoscaling/pause", post(admin::pause))
        .route("/admin/autoscaling/resume", post(admin::resume))
        .merge(openai::routes())
        .route("/v1/completions", post(completions::completions))
        .route("/v1/embeddings", post(embeddings::openai))
        .merge(ollama::routes())
        .route("/api/embed", post(embeddings::ollama_embed))
        .route("/api/embeddings", post(embeddings::ollama_embeddings))
        .merge(rest::routes())
        .merge(codec::routes(state.clone()))
        .merge(workflows::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::new("not_found", "no such route")
}

/// The cluster view for anyone who may use the node (a key where keys are configured); the mesh
/// addresses are left out (`/admin/cluster` has them).
async fn cluster(
    State(s): State<AppState>,
    _caller: crate::users::Caller,
) -> Json<serde_json::Value> {
    let rows = s.cluster.borrow().clone();
    let nodes: Vec<_> = rows
        .into_iter()
        .map(crate::protocol::NodeRow::public)
        .collect();
    Json(json!({ "nodes": nodes }))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let status = s.node.models_status().await.unwrap_or_default();
    // Not ready while the Temporal workers are down (being restarted): asks would wait.
    let ready = s.ready.load(Ordering::SeqCst) && s.node.workers_up();
    let body = json!({
        "ready": ready,
        "node": s.asks.config.node_id,
        "models_loaded": status.loaded,
        "models_loading": status.loading,
        "models_failed": status.failed,
        "workers_up": s.node.workers_up(),
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    match &s.metrics {
        Some(h) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            h.render(),
        )
            .into_response(),
        None => error::ApiError::new("unavailable", "metrics are not enabled").into_response(),
    }
}
