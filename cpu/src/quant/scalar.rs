//! The portable kernel: decode a block to f32 (as [`layout::decode`] does for embeddings),
//! multiply, add. It runs where no SIMD path does, and is what the SIMD paths are tested against.

use super::dispatch::MAX_GROUP;
use super::format::{Format, QK_K};
use super::layout;

/// `sums[i] = row · xs[i]` for every token in `xs`.
pub fn dot(format: Format, row: &[u8], xs: &[&[f32]], sums: &mut [f32; MAX_GROUP]) {
    let (bw, bb) = (format.block_weights(), format.mem_block_bytes());
    let mut w = [0f32; QK_K];
    *sums = [0.0; MAX_GROUP];
    for (b, block) in row.chunks_exact(bb).enumerate() {
        layout::decode(format, block, &mut w);
        for (s, x) in sums.iter_mut().zip(xs) {
            *s += dot8(&w[..bw], &x[b * bw..(b + 1) * bw]);
        }
    }
}

/// `w · x` over eight running sums: independent lanes let the compiler use whatever vector
/// width the baseline target has (SSE2, NEON), where a single sum would stay serial.
fn dot8(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for (w, x) in w.chunks_exact(8).zip(x.chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += w[i] * x[i];
        }
    }
    acc.iter().sum()
}
