//! The remote codec endpoint, so that operators still read encrypted histories: the Temporal UI
//! (its codec server setting) and `temporal workflow show --codec-endpoint` call
//! `POST /codec/decode` and `POST /codec/encode` with `{"payloads": [{"metadata": {k: base64},
//! "data": base64}]}` and get the same shape back. The admin token is required; browsers may call
//! it from the configured codec origins (by default the Temporal UI's), preflight included.

use super::AppState;
use super::admin;
use super::error::ApiError;
use crate::codec::EncryptionCodec;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use temporalio_common::protos::temporal::api::common::v1::Payload;

/// One payload as the remote codec protocol writes it (metadata values and data in base64).
#[derive(Debug, Default, Deserialize, Serialize)]
struct WirePayload {
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    data: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct WirePayloads {
    payloads: Vec<WirePayload>,
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/codec/decode", post(decode).options(preflight))
        .route("/codec/encode", post(encode).options(preflight))
        .layer(axum::middleware::from_fn_with_state(state, cors))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new("invalid_request", message)
}

fn parse(body: &[u8]) -> Result<Vec<Payload>, ApiError> {
    let wire: WirePayloads = serde_json::from_slice(body).map_err(|e| {
        bad(format!(
            "the body is not {{\"payloads\": [{{\"metadata\": {{...}}, \"data\": \"...\"}}]}}: {e}"
        ))
    })?;
    wire.payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let metadata = p
                .metadata
                .into_iter()
                .map(|(k, v)| {
                    let v = STANDARD
                        .decode(v)
                        .map_err(|_| bad(format!("payload {i}: metadata `{k}` is not base64")))?;
                    Ok((k, v))
                })
                .collect::<Result<_, ApiError>>()?;
            let data = STANDARD
                .decode(p.data)
                .map_err(|_| bad(format!("payload {i}: data is not base64")))?;
            Ok(Payload {
                metadata,
                data,
                ..Default::default()
            })
        })
        .collect()
}

fn render(payloads: Vec<Payload>) -> Json<WirePayloads> {
    let payloads = payloads
        .into_iter()
        .map(|p| WirePayload {
            metadata: p
                .metadata
                .into_iter()
                .map(|(k, v)| (k, STANDARD.encode(v)))
                .collect(),
            data: STANDARD.encode(p.data),
        })
        .collect();
    Json(WirePayloads { payloads })
}

fn codec(s: &AppState) -> EncryptionCodec {
    EncryptionCodec::new(s.asks.config.temporal.payload_keys.clone())
}

async fn decode(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WirePayloads>, ApiError> {
    admin::authorize(&s, &headers)?;
    let payloads = codec(&s)
        .decode_all(parse(&body)?)
        .map_err(|e| ApiError::new("invalid_payload", e.to_string()))?;
    Ok(render(payloads))
}

async fn encode(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<WirePayloads>, ApiError> {
    admin::authorize(&s, &headers)?;
    let payloads = codec(&s)
        .encode_all(parse(&body)?)
        .map_err(|e| ApiError::new("internal", e.to_string()))?;
    Ok(render(payloads))
}

/// Answered by `cors` before it gets here; a preflight reaches this only from an origin that may
/// not call the codec.
async fn preflight() -> ApiError {
    ApiError::new(
        "forbidden_origin",
        "this origin may not call the codec (see [temporal] codec_origins)",
    )
}

/// CORS for the codec origins: preflights answered here, and every answer (errors too, so the
/// UI can show them) carries `Access-Control-Allow-Origin` for an allowed origin.
async fn cors(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .filter(|o| super::guard::origin_allowed(o, None, &s.asks.config.temporal.codec_origins))
        .and_then(|o| HeaderValue::from_str(o).ok());
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = match (&allowed, preflight) {
        (Some(_), true) => StatusCode::NO_CONTENT.into_response(),
        _ => next.run(req).await,
    };
    if let Some(origin) = allowed {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        if preflight {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-namespace"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
    }
    resp
}
