//! The machine is shared: before each measurement, wait (bounded) for other work to quiet down,
//! and record how many cores something else kept busy, so a reader can tell a clean figure from
//! one taken under contention.

use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Other work below this many busy cores counts as quiet.
const QUIET_CORES: f64 = 0.3;

#[derive(Clone, Debug, Serialize)]
pub struct Contention {
    pub before: String,
    /// Cores busy with other work in the second before the measurement started.
    pub busy_cores: f64,
    pub waited_s: f64,
}

static LOG: Mutex<Vec<Contention>> = Mutex::new(Vec::new());
static MAX_WAIT: Mutex<Duration> = Mutex::new(Duration::from_secs(15));

pub fn set_max_wait(d: Duration) {
    if let Ok(mut m) = MAX_WAIT.lock() {
        *m = d;
    }
}

/// (busy, total) jiffies of all CPUs so far.
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle + iowait
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Cores busy over the next second (the benchmark itself being idle meanwhile).
fn busy_cores() -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let Some((b0, t0)) = cpu_jiffies() else {
        return f64::NAN;
    };
    std::thread::sleep(Duration::from_secs(1));
    let Some((b1, t1)) = cpu_jiffies() else {
        return f64::NAN;
    };
    if t1 <= t0 {
        return f64::NAN;
    }
    (b1 - b0) as f64 / (t1 - t0) as f64 * cores
}

/// Waits up to the maximum wait for the machine to be quiet, then records how busy it was.
/// Blocking: call it between measurements (from async code, through `spawn_blocking`).
pub fn settle(before: &str) {
    let max = MAX_WAIT.lock().map_or(Duration::from_secs(15), |m| *m);
    let t0 = Instant::now();
    let mut busy = busy_cores();
    while busy > QUIET_CORES && t0.elapsed() < max {
        busy = busy_cores();
    }
    let entry = Contention {
        before: before.to_string(),
        busy_cores: crate::stats::round(busy, 2),
        waited_s: crate::stats::round(t0.elapsed().as_secs_f64(), 1),
    };
    if busy > QUIET_CORES {
        eprintln!(
            "  (machine busy: {:.2} cores used by other work before {before})",
            entry.busy_cores
        );
    }
    if let Ok(mut log) = LOG.lock() {
        log.push(entry);
    }
}

pub async fn settle_async(before: &str) {
    let before = before.to_string();
    let _ = tokio::task::spawn_blocking(move || settle(&before)).await;
}

/// Everything recorded so far.
pub fn log() -> Vec<Contention> {
    LOG.lock().map(|l| l.clone()).unwrap_or_default()
}
