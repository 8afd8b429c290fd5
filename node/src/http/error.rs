//! API errors: a stable machine code, an HTTP status and a message, rendered as
//! `{"error": {"code", "message"}}` (and as WebSocket error frames).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn unknown_model(model: &impl std::fmt::Display) -> Self {
        Self::new(
            "unknown_model",
            format!("model `{model}` is not served by this cluster"),
        )
    }

    pub fn status(&self) -> StatusCode {
        match self.code.as_str() {
            "unknown_request" | "not_found" => StatusCode::NOT_FOUND,
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "too_many_requests" => StatusCode::TOO_MANY_REQUESTS,
            "unavailable" | "no_capacity" => StatusCode::SERVICE_UNAVAILABLE,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status(), Json(body)).into_response()
    }
}
