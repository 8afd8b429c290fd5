//! Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status
//! codes OpenAI's clients map to their exceptions; and the caller extractor that uses them.

use super::AppState;
use super::error::{ApiError, add_auth_headers};
use crate::users::Caller;
use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) kind: &'static str,
    pub(super) param: Option<&'static str>,
    pub(super) code: Option<String>,
    pub(super) retry_after: Option<u64>,
}

impl OpenAiError {
    pub(super) fn invalid(
        message: impl Into<String>,
        param: Option<&'static str>,
        code: &str,
    ) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: Some(code.into()),
            retry_after: None,
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        let (status, kind, param, code): (StatusCode, &'static str, Option<&'static str>, &str) =
            match e.code.as_str() {
                "unauthorized" => (
                    StatusCode::UNAUTHORIZED,
                    "invalid_request_error",
                    None,
                    "invalid_api_key",
                ),
                "forbidden" => (StatusCode::FORBIDDEN, "permission_error", None, "forbidden"),
                "too_many_requests" => (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    None,
                    "rate_limit_exceeded",
                ),
                "unknown_model" => (
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    Some("model"),
                    "model_not_found",
                ),
                "empty_prompt" => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("messages"),
                    "empty_prompt",
                ),
                "prompt_too_long" => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    Some("messages"),
                    "context_length_exceeded",
                ),
                "cancelled" => (
                    StatusCode::CONFLICT,
                    "invalid_request_error",
                    None,
                    "cancelled",
                ),
                "unavailable" | "no_capacity" => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    None,
                    e.code.as_str(),
                ),
                "internal" => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    None,
                    "internal",
                ),
                "not_found" => (
                    StatusCode::NOT_FOUND,
                    "invalid_request_error",
                    None,
                    "not_found",
                ),
                other => (
                    StatusCode::BAD_REQUEST,
                    "invalid_request_error",
                    None,
                    other,
                ),
            };
        Self {
            status,
            message: e.message,
            kind,
            param,
            code: Some(code.to_string()),
            retry_after: e.retry_after_secs,
        }
    }
}

impl OpenAiError {
    pub(super) fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param,
                         "code": self.code}})
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body())).into_response();
        add_auth_headers(&mut resp, self.status, self.retry_after);
        resp
    }
}

/// The caller, with authentication failures in OpenAI's shape.
pub struct OpenAiCaller(pub Caller);

impl FromRequestParts<AppState> for OpenAiCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, OpenAiError> {
        Caller::from_request_parts(parts, state)
            .await
            .map(OpenAiCaller)
            .map_err(OpenAiError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_map_to_openai_statuses_and_types() {
        // (our code, wanted status, type, code)
        let table = [
            (
                "unauthorized",
                401,
                "invalid_request_error",
                "invalid_api_key",
            ),
            ("forbidden", 403, "permission_error", "forbidden"),
            (
                "too_many_requests",
                429,
                "rate_limit_error",
                "rate_limit_exceeded",
            ),
            (
                "unknown_model",
                404,
                "invalid_request_error",
                "model_not_found",
            ),
            (
                "prompt_too_long",
                400,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            (
                "invalid_params",
                400,
                "invalid_request_error",
                "invalid_params",
            ),
            ("unavailable", 503, "server_error", "unavailable"),
            ("internal", 500, "server_error", "internal"),
        ];
        for (code, status, kind, oai_code) in table {
            let e = OpenAiError::from(ApiError::new(code, "m"));
            assert_eq!(e.status.as_u16(), status, "{code}");
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.code.as_deref(), Some(oai_code), "{code}");
        }
    }
}
