//! API errors: a stable machine code, an HTTP status and a message, rendered as
//! `{"error": {"code", "message"}}` (and as WebSocket error frames).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: String,
    pub message: String,
    /// Sent as `Retry-After` (with 429 and 503).
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
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
            "forbidden" | "forbidden_origin" | "forbidden_host" => StatusCode::FORBIDDEN,
            "already_finished" => StatusCode::CONFLICT,
            "too_many_requests" | "too_many_sessions" => StatusCode::TOO_MANY_REQUESTS,
            "unavailable" | "no_capacity" => StatusCode::SERVICE_UNAVAILABLE,
            "internal" => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl From<crate::asks::AskError> for ApiError {
    fn from(e: crate::asks::AskError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (status, Json(body)).into_response();
        add_auth_headers(&mut resp, status, self.retry_after_secs);
        resp
    }
}

/// `Retry-After` on refusals that may pass later, `WWW-Authenticate` on 401.
pub fn add_auth_headers(resp: &mut Response, status: StatusCode, retry_after: Option<u64>) {
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"orrery\""),
        );
    }
}
