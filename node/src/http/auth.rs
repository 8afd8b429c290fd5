//! Authentication and admission over HTTP: the API key from `Authorization: Bearer …` (or
//! `?api_key=` where a client cannot set headers, as browsers opening a WebSocket), the caller it
//! names, and the per-user limits that answer 429 with `Retry-After`.

use super::AppState;
use super::error::ApiError;
use crate::actors::NodeHandle;
use crate::actors::limits::{self, Lease};
use crate::config::Config;
use crate::protocol::NodeId;
use crate::users::{
    Caller, Exposure, KeyStore, KeysError, Limiter, Refusal, Tier, UserId, exposure,
};
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Uri, header};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the API keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] KeysError),
    #[error("{0}")]
    Exposed(String),
}

/// Who may call this node, and how often.
#[derive(Debug)]
pub struct Auth {
    keys: KeyStore,
    exposure: Exposure,
    tiers: crate::users::TierLimits,
    limiter: Arc<Limiter>,
}

impl Auth {
    /// Reads the configured keys and decides whether the node may start as configured.
    pub fn load(config: &Config) -> Result<Auth, AuthError> {
        let a = &config.auth;
        let file_text = match &a.keys_file {
            None => None,
            Some(p) => Some(
                std::fs::read_to_string(p).map_err(|source| AuthError::Read {
                    path: p.display().to_string(),
                    source,
                })?,
            ),
        };
        let keys = KeyStore::parse(
            file_text.as_deref(),
            a.env_keys.as_ref().map(|s| s.expose()),
        )?;
        let exposure =
            exposure(config.http, keys.len(), a.allow_anonymous).map_err(AuthError::Exposed)?;
        Ok(Auth {
            keys,
            exposure,
            tiers: a.tiers,
            limiter: Limiter::new(),
        })
    }

    /// An open node on loopback (tests and `orrery up` without keys).
    pub fn open() -> Auth {
        Auth {
            keys: KeyStore::default(),
            exposure: Exposure::OpenLoopback,
            tiers: Default::default(),
            limiter: Limiter::new(),
        }
    }

    /// One line for the start-up banner. Never shows a key.
    pub fn describe(&self) -> String {
        match self.exposure {
            Exposure::Keys { allow_anonymous } => format!(
                "{} API key(s){}",
                self.keys.len(),
                if allow_anonymous {
                    "; callers without a key are served as `anonymous`"
                } else {
                    "; every call needs one"
                }
            ),
            Exposure::OpenLoopback => {
                "none configured: open to anyone on this machine (loopback only)".into()
            }
            Exposure::OpenEverywhere => {
                "none configured, allow_anonymous = true: open to anyone who can reach it".into()
            }
        }
    }

    fn anonymous(&self) -> Caller {
        // Anonymous callers get the middle tier: normal priority, premium limits.
        let tier = Tier::Premium;
        Caller {
            user: UserId::anonymous(),
            tier,
            limit: self.tiers.get(tier),
            anonymous: true,
        }
    }

    /// The caller a request's key names; 401 for a wrong key, or for none where one is needed.
    pub fn authenticate(&self, headers: &HeaderMap, uri: &Uri) -> Result<Caller, ApiError> {
        let Some(key) = presented_key(headers, uri) else {
            return match self.exposure {
                Exposure::Keys {
                    allow_anonymous: false,
                } => {
                    metrics::counter!("orrery_auth_failures_total", "reason" => "missing")
                        .increment(1);
                    Err(ApiError::new(
                        "unauthorized",
                        "an API key is needed: send `Authorization: Bearer <key>`",
                    ))
                }
                _ => Ok(self.anonymous()),
            };
        };
        match self.keys.lookup(&key) {
            Some(entry) => Ok(Caller {
                user: entry.user.clone(),
                tier: entry.tier,
                limit: entry.limit(self.tiers.get(entry.tier)),
                anonymous: false,
            }),
            None if self.keys.is_empty() => Ok(self.anonymous()),
            None => {
                metrics::counter!("orrery_auth_failures_total", "reason" => "invalid").increment(1);
                Err(ApiError::new("unauthorized", "the API key is not valid"))
            }
        }
    }

    /// Admits one ask of `caller` under their limits, counted on the user's keeper node so that
    /// they hold across the cluster (see `actors::limits`), or answers 429 with `Retry-After`.
    pub async fn admit(
        &self,
        node: &NodeHandle,
        me: &NodeId,
        caller: &Caller,
    ) -> Result<Lease, ApiError> {
        match limits::acquire(node.leases(), me, &caller.user, caller.limit).await {
            Some(got) => got.map_err(|r| refused(caller, r)),
            // No keeper runs (the node is starting or stopping): count on this node alone.
            None => self.admit_here(caller),
        }
    }

    /// Admits one ask of `caller` under their limits on this node alone.
    pub fn admit_here(&self, caller: &Caller) -> Result<Lease, ApiError> {
        self.limiter
            .try_acquire(&caller.user, caller.limit, Instant::now())
            .map(Lease::local)
            .map_err(|r| refused(caller, r))
    }
}

fn refused(caller: &Caller, r: Refusal) -> ApiError {
    metrics::counter!("orrery_rate_limited_total", "reason" => r.reason()).increment(1);
    tracing::info!(user = %caller.user, reason = r.reason(), "ask refused by the user's limits");
    ApiError::new("too_many_requests", r.message()).with_retry_after(r.retry_after_secs())
}

/// The key a request carries: `Authorization: Bearer KEY`, else `?api_key=KEY`.
fn presented_key(headers: &HeaderMap, uri: &Uri) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let key = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .unwrap_or(v)
            .trim();
        if !key.is_empty() {
            return Some(key.to_string());
        }
    }
    let q: Query<HashMap<String, String>> = Query::try_from_uri(uri).ok()?;
    q.0.get("api_key").filter(|k| !k.is_empty()).cloned()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = state.auth.authenticate(&parts.headers, &parts.uri)?;
        tracing::Span::current().record("user", caller.user.as_str());
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth_with(env_keys: &str, allow_anonymous: bool) -> Auth {
        let keys = KeyStore::parse(None, Some(env_keys)).unwrap();
        Auth {
            exposure: exposure("0.0.0.0:1".parse().unwrap(), keys.len(), allow_anonymous).unwrap(),
            keys,
            tiers: Default::default(),
            limiter: Limiter::new(),
        }
    }

    #[test]
    fn keys_come_from_the_header_or_the_query() {
        let a = auth_with("sk-alice-0123456789:alice:premium", false);
        // (authorization header, uri, wanted user or error code)
        let table: &[(Option<&str>, &str, Result<&str, &str>)] = &[
            (
                Some("Bearer sk-alice-0123456789"),
                "/v1/models",
                Ok("alice"),
            ),
            (Some("sk-alice-0123456789"), "/v1/models", Ok("alice")),
            (None, "/ws?api_key=sk-alice-0123456789", Ok("alice")),
            (None, "/ws?x=1&api_key=sk-alice-0123456789", Ok("alice")),
            (
                Some("Bearer wrong-key-0123456789"),
                "/v1/models",
                Err("unauthorized"),
            ),
            (None, "/v1/models", Err("unauthorized")),
            (None, "/ws?api_key=", Err("unauthorized")),
        ];
        for (authz, uri, want) in table {
            let mut h = HeaderMap::new();
            if let Some(v) = authz {
                h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            }
            let got = a.authenticate(&h, &uri.parse().unwrap());
            match (got, want) {
                (Ok(c), Ok(user)) => assert_eq!(c.user.as_str(), *user, "{uri}"),
                (Err(e), Err(code)) => assert_eq!(e.code, *code, "{uri}"),
                (got, want) => panic!("{authz:?} {uri}: got {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn anonymous_callers_pass_only_where_allowed() {
        let open = Auth::open();
        let c = open
            .authenticate(&HeaderMap::new(), &"/".parse().unwrap())
            .unwrap();
        assert!(c.anonymous);
        assert_eq!(c.user.as_str(), "anonymous");
        // An open node ignores whatever key a client sends (clients that always send one work).
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(open.authenticate(&h, &"/".parse().unwrap()).is_ok());

        let mixed = auth_with("sk-alice-0123456789:alice", true);
        assert!(
            mixed
                .authenticate(&HeaderMap::new(), &"/".parse().unwrap())
                .unwrap()
                .anonymous
        );
        // A wrong key is still refused: it is a mistake worth hearing about.
        assert_eq!(
            mixed
                .authenticate(&h, &"/".parse().unwrap())
                .unwrap_err()
                .code,
            "unauthorized"
        );
    }

    #[test]
    fn admission_answers_429_with_retry_after() {
        let a = auth_with("sk-alice-0123456789:alice:free", false);
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer sk-alice-0123456789"),
        );
        let alice = a.authenticate(&h, &"/".parse().unwrap()).unwrap();
        let _p1 = a.admit_here(&alice).unwrap();
        let _p2 = a.admit_here(&alice).unwrap();
        let e = a.admit_here(&alice).unwrap_err();
        assert_eq!(e.code, "too_many_requests");
        assert_eq!(e.retry_after_secs, Some(1));
    }
}
