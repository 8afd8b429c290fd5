//! Small statistics over samples: percentiles (nearest rank), means, and millisecond conversion.

use std::time::Duration;

/// The `p`-th percentile (0..=100) by nearest rank; NaN for no samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

pub fn mean(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.iter().sum::<f64>() / samples.len() as f64
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of latencies in milliseconds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    pub fn of(samples_ms: &[f64]) -> Latency {
        Latency {
            p50_ms: round(percentile(samples_ms, 50.0), 1),
            p99_ms: round(percentile(samples_ms, 99.0), 1),
        }
    }
}

/// `x` rounded to `digits` decimals, for readable JSON.
pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// `a / b`, rounded to two decimals; NaN when either side is missing.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        round(a / b, 2)
    } else {
        f64::NAN
    }
}
