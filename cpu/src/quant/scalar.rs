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
            let x = &x[b * bw..(b + 1) * bw];
            *s += w[..bw].iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        }
    }
}
