//! Where requests may come from. A page the user visits must not drive their node: `/ws` and every
//! state-changing route refuse a cross-site `Origin` (cross-site WebSocket hijacking, CSRF), and a
//! node listening on loopback answers only to loopback host names (DNS rebinding), unless the
//! configuration allows more (`[http] allowed_origins`, `allowed_hosts`; `/codec/*` also takes
//! `[temporal] codec_origins`).

use super::AppState;
use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The host part of `host[:port]` (IPv6 literals keep their brackets), lower-cased.
fn host_name(authority: &str) -> String {
    let a = authority.trim().to_lowercase();
    if a.starts_with('[') {
        return a.split(']').next().map(|h| format!("{h}]")).unwrap_or(a);
    }
    a.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or(a)
}

fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request with this `Host` may reach a node bound to `bind`.
pub fn host_allowed(bind: std::net::SocketAddr, host: Option<&str>, allowed: &[String]) -> bool {
    if !bind.ip().is_loopback() {
        return true; // Reachable from the network: API keys protect it (see users::exposure).
    }
    let Some(host) = host else {
        return true; // HTTP/1.0 without Host: not a browser.
    };
    let name = host_name(host);
    is_loopback_name(&name) || allowed.iter().any(|a| a == &name)
}

/// Whether a page from `origin` may drive a node reached as `host`: the same origin (host and
/// port), or one the configuration allows.
pub fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    match (authority, host) {
        (Some(a), Some(h)) => a.eq_ignore_ascii_case(h.trim()),
        _ => false,
    }
}

/// Refuses a foreign `Host` on a loopback node, and a cross-site `Origin` on `/ws` and on every
/// state-changing route, with 403 and a JSON body.
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let config = &s.asks.config;
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string);
    if !host_allowed(
        config.http,
        host.as_deref(),
        &config.http_server.allowed_hosts,
    ) {
        let e = ApiError::new(
            "forbidden_host",
            "this node answers only to its own host names (see [http] allowed_hosts)",
        );
        return e.into_response();
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if (changes_state || req.uri().path() == "/ws")
        && let Some(origin) = req.headers().get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("");
        // The codec endpoint is called from the Temporal UI's pages too.
        let codec_page = req.uri().path().starts_with("/codec/")
            && origin_allowed(origin, None, &config.temporal.codec_origins);
        if !codec_page
            && !origin_allowed(origin, host.as_deref(), &config.http_server.allowed_origins)
        {
            let e = ApiError::new(
                "forbidden_origin",
                format!("requests from pages of {origin} are refused (see [http] allowed_origins)"),
            );
            return e.into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let allowed = vec!["orrery.lan".to_string()];
        for (bind, host, ok) in [
            (lo, Some("127.0.0.1:8080"), true),
            (lo, Some("localhost:8080"), true),
            (lo, Some("[::1]:8080"), true),
            (lo, Some("orrery.lan:8080"), true),
            (lo, Some("evil.example:8080"), false),
            (lo, Some("127.0.0.1.evil.example"), false),
            (lo, None, true),
            (any, Some("evil.example"), true),
        ] {
            assert_eq!(host_allowed(bind, host, &allowed), ok, "{host:?} on {bind}");
        }
        let origins = vec!["https://app.example".to_string()];
        for (origin, host, ok) in [
            ("http://127.0.0.1:8080", Some("127.0.0.1:8080"), true),
            ("http://localhost:8080", Some("127.0.0.1:8080"), false),
            ("https://app.example", Some("127.0.0.1:8080"), true),
            ("https://evil.example", Some("127.0.0.1:8080"), false),
            ("null", Some("127.0.0.1:8080"), false),
        ] {
            assert_eq!(origin_allowed(origin, host, &origins), ok, "{origin}");
        }
        assert!(origin_allowed("https://x", None, &["*".to_string()]));
    }
}
