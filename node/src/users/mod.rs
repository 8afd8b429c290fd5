//! Users and quotas: API keys (held only as sha256 hashes) name a user and a tier; the tier sets
//! the ask's queue priority and the user's limits on concurrent asks and asks per minute. Pure:
//! the HTTP side (headers, 401/429 responses) is in `http::auth`.

pub mod keys;
pub mod limits;
pub mod owner;

use crate::protocol::Priority;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

pub use keys::{KeyEntry, KeyStore, KeysError, hash_key};
pub use limits::{Limiter, Permit, Refusal};

/// A user as API keys name them; also the owner recorded on each ask's workflow.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// The one user of a node that has no API keys.
    pub const ANONYMOUS: &'static str = "anonymous";

    /// A user name: 1-64 letters, digits, '-', '_', '.' or '@' (it goes into visibility queries).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        ok.then(|| Self(s.to_string()))
    }

    pub fn anonymous() -> Self {
        Self(Self::ANONYMOUS.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a user pays for: it sets the queue priority of their asks and their default limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Premium,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Free, Tier::Premium, Tier::Enterprise];

    /// The queue priority of this tier's asks.
    pub fn priority(self) -> Priority {
        match self {
            Tier::Free => Priority::Low,
            Tier::Premium => Priority::Normal,
            Tier::Enterprise => Priority::High,
        }
    }

    /// The priority an ask gets: what the caller asked for, never above their tier's.
    pub fn cap(self, requested: Option<Priority>) -> Priority {
        let rank = |p: &Priority| match p {
            Priority::Low => 0,
            Priority::Normal => 1,
            Priority::High => 2,
        };
        let max = self.priority();
        match requested {
            Some(p) if rank(&p) < rank(&max) => p,
            _ => max,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Premium => "premium",
            Tier::Enterprise => "enterprise",
        }
    }
}

impl FromStr for Tier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "free" => Ok(Tier::Free),
            "premium" => Ok(Tier::Premium),
            "enterprise" => Ok(Tier::Enterprise),
            other => Err(format!(
                "unknown tier `{other}`; use free, premium or enterprise"
            )),
        }
    }
}

/// One user's limits, across the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLimit {
    /// Asks in flight at once.
    pub max_concurrent: u32,
    /// Asks started per minute (a token bucket: a full minute's worth may come at once).
    pub requests_per_minute: u32,
}

/// The limits of each tier (`[auth.tiers.<tier>]` in cluster.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TierLimits {
    pub free: TierLimit,
    pub premium: TierLimit,
    pub enterprise: TierLimit,
}

impl Default for TierLimits {
    fn default() -> Self {
        Self {
            free: TierLimit {
                max_concurrent: 2,
                requests_per_minute: 20,
            },
            premium: TierLimit {
                max_concurrent: 8,
                requests_per_minute: 120,
            },
            enterprise: TierLimit {
                max_concurrent: 32,
                requests_per_minute: 600,
            },
        }
    }
}

impl TierLimits {
    pub fn get(&self, tier: Tier) -> TierLimit {
        match tier {
            Tier::Free => self.free,
            Tier::Premium => self.premium,
            Tier::Enterprise => self.enterprise,
        }
    }

    pub fn get_mut(&mut self, tier: Tier) -> &mut TierLimit {
        match tier {
            Tier::Free => &mut self.free,
            Tier::Premium => &mut self.premium,
            Tier::Enterprise => &mut self.enterprise,
        }
    }
}

/// Who is calling: the user an API key names (or the anonymous user of an open node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub user: UserId,
    pub tier: Tier,
    pub limit: TierLimit,
    pub anonymous: bool,
}

/// Whether a node may serve callers without keys, from where it listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Keys are configured: every caller shows one (unless anonymous callers are allowed too).
    Keys { allow_anonymous: bool },
    /// No keys, bound to loopback: open to this machine only.
    OpenLoopback,
    /// No keys, bound beyond loopback, and `allow_anonymous = true` says that is meant.
    OpenEverywhere,
}

/// Decides how a node is exposed, or why it must not start.
pub fn exposure(
    bind: std::net::SocketAddr,
    keys: usize,
    allow_anonymous: bool,
) -> Result<Exposure, String> {
    if keys > 0 {
        return Ok(Exposure::Keys { allow_anonymous });
    }
    if bind.ip().is_loopback() {
        return Ok(Exposure::OpenLoopback);
    }
    if allow_anonymous {
        return Ok(Exposure::OpenEverywhere);
    }
    Err(format!(
        "refusing to serve {bind} without API keys: anyone who can reach it could use the cluster. \
         Configure keys ([auth] keys_file in cluster.toml, ORRERY_API_KEYS_FILE or ORRERY_API_KEYS; \
         `orrery keygen` makes one), bind to 127.0.0.1, or set `allow_anonymous = true` under [auth] \
         (ORRERY_ALLOW_ANONYMOUS=true) if an open node is what you want"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_map_to_priorities_and_cap_requests() {
        // (tier, requested, granted)
        let table = [
            (Tier::Free, None, Priority::Low),
            (Tier::Free, Some(Priority::High), Priority::Low),
            (Tier::Premium, None, Priority::Normal),
            (Tier::Premium, Some(Priority::Low), Priority::Low),
            (Tier::Premium, Some(Priority::High), Priority::Normal),
            (Tier::Enterprise, None, Priority::High),
            (Tier::Enterprise, Some(Priority::Normal), Priority::Normal),
        ];
        for (tier, req, want) in table {
            assert_eq!(tier.cap(req.clone()), want, "{tier:?} asking {req:?}");
        }
    }

    #[test]
    fn exposure_refuses_open_non_loopback_nodes() {
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6lo: std::net::SocketAddr = "[::1]:8080".parse().unwrap();
        // (bind, keys, allow_anonymous, wanted)
        let table = [
            (lo, 0, false, Some(Exposure::OpenLoopback)),
            (v6lo, 0, false, Some(Exposure::OpenLoopback)),
            (any, 0, false, None),
            (any, 0, true, Some(Exposure::OpenEverywhere)),
            (
                any,
                2,
                false,
                Some(Exposure::Keys {
                    allow_anonymous: false,
                }),
            ),
            (
                lo,
                1,
                true,
                Some(Exposure::Keys {
                    allow_anonymous: true,
                }),
            ),
        ];
        for (bind, keys, anon, want) in table {
            let got = exposure(bind, keys, anon);
            assert_eq!(got.clone().ok(), want, "{bind} keys={keys} anon={anon}");
            if want.is_none() {
                assert!(got.unwrap_err().contains("allow_anonymous"));
            }
        }
    }

    #[test]
    fn user_names_are_restricted() {
        for ok in ["alice", "bob.smith@example.com", "team_1-a"] {
            assert!(UserId::parse(ok).is_some(), "{ok}");
        }
        for bad in ["", "a b", "x'; DROP", &"x".repeat(65)] {
            assert!(UserId::parse(bad).is_none(), "{bad}");
        }
    }
}
