//! Per-user limits on one node: asks in flight at once (a permit held until the ask ends) and asks
//! per minute (a token bucket refilled continuously, a minute's worth deep). Time is passed in, so
//! tests need no clock.

use super::{TierLimit, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why an ask was refused, and when trying again may work.
#[derive(Clone, Debug, PartialEq)]
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
    in_flight: u32,
    tokens: f64,
    refilled_at: Instant,
}

/// The limits' bookkeeping for every user of this node.
#[derive(Debug, Default)]
pub struct Limiter {
    users: Mutex<HashMap<UserId, Usage>>,
}

/// One admitted ask; its user's in-flight count drops when this is dropped.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
    user: UserId,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut users = self
            .limiter
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(u) = users.get_mut(&self.user) {
            u.in_flight = u.in_flight.saturating_sub(1);
        }
    }
}

impl Limiter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Admits one ask of `user` at `now`, or says why not. A refused ask costs nothing.
    pub fn try_acquire(
        self: &Arc<Self>,
        user: &UserId,
        limit: TierLimit,
        now: Instant,
    ) -> Result<Permit, Refusal> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let capacity = f64::from(limit.requests_per_minute);
        let per_sec = capacity / 60.0;
        let u = users.entry(user.clone()).or_insert(Usage {
            in_flight: 0,
            tokens: capacity,
            refilled_at: now,
        });
        let elapsed = now.saturating_duration_since(u.refilled_at).as_secs_f64();
        u.tokens = (u.tokens + elapsed * per_sec).min(capacity);
        u.refilled_at = now;
        if u.in_flight >= limit.max_concurrent {
            return Err(Refusal::Concurrency {
                limit: limit.max_concurrent,
                retry_after: Duration::from_secs(1),
            });
        }
        if u.tokens < 1.0 {
            return Err(Refusal::Rate {
                limit: limit.requests_per_minute,
                retry_after: Duration::from_secs_f64((1.0 - u.tokens) / per_sec),
            });
        }
        u.tokens -= 1.0;
        u.in_flight += 1;
        Ok(Permit {
            limiter: self.clone(),
            user: user.clone(),
        })
    }

    /// Asks in flight for `user`.
    pub fn in_flight(&self, user: &UserId) -> u32 {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.get(user).map(|u| u.in_flight).unwrap_or(0)
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
}
