//! The admin API, behind a bearer token (`ORRERY_ADMIN_TOKEN`): drain and undrain nodes.

use super::AppState;
use super::error::ApiError;
use crate::actors::resource_manager::ResourceManagerMsg;
use crate::ids::NodeId;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};

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

async fn set_draining(
    state: &AppState,
    headers: &HeaderMap,
    node: String,
    draining: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(state, headers)?;
    let node = NodeId::new(node);
    let rm = crate::cluster::resource_manager_of(&node)
        .ok_or_else(|| ApiError::new("not_found", format!("no node `{node}` in the cluster")))?;
    rm.cast(ResourceManagerMsg::SetDraining(draining))
        .map_err(|e| ApiError::new("unavailable", format!("node `{node}`: {e}")))?;
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
