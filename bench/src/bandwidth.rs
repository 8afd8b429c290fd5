//! Memory read bandwidth with a streaming sum: the physical ceiling for decoding, which reads every
//! weight once per generated token.

use std::time::Instant;

/// Buffer far larger than any cache (256 MiB of u64).
const WORDS: usize = 32 << 20;
const PASSES: usize = 4;

/// Best of a few passes of `threads` threads each summing its share of a 256 MiB buffer, in GB/s.
pub fn measure_gbs(threads: usize) -> f64 {
    let threads = threads.max(1);
    // Distinct values so every page is really backed by memory.
    let buf: Vec<u64> = (0..WORDS as u64).collect();
    let chunk = WORDS.div_ceil(threads);
    let mut best = 0.0f64;
    for _ in 0..PASSES {
        let t0 = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|part| s.spawn(move || sum(part)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(total);
        let secs = t0.elapsed().as_secs_f64();
        best = best.max((WORDS * 8) as f64 / secs / 1e9);
    }
    best
}

fn sum(xs: &[u64]) -> u64 {
    // Integer adds vectorise; the wrapping add keeps the loop free of overflow checks.
    xs.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}
