//! The admin API, behind a bearer token (`ORRERY_ADMIN_TOKEN`): the cluster view, the scaling
//! loop's decisions, and the overrides it takes as signals (policy, replicas, drain, pause).

use super::AppState;
use super::error::ApiError;
use crate::actors::resource_manager::ResourceManagerMsg;
use crate::policy::{Decision, Policy};
use crate::protocol::NodeId;
use crate::workflows::{RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use temporalio_client::WorkflowHandle;

/// Checks the bearer token in constant time.
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(want) = &state.asks.config.admin_token else {
        return Err(ApiError::new(
            "unauthorized",
            "the admin API is off: set ORRERY_ADMIN_TOKEN on the node",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (given.as_bytes(), want.expose().as_bytes());
    let same = a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0;
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            "unauthorized",
            "missing or wrong admin bearer token",
        ))
    }
}

fn scaling(
    state: &AppState,
) -> WorkflowHandle<temporalio_client::Client, ResourceManagementWorkflow> {
    state
        .asks
        .client
        .get_workflow_handle::<ResourceManagementWorkflow>(RESOURCE_WORKFLOW_ID)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        "unavailable",
        format!("the scaling loop did not answer: {e}"),
    )
}

pub async fn cluster(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let status = scaling(&state)
        .query(ResourceManagementWorkflow::status, (), Default::default())
        .await
        .ok();
    Ok(Json(json!({
        "nodes": crate::actors::mesh::view(state.node.membership()).await,
        "scaling": status,
    })))
}

pub async fn decisions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let log: Vec<Decision> = scaling(&state)
        .query(
            ResourceManagementWorkflow::decisions,
            (),
            Default::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "decisions": log })))
}

pub async fn put_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let policy: Policy = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new("invalid_params", format!("policy: {e}")))?;
    policy
        .validate()
        .map_err(|e| ApiError::new("invalid_params", e.to_string()))?;
    scaling(&state)
        .signal(
            ResourceManagementWorkflow::set_policy,
            policy.clone(),
            Default::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "policy": policy })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasBody {
    /// A fixed replica count, or null to go back to the configured bounds.
    replicas: Option<u32>,
}

pub async fn replicas(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(model): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    if state
        .asks
        .config
        .model(&crate::protocol::ModelId::new(&model))
        .is_none()
    {
        return Err(ApiError::unknown_model(&model));
    }
    let b: ReplicasBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            "invalid_params",
            format!("expected {{\"replicas\": N or null}}: {e}"),
        )
    })?;
    if b.replicas.is_some_and(|n| n > 64) {
        return Err(ApiError::new("invalid_params", "replicas must be 0..=64"));
    }
    scaling(&state)
        .signal(
            ResourceManagementWorkflow::set_replicas,
            (model.clone(), b.replicas),
            Default::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "model": model, "replicas": b.replicas })))
}

async fn set_paused(
    state: &AppState,
    headers: &HeaderMap,
    paused: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(state, headers)?;
    scaling(state)
        .signal(
            ResourceManagementWorkflow::set_paused,
            paused,
            Default::default(),
        )
        .await
        .map_err(unavailable)?;
    Ok(Json(json!({ "paused": paused })))
}

pub async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &headers, true).await
}

pub async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    set_paused(&state, &headers, false).await
}

async fn set_draining(
    state: &AppState,
    headers: &HeaderMap,
    node: String,
    draining: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(state, headers)?;
    let node = NodeId::new(node);
    let rm = crate::actors::mesh::resource_manager_of(&node)
        .ok_or_else(|| ApiError::new("not_found", format!("no node `{node}` in the cluster")))?;
    rm.cast(ResourceManagerMsg::SetDraining(draining))
        .map_err(|e| ApiError::new("unavailable", format!("node `{node}`: {e}")))?;
    // The scaling loop hears of it too, so it neither loads there nor counts it as capacity.
    if state.asks.config.autoscaling.enabled
        && let Err(e) = scaling(state)
            .signal(
                ResourceManagementWorkflow::set_drained,
                (node.to_string(), draining),
                Default::default(),
            )
            .await
    {
        tracing::warn!(error = %e, "the scaling loop did not take the drain");
    }
    tracing::info!(node.id = %node, draining, "admin changed the drain state");
    Ok(Json(json!({"node": node, "draining": draining})))
}

pub async fn drain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&state, &headers, node, true).await
}

pub async fn undrain(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(node): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_draining(&state, &headers, node, false).await
}
