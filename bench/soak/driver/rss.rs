//! Resident memory of every node process, sampled from /proc on a fixed period, and the least
//! squares slope of each process's series after its warm-up: a leak shows as a slope that stays
//! up however long the process lives.

use super::cluster::Cluster;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub node: usize,
    pub incarnation: u32,
    /// Seconds since the incarnation became ready.
    pub age_s: f64,
    pub mib: f64,
}

/// VmRSS of `pid`, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Samples every running node every `every` until `stop`.
pub async fn sample(
    cluster: Arc<Cluster>,
    every: Duration,
    stop: CancellationToken,
) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return out,
            _ = tick.tick() => {}
        }
        for (node, slot) in cluster.nodes.iter().enumerate() {
            if let Some((pid, incarnation, ready_at)) = slot.running()
                && let Some(mib) = rss_mib(pid)
            {
                out.push(Sample {
                    node,
                    incarnation,
                    age_s: Instant::now().duration_since(ready_at).as_secs_f64(),
                    mib,
                });
            }
        }
    }
}

/// Least squares slope of `(x, y)` points, in y per unit of x; 0 for fewer than two.
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

/// One process's series, summarised.
#[derive(Clone, Debug)]
pub struct Run {
    pub node: usize,
    pub min_mib: f64,
    pub max_mib: f64,
    /// Seconds sampled after the warm-up.
    pub span_s: f64,
    /// MiB per minute after the warm-up (None when that part is shorter than the judged span).
    pub slope_mib_per_min: Option<f64>,
}

/// Each process's series: min and max over its whole life, and the slope after `warmup` when
/// at least `min_span` of samples follow it.
pub fn runs(samples: &[Sample], warmup: Duration, min_span: Duration) -> Vec<Run> {
    let mut keys: Vec<(usize, u32)> = samples.iter().map(|s| (s.node, s.incarnation)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter()
        .map(|(node, incarnation)| {
            let all: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.node == node && s.incarnation == incarnation)
                .collect();
            let warm: Vec<(f64, f64)> = all
                .iter()
                .filter(|s| s.age_s >= warmup.as_secs_f64())
                .map(|s| (s.age_s / 60.0, s.mib))
                .collect();
            let span_s = match (warm.first(), warm.last()) {
                (Some(a), Some(b)) => (b.0 - a.0) * 60.0,
                _ => 0.0,
            };
            Run {
                node,
                min_mib: all.iter().map(|s| s.mib).fold(f64::INFINITY, f64::min),
                max_mib: all.iter().map(|s| s.mib).fold(0.0, f64::max),
                span_s,
                slope_mib_per_min: (span_s >= min_span.as_secs_f64()).then(|| slope(&warm)),
            }
        })
        .collect()
}
