//! The prefix cache: the KV states of finished answers, kept within a memory budget (least
//! recently used first out), so a new answer whose prompt starts with the same tokens (the same
//! system prompt, or the same conversation plus a new turn) starts from a copy of that state and
//! prefills only the tokens after it. A state's values for a token depend only on the tokens
//! before it, so the answer is the same with or without a hit.

use std::sync::{Arc, Mutex};

use super::stats::GenMetrics;
use crate::protocol::prefix::MAX_PUBLISHED_MARKS;

/// The conversation marks of what a cache holds, readable from other threads (the model's load
/// report): most recently used entries' marks first, at most [`MAX_PUBLISHED_MARKS`].
#[derive(Clone, Default)]
pub struct PublishedMarks(Arc<Mutex<Vec<u64>>>);

impl PublishedMarks {
    pub fn get(&self) -> Vec<u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn set(&self, marks: Vec<u64>) {
        if let Ok(mut m) = self.0.lock() {
            *m = marks;
        }
    }
}

struct Entry<S> {
    /// The tokens the state holds, in order.
    tokens: Vec<u32>,
    /// The conversation marks its tokens spell (placement's view of it).
    marks: Vec<u64>,
    state: S,
    bytes: usize,
    used: u64,
}

pub struct PrefixCache<S> {
    entries: Vec<Entry<S>>,
    budget: usize,
    held: usize,
    clock: u64,
    published: PublishedMarks,
}

impl<S: Clone> PrefixCache<S> {
    /// A cache holding at most `budget` bytes of states (0: none).
    pub fn new(budget: usize, published: PublishedMarks) -> Self {
        PrefixCache {
            entries: Vec::new(),
            budget,
            held: 0,
            clock: 0,
            published,
        }
    }

    /// A copy of the state that holds the longest prefix of `prompt`, and that prefix's length:
    /// at most `prompt.len() - 1`, so that at least one token is still fed (the pass that gives
    /// the first answer token's logits). `None` when no entry shares a token with it.
    pub fn lookup(&mut self, prompt: &[u32], metrics: &GenMetrics) -> Option<(S, usize)> {
        let limit = prompt.len().saturating_sub(1);
        let best = self
            .entries
            .iter_mut()
            .map(|e| {
                let shared = e
                    .tokens
                    .iter()
                    .zip(prompt)
                    .take(limit)
                    .take_while(|(a, b)| a == b)
                    .count();
                (shared, e)
            })
            .filter(|(shared, _)| *shared > 0)
            .max_by_key(|(shared, _)| *shared);
        metrics.prefix_lookup(prompt.len(), best.as_ref().map_or(0, |b| b.0));
        let (shared, entry) = best?;
        self.clock += 1;
        entry.used = self.clock;
        Some((entry.state.clone(), shared))
    }

    /// Keeps `state`, which holds `tokens` (the conversation `marks` name). An entry whose tokens are a prefix of these is
    /// dropped (this one serves its hits too); the least recently used go while over budget. A
    /// state bigger than the whole budget is not kept.
    pub fn insert(
        &mut self,
        tokens: Vec<u32>,
        marks: Vec<u64>,
        state: S,
        bytes: usize,
        metrics: &GenMetrics,
    ) {
        if tokens.is_empty() || bytes > self.budget {
            return;
        }
        if self.entries.iter().any(|e| e.tokens.starts_with(&tokens)) {
            return;
        }
        let before = self.entries.len();
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        if self.entries.len() != before {
            self.held = self.entries.iter().map(|e| e.bytes).sum();
        }
        while self.held + bytes > self.budget {
            let Some(oldest) = (0..self.entries.len()).min_by_key(|&i| self.entries[i].used) else {
                break;
            };
            self.held -= self.entries.swap_remove(oldest).bytes;
        }
        self.clock += 1;
        self.held += bytes;
        self.entries.push(Entry {
            tokens,
            marks,
            state,
            bytes,
            used: self.clock,
        });
        metrics.prefix_cache_bytes(self.held);
        self.publish();
    }

    fn publish(&self) {
        let mut order: Vec<&Entry<S>> = self.entries.iter().collect();
        order.sort_by_key(|e| std::cmp::Reverse(e.used));
        let mut marks: Vec<u64> = Vec::new();
        for m in order.iter().flat_map(|e| e.marks.iter().rev()) {
            if marks.len() == MAX_PUBLISHED_MARKS {
                break;
            }
            if !marks.contains(m) {
                marks.push(*m);
            }
        }
        self.published.set(marks);
    }

    /// Bytes of states held.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_shared_prefix_wins_and_the_budget_holds() {
        let m = GenMetrics::new("test");
        let marks = PublishedMarks::default();
        let mut c: PrefixCache<&'static str> = PrefixCache::new(100, marks.clone());
        assert!(c.lookup(&[1, 2, 3], &m).is_none());
        c.insert(vec![1, 2, 3, 4], vec![11, 12], "a", 40, &m);
        c.insert(vec![1, 2, 9], vec![11, 21], "b", 40, &m);
        assert_eq!(c.lookup(&[1, 2, 3, 4, 5], &m), Some(("a", 4)));
        assert_eq!(c.lookup(&[1, 2, 9, 9], &m), Some(("b", 3)));
        // The whole prompt cached: one token is left to feed.
        assert_eq!(c.lookup(&[1, 2, 3, 4], &m), Some(("a", 3)));
        assert!(c.lookup(&[7, 1, 2], &m).is_none());
        // Over budget: the least recently used ("b", looked up before "a" was) goes.
        assert_eq!(marks.get(), [21, 11, 12]);
        c.insert(vec![5, 6], vec![], "c", 40, &m);
        assert_eq!(c.held(), 80);
        // What is gone is no longer published.
        assert_eq!(marks.get(), [12, 11]);
        assert!(c.lookup(&[1, 2, 9, 9], &m).is_some_and(|(s, _)| s == "a"));
        // A longer history replaces the entry it extends; a shorter one is not kept.
        c.insert(vec![5, 6, 7], vec![], "d", 40, &m);
        assert_eq!(c.lookup(&[5, 6, 7, 8], &m), Some(("d", 3)));
        c.insert(vec![5], vec![], "e", 10, &m);
        assert_eq!(c.lookup(&[5, 6, 7, 8], &m), Some(("d", 3)));
        assert_eq!(c.held(), 80);
        // Too big for the budget: not kept.
        c.insert(vec![8, 8], vec![], "f", 101, &m);
        assert!(c.lookup(&[8, 8, 8], &m).is_none());
    }
}
