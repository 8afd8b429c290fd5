//! Per-user limits: asks in flight at once (a lease held until the ask ends) and asks per minute
//! (a token bucket refilled continuously, a minute's worth deep). One node keeps a user's counters
//! for the whole cluster (see `owner` and `actors::limits`); leases are named, so that the node
//! that holds one can release it there, move it when the keeper changes, and the keeper can drop
//! those of a node that left. Time is passed in, so tests need no clock.

use super::{TierLimit, UserId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an ask was refused, and when trying again may work.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Refusal {
    Concurrency { limit: u32, retry_after: Duration },
    Rate { limit: u32, retry_after: Duration },
}

impl Refusal {
    pub fn retry_after(&self) -> Duration {
        match self {
            Refusal::Concurrency { retry_after, .. } | Refusal::Rate { retry_after, .. } => {
                *retry_after
            }
        }
    }

    /// Whole seconds for a `Retry-After` header: at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after().as_secs_f64().ceil().max(1.0) as u64
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Concurrency { .. } => "concurrency",
            Refusal::Rate { .. } => "rate",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Concurrency { limit, .. } => {
                format!("at most {limit} asks in flight at once for this user; wait for one to end")
            }
            Refusal::Rate { limit, .. } => format!(
                "at most {limit} asks per minute for this user; retry in {} s",
                self.retry_after_secs()
            ),
        }
    }
}

#[derive(Debug)]
struct Usage {
    leases: HashSet<String>,
    tokens: f64,
    refilled_at: Instant,
}

/// The limits' bookkeeping for the users whose counters this node keeps.
#[derive(Debug, Default)]
pub struct Limiter {
    users: Mutex<HashMap<UserId, Usage>>,
    next_lease: AtomicU64,
}

/// One admitted ask of a local [`Limiter`]; its lease is released when this is dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    user: UserId,
    lease: String,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(&self.user, &self.lease);
    }
}

impl Limiter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Usage>> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user's usage, its bucket refilled up to `now`.
    fn usage<'a>(
        users: &'a mut HashMap<UserId, Usage>,
        user: &UserId,
        limit: TierLimit,
        now: Instant,
    ) -> &'a mut Usage {
        let capacity = f64::from(limit.requests_per_minute);
        let u = users.entry(user.clone()).or_insert(Usage {
            leases: HashSet::new(),
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(u.refilled_at).as_secs_f64();
        u.tokens = (u.tokens + elapsed * capacity / 60.0).min(capacity);
        u.refilled_at = now;
        u
    }

    /// Admits the ask holding `lease` for `user` at `now`, or says why not. A refused ask costs
    /// nothing; a lease already held is admitted again at no cost (a retried call).
    pub fn acquire(
        &self,
        user: &UserId,
        limit: TierLimit,
        lease: &str,
        now: Instant,
    ) -> Result<(), Refusal> {
        let mut users = self.users();
        let u = Self::usage(&mut users, user, limit, now);
        if u.leases.contains(lease) {
            return Ok(());
        }
        if u.leases.len() >= limit.max_concurrent as usize {
            return Err(Refusal::Concurrency {
                limit: limit.max_concurrent,
                retry_after: Duration::from_secs(1),
            });
        }
        if u.tokens < 1.0 {
            let per_sec = f64::from(limit.requests_per_minute) / 60.0;
            return Err(Refusal::Rate {
                limit: limit.requests_per_minute,
                retry_after: Duration::from_secs_f64((1.0 - u.tokens) / per_sec),
            });
        }
        u.tokens -= 1.0;
        u.leases.insert(lease.to_string());
        Ok(())
    }

    /// Counts a lease admitted elsewhere (by this user's previous keeper), without limits: the ask
    /// runs already.
    pub fn adopt(&self, user: &UserId, limit: TierLimit, lease: &str, now: Instant) {
        let mut users = self.users();
        Self::usage(&mut users, user, limit, now)
            .leases
            .insert(lease.to_string());
    }

    pub fn release(&self, user: &UserId, lease: &str) {
        if let Some(u) = self.users().get_mut(user) {
            u.leases.remove(lease);
        }
    }

    /// Drops every lease `keep` refuses (those of nodes that left); returns how many.
    pub fn retain_leases(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut dropped = 0;
        for u in self.users().values_mut() {
            let before = u.leases.len();
            u.leases.retain(|l| keep(l));
            dropped += before - u.leases.len();
        }
        dropped
    }

    /// Admits one ask of `user` on this node alone (a lease named here).
    pub fn try_acquire(
        self: &Arc<Self>,
        user: &UserId,
        limit: TierLimit,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        let lease = format!("local/{}", self.next_lease.fetch_add(1, Ordering::Relaxed));
        self.acquire(user, limit, &lease, now)?;
        Ok(Permit {
            limiter: self.clone(),
            user: user.clone(),
            lease,
        })
    }

    /// Leases counted here, all users together.
    pub fn leases(&self) -> usize {
        self.users().values().map(|u| u.leases.len()).sum()
    }

    /// Asks in flight for `user`.
    pub fn in_flight(&self, user: &UserId) -> u32 {
        self.users()
            .get(user)
            .map(|u| u.leases.len() as u32)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_concurrent: u32, requests_per_minute: u32) -> TierLimit {
        TierLimit {
            max_concurrent,
            requests_per_minute,
        }
    }

    #[test]
    fn concurrency_is_bounded_until_a_permit_drops() {
        let l = Limiter::new();
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let t = Instant::now();
        let a1 = l.try_acquire(&alice, limit(2, 100), t).unwrap();
        let _a2 = l.try_acquire(&alice, limit(2, 100), t).unwrap();
        let refused = l.try_acquire(&alice, limit(2, 100), t).unwrap_err();
        assert_eq!(refused.reason(), "concurrency");
        assert_eq!(refused.retry_after_secs(), 1);
        // Another user is not affected.
        let _b = l.try_acquire(&bob, limit(2, 100), t).unwrap();
        drop(a1);
        assert_eq!(l.in_flight(&alice), 1);
        assert!(l.try_acquire(&alice, limit(2, 100), t).is_ok());
    }

    #[test]
    fn the_rate_is_a_token_bucket_a_minute_deep() {
        // (seconds since the first ask, admitted?)
        let table: &[(f64, bool)] = &[
            (0.0, true),
            (0.0, true),
            (0.0, true),
            (1.0, false), // 3 per minute: the bucket is empty, one token takes 20 s
            (19.0, false),
            (20.5, true),
            (21.0, false),
            (100.0, true), // refilled (capped at 3)
            (100.0, true),
            (100.0, true),
            (100.0, false),
        ];
        let l = Limiter::new();
        let u = UserId::parse("u").unwrap();
        let t0 = Instant::now();
        for (secs, want) in table {
            let now = t0 + Duration::from_secs_f64(*secs);
            let got = l.try_acquire(&u, limit(100, 3), now);
            assert_eq!(got.is_ok(), *want, "at {secs} s: {got:?}");
            if let Err(r) = got {
                assert_eq!(r.reason(), "rate");
                assert!(
                    r.retry_after_secs() >= 1 && r.retry_after_secs() <= 20,
                    "{r:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_says_when_the_next_token_comes() {
        let l = Limiter::new();
        let u = UserId::parse("u").unwrap();
        let t0 = Instant::now();
        let _p = l.try_acquire(&u, limit(10, 6), t0).unwrap();
        for _ in 0..5 {
            l.try_acquire(&u, limit(10, 6), t0).unwrap();
        }
        let r = l.try_acquire(&u, limit(10, 6), t0).unwrap_err();
        assert_eq!(r.retry_after_secs(), 10);
        assert!(r.message().contains("6 asks per minute"));
    }

    #[test]
    fn named_leases_are_admitted_once_released_adopted_and_dropped_by_holder() {
        let l = Limiter::default();
        let u = UserId::parse("u").unwrap();
        let t = Instant::now();
        assert!(l.acquire(&u, limit(2, 100), "n1/1", t).is_ok());
        // The same lease again (a retried call) costs nothing.
        assert!(l.acquire(&u, limit(2, 100), "n1/1", t).is_ok());
        assert_eq!(l.in_flight(&u), 1);
        assert!(l.acquire(&u, limit(2, 100), "n2/1", t).is_ok());
        assert_eq!(
            l.acquire(&u, limit(2, 100), "n3/1", t)
                .unwrap_err()
                .reason(),
            "concurrency"
        );
        // A lease moved here from another keeper counts even above the limit: its ask runs.
        l.adopt(&u, limit(2, 100), "n3/0", t);
        assert_eq!(l.in_flight(&u), 3);
        l.release(&u, "n2/1");
        assert_eq!(l.in_flight(&u), 2);
        // Node n1 left: its leases go.
        assert_eq!(l.retain_leases(|lease| !lease.starts_with("n1/")), 1);
        assert_eq!(l.in_flight(&u), 1);
    }
}
