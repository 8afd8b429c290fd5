//! The HTTP surface of a node: the web UI, `/ws`, the OpenAI- and Ollama-compatible APIs, the
//! REST workflow API, health, readiness and metrics.

mod admin;
pub mod auth;
pub mod error;
pub mod follow;
pub mod observe;
pub mod ollama;
pub mod openai;
pub mod openai_error;
pub mod rest;
mod web;
pub mod ws;

use crate::actors::supervisor::{NodeStatus, SupervisorMsg};
use crate::asks::AskService;
use crate::ids::actor_names;
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
    pub metrics: Option<PrometheusHandle>,
    /// False until the node can answer, and again once it starts shutting down.
    pub ready: Arc<AtomicBool>,
    /// Cancelled at shutdown: sessions close.
    pub shutdown: CancellationToken,
    /// Tasks that follow asks to their end; shutdown waits for them.
    pub tasks: TaskTracker,
    /// The cluster view, refreshed every second.
    pub cluster: tokio::sync::watch::Receiver<Vec<crate::cluster::NodeRow>>,
    /// API keys and per-user limits.
    pub auth: Arc<auth::Auth>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web::index))
        .route("/app.js", get(web::app_js))
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
        .merge(ollama::routes())
        .merge(rest::routes())
        .fallback(not_found)
        .layer(axum::middleware::from_fn(observe::observe))
        .with_state(state)
}

async fn not_found() -> error::ApiError {
    error::ApiError::new("not_found", "no such route")
}

async fn cluster() -> Json<serde_json::Value> {
    Json(json!({ "nodes": crate::cluster::view().await }))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// The node's status from its supervisor, if it answers.
pub async fn node_status() -> Option<NodeStatus> {
    let sup = crate::actors::lookup::<SupervisorMsg>(actor_names::SUPERVISOR)?;
    ractor::call_t!(sup, SupervisorMsg::Status, 2000).ok()
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let status = node_status().await.unwrap_or_default();
    let ready = s.ready.load(Ordering::SeqCst);
    let body = json!({
        "ready": ready,
        "node": s.asks.config.node_id,
        "models_loaded": status.models_loaded,
        "models_loading": status.models_loading,
        "models_failed": status.models_failed,
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
