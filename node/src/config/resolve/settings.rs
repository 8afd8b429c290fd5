//! Limits, API keys and tiers, and the scaling loop.

use super::Env;
use crate::config::raw::{RawAuth, RawAutoscaling, RawHttp, RawLimits};
use crate::config::{AuthConfig, AutoscalingConfig, HttpConfig, Limits, Secret};
use crate::users::{Tier, TierLimits};
use std::path::PathBuf;
use std::time::Duration;

/// Request limits of this node.
pub(super) fn limits(l: &RawLimits, errors: &mut Vec<String>) -> Limits {
    let limits = Limits {
        max_prompt_chars: l.max_prompt_chars.unwrap_or(16_000),
        max_tokens: l.max_tokens.unwrap_or(1024),
        heartbeat_timeout: Duration::from_secs(l.heartbeat_timeout_secs.unwrap_or(4)),
        shutdown_grace: Duration::from_secs(l.shutdown_grace_secs.unwrap_or(20)),
        max_messages: l.max_messages.unwrap_or(256),
        max_choices: l.max_choices.unwrap_or(8),
        temporal_outage: Duration::from_secs(l.temporal_outage_secs.unwrap_or(300)),
    };
    if !(1..=128).contains(&limits.max_choices) {
        errors.push("limits.max_choices out of range 1..=128".into());
    }
    if !(1..=100_000).contains(&limits.max_messages) {
        errors.push("limits.max_messages out of range 1..=100000".into());
    }
    if !(1..=4096).contains(&limits.max_tokens) {
        errors.push(format!(
            "limits.max_tokens {} out of range 1..=4096",
            limits.max_tokens
        ));
    }
    if !(2..=300).contains(&limits.heartbeat_timeout.as_secs()) {
        errors.push("limits.heartbeat_timeout_secs out of range 2..=300".into());
    }
    if limits.max_prompt_chars == 0 {
        errors.push("limits.max_prompt_chars must be positive".into());
    }
    limits
}

/// API keys and tier quotas.
pub(super) fn auth(raw: RawAuth, env: &Env, errors: &mut Vec<String>) -> AuthConfig {
    let mut tiers = TierLimits::default();
    for (name, t) in raw.tiers {
        let Ok(tier) = name.parse::<Tier>() else {
            errors.push(format!(
                "auth.tiers.{name}: unknown tier; use free, premium or enterprise"
            ));
            continue;
        };
        let limit = tiers.get_mut(tier);
        if let Some(n) = t.max_concurrent {
            limit.max_concurrent = n;
        }
        if let Some(n) = t.requests_per_minute {
            limit.requests_per_minute = n;
        }
        if limit.max_concurrent == 0 || limit.requests_per_minute == 0 {
            errors.push(format!(
                "auth.tiers.{name}: max_concurrent and requests_per_minute must be positive"
            ));
        }
    }
    let allow_anonymous = match env.get("ORRERY_ALLOW_ANONYMOUS") {
        Some(v) => matches!(v.as_str(), "1" | "true" | "yes"),
        None => raw.allow_anonymous.unwrap_or(false),
    };
    AuthConfig {
        keys_file: env
            .get("ORRERY_API_KEYS_FILE")
            .or(raw.keys_file)
            .map(PathBuf::from),
        env_keys: env.get("ORRERY_API_KEYS").map(Secret::new),
        allow_anonymous,
        tiers,
    }
}

/// What the HTTP server accepts.
pub(super) fn http(h: RawHttp, env: &Env, errors: &mut Vec<String>) -> HttpConfig {
    let allowed_origins: Vec<String> = match env.get("ORRERY_ALLOWED_ORIGINS") {
        Some(v) => v
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect(),
        None => h
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_string())
            .collect(),
    };
    for o in &allowed_origins {
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            errors.push(format!(
                "http.allowed_origins: `{o}` is not scheme://host[:port] or *"
            ));
        }
    }
    let timeout = h.header_read_timeout_secs.unwrap_or(30);
    if !(1..=600).contains(&timeout) {
        errors.push("http.header_read_timeout_secs out of range 1..=600".into());
    }
    let max_connections = h.max_connections.unwrap_or(4096);
    if max_connections == 0 {
        errors.push("http.max_connections must be positive".into());
    }
    let (per_user, per_ip) = (
        h.max_ws_per_user.unwrap_or(32),
        h.max_ws_per_ip.unwrap_or(64),
    );
    if per_user == 0 || per_ip == 0 {
        errors.push("http.max_ws_per_user and max_ws_per_ip must be positive".into());
    }
    let idle = h.ws_idle_secs.unwrap_or(90);
    if !(2..=3600).contains(&idle) {
        errors.push("http.ws_idle_secs out of range 2..=3600".into());
    }
    HttpConfig {
        max_ws_per_user: per_user,
        max_ws_per_ip: per_ip,
        ws_idle: Duration::from_secs(idle),
        allowed_origins,
        allowed_hosts: h.allowed_hosts.iter().map(|s| s.to_lowercase()).collect(),
        header_read_timeout: Duration::from_secs(timeout),
        max_connections,
    }
}

/// The scaling loop and the policy it starts with.
pub(super) fn autoscaling(
    a: RawAutoscaling,
    env: &Env,
    errors: &mut Vec<String>,
) -> AutoscalingConfig {
    let policy = a.policy.unwrap_or_default();
    if let Err(e) = policy.validate() {
        errors.push(format!("autoscaling.policy: {e}"));
    }
    AutoscalingConfig {
        enabled: env
            .get("ORRERY_AUTOSCALING")
            .map(|v| v != "false" && v != "0")
            .or(a.enabled)
            .unwrap_or(true),
        tick: Duration::from_secs(a.tick_secs.unwrap_or(5).clamp(1, 3600)),
        policy,
    }
}
