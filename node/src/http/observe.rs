//! Observability of the HTTP surface: one tracing span per request (method, route, and the
//! request/workflow ids once an ask is started), `orrery_http_requests_total{route,status}`, and
//! the catalogue of every documented metric so `/metrics` shows them from the start.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

/// Wraps every request in a span and counts it by route and status.
pub async fn observe(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "http",
        method = %req.method(),
        route = %route,
        user = tracing::field::Empty,
        request.id = tracing::field::Empty,
        workflow.id = tracing::field::Empty,
    );
    let started = Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("orrery_http_requests_total", "route" => route.clone(), "status" => status.clone())
        .increment(1);
    metrics::histogram!("orrery_http_request_seconds", "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    if resp.status().is_server_error() {
        span.in_scope(|| tracing::warn!(status = %status, "request failed"));
    }
    resp
}

/// Every metric the README documents: (name, kind, help). Unlabelled ones are registered at zero
/// at start-up; labelled ones appear with their first event.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    (
        "orrery_requests_total",
        "counter",
        "asks ended on this node, by outcome (done, failed, cancelled)",
    ),
    (
        "orrery_request_seconds",
        "histogram",
        "time from start to end of an ask, by outcome",
    ),
    (
        "orrery_asks_in_flight",
        "gauge",
        "asks started on this node that have not ended",
    ),
    (
        "orrery_queue_wait_seconds",
        "histogram",
        "time an answered ask waited before generation began (planning and queueing)",
    ),
    (
        "orrery_queue_depth",
        "gauge",
        "sequences waiting for a slot, by model",
    ),
    (
        "orrery_active_sequences",
        "gauge",
        "sequences being generated, by model",
    ),
    (
        "orrery_tokens_generated_total",
        "counter",
        "tokens generated, by model",
    ),
    (
        "orrery_prompt_tokens_total",
        "counter",
        "prompt tokens processed, by model",
    ),
    (
        "orrery_time_to_first_token_seconds",
        "histogram",
        "engine time from a sequence's start to its first token, by model",
    ),
    (
        "orrery_api_time_to_first_token_seconds",
        "histogram",
        "time from an API request's acceptance to its first streamed text, by api",
    ),
    (
        "orrery_generation_seconds",
        "histogram",
        "time to generate one answer, by model",
    ),
    (
        "orrery_generation_tokens_per_second",
        "gauge",
        "decode rate of the last finished sequence, by model",
    ),
    (
        "orrery_models_loaded",
        "gauge",
        "models loaded on this node",
    ),
    (
        "orrery_websocket_sessions",
        "gauge",
        "open WebSocket sessions",
    ),
    (
        "orrery_http_requests_total",
        "counter",
        "HTTP requests, by route and status",
    ),
    (
        "orrery_http_request_seconds",
        "histogram",
        "time to the response head, by route",
    ),
    (
        "orrery_api_asks_total",
        "counter",
        "asks started through the HTTP APIs, by api (openai, ollama, rest)",
    ),
    (
        "orrery_auth_failures_total",
        "counter",
        "requests refused for a missing or invalid API key, by reason",
    ),
    (
        "orrery_rate_limited_total",
        "counter",
        "asks refused by per-user limits, by reason (concurrency, rate)",
    ),
    (
        "orrery_user_leases_kept",
        "gauge",
        "asks in flight counted on this node's limit keeper (for the users it keeps, from every node)",
    ),
    (
        "orrery_workflows_started_total",
        "counter",
        "report, multi-agent and codegen workflows started on this node, by kind",
    ),
    (
        "orrery_node_cpu_percent",
        "gauge",
        "CPU use of this machine",
    ),
    (
        "orrery_node_memory_available_bytes",
        "gauge",
        "memory available on this machine",
    ),
];

/// Describes every catalogued metric and registers the unlabelled ones at zero.
pub fn describe_metrics() {
    for (name, kind, help) in CATALOGUE {
        let (name, help) = (*name, *help);
        match *kind {
            "counter" => metrics::describe_counter!(name, help),
            "gauge" => {
                metrics::describe_gauge!(name, help);
                if matches!(
                    name,
                    "orrery_asks_in_flight" | "orrery_models_loaded" | "orrery_websocket_sessions"
                ) {
                    metrics::gauge!(name).increment(0.0);
                }
            }
            _ => metrics::describe_histogram!(name, help),
        }
    }
}
