//! The restart rule every supervising actor here follows: a crashed child is restarted after an
//! exponential backoff (100 ms, 200 ms, …), at most `MAX_RESTARTS` times within `RESTART_WINDOW`;
//! past that its parent gives up on it.

use ractor::{ActorCell, SupervisionEvent};
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

pub const MAX_RESTARTS: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Recent restarts of each child, by key.
pub struct Restarts<K>(HashMap<K, Vec<Instant>>);

impl<K> Default for Restarts<K> {
    fn default() -> Self {
        Restarts(HashMap::new())
    }
}

impl<K: Hash + Eq + Clone> Restarts<K> {
    /// Records a restart of `key` and says how long to wait before it, or None past the limit.
    pub fn next_delay(&mut self, key: &K) -> Option<Duration> {
        let now = Instant::now();
        let times = self.0.entry(key.clone()).or_default();
        times.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        if times.len() >= MAX_RESTARTS {
            return None;
        }
        times.push(now);
        Some(Duration::from_millis(100 * (1 << (times.len() - 1))))
    }
}

/// The child that stopped and why, for the events that mean a child is gone.
pub fn exited(evt: SupervisionEvent) -> Option<(ActorCell, String)> {
    match evt {
        SupervisionEvent::ActorFailed(cell, err) => Some((cell, err.to_string())),
        SupervisionEvent::ActorTerminated(cell, _, reason) => {
            Some((cell, reason.unwrap_or_else(|| "stopped".into())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_the_limit_holds() {
        let mut r = Restarts::default();
        let delays: Vec<_> = (0..MAX_RESTARTS).map(|_| r.next_delay(&"a")).collect();
        assert_eq!(delays[0], Some(Duration::from_millis(100)));
        assert_eq!(delays[4], Some(Duration::from_millis(1600)));
        assert_eq!(r.next_delay(&"a"), None);
        assert_eq!(r.next_delay(&"b"), Some(Duration::from_millis(100)));
    }
}
