//! Generation metrics (names documented in the README), recorded per model.

use std::time::Duration;

pub const TOKENS_GENERATED: &str = "orrery_tokens_generated_total";
pub const PROMPT_TOKENS: &str = "orrery_prompt_tokens_total";
pub const TIME_TO_FIRST_TOKEN: &str = "orrery_time_to_first_token_seconds";
pub const GENERATION_SECONDS: &str = "orrery_generation_seconds";
pub const TOKENS_PER_SECOND: &str = "orrery_generation_tokens_per_second";
pub const PREFIX_LOOKUP_TOKENS: &str = "orrery_prefix_cache_lookup_tokens_total";
pub const PREFIX_HIT_TOKENS: &str = "orrery_prefix_cache_hit_tokens_total";
pub const PREFIX_CACHE_BYTES: &str = "orrery_prefix_cache_bytes";

/// Records the metrics of one model's generations.
#[derive(Clone, Debug)]
pub struct GenMetrics {
    model: String,
}

impl GenMetrics {
    pub fn new(model: &str) -> Self {
        GenMetrics {
            model: model.to_string(),
        }
    }

    /// The prefix cache's series at zero, present from the start so dashboards see zero rather
    /// than nothing (also for models without a cache).
    pub fn register(&self) {
        metrics::counter!(PREFIX_LOOKUP_TOKENS, "model" => self.model.clone()).absolute(0);
        metrics::counter!(PREFIX_HIT_TOKENS, "model" => self.model.clone()).absolute(0);
        metrics::gauge!(PREFIX_CACHE_BYTES, "model" => self.model.clone()).set(0.0);
    }

    pub fn prompt_processed(&self, tokens: usize) {
        metrics::counter!(PROMPT_TOKENS, "model" => self.model.clone()).increment(tokens as u64);
    }

    pub fn token_generated(&self) {
        metrics::counter!(TOKENS_GENERATED, "model" => self.model.clone()).increment(1);
    }

    /// A prompt of `prompt` tokens looked up in the prefix cache, `hit` of them found (the hit
    /// rate is hit ÷ lookup tokens).
    pub fn prefix_lookup(&self, prompt: usize, hit: usize) {
        metrics::counter!(PREFIX_LOOKUP_TOKENS, "model" => self.model.clone())
            .increment(prompt as u64);
        metrics::counter!(PREFIX_HIT_TOKENS, "model" => self.model.clone()).increment(hit as u64);
    }

    pub fn prefix_cache_bytes(&self, bytes: usize) {
        metrics::gauge!(PREFIX_CACHE_BYTES, "model" => self.model.clone()).set(bytes as f64);
    }

    pub fn first_token(&self, after: Duration) {
        metrics::histogram!(TIME_TO_FIRST_TOKEN, "model" => self.model.clone())
            .record(after.as_secs_f64());
    }

    /// A sequence ended: `total` since the request, `decode` from its first token to its last.
    pub fn finished(&self, total: Duration, completion_tokens: u32, decode: Duration) {
        metrics::histogram!(GENERATION_SECONDS, "model" => self.model.clone())
            .record(total.as_secs_f64());
        if let Some(rate) = decode_rate(completion_tokens, decode) {
            metrics::gauge!(TOKENS_PER_SECOND, "model" => self.model.clone()).set(rate);
        }
    }
}

/// Tokens per second after the first token (the first one's cost is time to first token).
pub fn decode_rate(completion_tokens: u32, decode: Duration) -> Option<f64> {
    let secs = decode.as_secs_f64();
    (completion_tokens >= 2 && secs > 0.0).then(|| f64::from(completion_tokens - 1) / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rate_by_table() {
        let cases = [
            (0, Duration::from_secs(1), None),
            (1, Duration::from_secs(1), None),
            (2, Duration::ZERO, None),
            (11, Duration::from_secs(2), Some(5.0)),
        ];
        for (tokens, decode, want) in cases {
            assert_eq!(
                decode_rate(tokens, decode),
                want,
                "{tokens} tokens in {decode:?}"
            );
        }
    }
}
