//! How blocks sit in memory: each file block is re-laid once at load, and decoded back to f32
//! here for embeddings, the scalar kernel and the tests.
//!
//! Memory layouts (all little-endian), per 32-weight unit where the format has sub-blocks:
//! - F32, F16, BF16: as in the file.
//! - Q8_0: `d: f32, q: [i8; 32]`.
//! - Q4_0 `d: f32, nib`; Q4_1 `d, m: f32, nib`; Q5_0 `d: f32, qh: u32, nib`;
//!   Q5_1 `d, m: f32, qh: u32, nib`.
//! - Q4_K: `d, dmin: f32, sc: [u8; 8], m: [u8; 8], nib × 8`;
//!   Q5_K: the same with `qh: [u32; 8]` (one per unit) before the nibbles.
//! - Q6_K: `d: f32, sc: [i8; 16]`, then per unit `nib, crumbs`.
//!
//! `nib` is a unit's 32 low nibbles as four u32 words: nibble `k` of word `j` is weight
//! `4k + j`. Broadcast to every 128-bit lane, one variable shift and a mask give eight (AVX2) or
//! sixteen (AVX-512) consecutive weights, with no byte shuffles. `crumbs` are a Q6_K unit's
//! 2-bit high parts as two u32 words, crumb `c` of word `j` being weight `2c + j`, for the same
//! reason. `qh` bit `i` is weight `i`'s fifth bit.

use half::{bf16, f16};

use super::format::{Format, QK};

fn h(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

fn f(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Four nibble words from 32 values below 16, in weight order.
fn nib(q: &[u8; QK], out: &mut Vec<u8>) {
    for j in 0..4 {
        let w = (0..8).fold(0u32, |w, k| w | u32::from(q[4 * k + j]) << (4 * k));
        out.extend(w.to_le_bytes());
    }
}

/// A unit's nibble words back in weight order (word by word: one load per eight weights).
fn unnib(p: &[u8]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for j in 0..4 {
        let w = u32_at(p, 4 * j);
        for k in 0..8 {
            q[4 * k + j] = (w >> (4 * k)) as u8 & 0xF;
        }
    }
    q
}

/// The 6-bit (scale, min) of sub-block `j` of a Q4_K/Q5_K super-block (ggml's
/// `get_scale_min_k4`).
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Appends the memory form of one file block.
pub(crate) fn relayout(format: Format, b: &[u8], out: &mut Vec<u8>) {
    let wide = |out: &mut Vec<u8>, i: usize| out.extend(h(b, i).to_le_bytes());
    // The 32 low nibbles of a 32-block whose `qs` start at `at`.
    let nibbles32 = |at: usize| -> [u8; QK] {
        std::array::from_fn(|i| {
            if i < 16 {
                b[at + i] & 0xF
            } else {
                b[at + i - 16] >> 4
            }
        })
    };
    match format {
        Format::F32 | Format::F16 | Format::BF16 => out.extend_from_slice(b),
        Format::Q8_0 => {
            wide(out, 0);
            out.extend_from_slice(&b[2..34]);
        }
        Format::Q4_0 => {
            wide(out, 0);
            nib(&nibbles32(2), out);
        }
        Format::Q4_1 => {
            wide(out, 0);
            wide(out, 2);
            nib(&nibbles32(4), out);
        }
        Format::Q5_0 => {
            wide(out, 0);
            out.extend_from_slice(&b[2..6]);
            nib(&nibbles32(6), out);
        }
        Format::Q5_1 => {
            wide(out, 0);
            wide(out, 2);
            out.extend_from_slice(&b[4..8]);
            nib(&nibbles32(8), out);
        }
        Format::Q4_K | Format::Q5_K => {
            wide(out, 0);
            wide(out, 2);
            let (sc, m): (Vec<u8>, Vec<u8>) = (0..8).map(|j| scale_min_k4(j, &b[4..16])).unzip();
            out.extend(sc);
            out.extend(m);
            let qs = if format == Format::Q4_K { 16 } else { 48 };
            if format == Format::Q5_K {
                for u in 0..8 {
                    let bits = (0..32).fold(0u32, |w, l| w | u32::from((b[16 + l] >> u) & 1) << l);
                    out.extend(bits.to_le_bytes());
                }
            }
            for u in 0..8 {
                let q = std::array::from_fn(|l| (b[qs + 32 * (u / 2) + l] >> (4 * (u % 2))) & 0xF);
                nib(&q, out);
            }
        }
        Format::Q6_K => {
            let (ql, qh, sc) = (&b[..128], &b[128..192], &b[192..208]);
            wide(out, 208);
            out.extend_from_slice(sc);
            for u in 0..8 {
                let (n, k) = (u / 4, u % 4);
                let q = std::array::from_fn(|l| {
                    (ql[64 * n + 32 * (k & 1) + l] >> (4 * (k >> 1))) & 0xF
                });
                nib(&q, out);
                for j in 0..2 {
                    let w = (0..16).fold(0u32, |w, c| {
                        w | u32::from((qh[32 * n + 2 * c + j] >> (2 * k)) & 3) << (2 * c)
                    });
                    out.extend(w.to_le_bytes());
                }
            }
        }
    }
}

/// One memory block as f32, with ggml's `dequantize_row_*` arithmetic (same order of
/// operations), so a dequantized row equals llama.cpp's bit for bit.
pub(crate) fn decode(format: Format, b: &[u8], out: &mut [f32]) {
    match format {
        Format::F32 => {
            for (i, o) in out[..QK].iter_mut().enumerate() {
                *o = f(b, 4 * i);
            }
        }
        Format::F16 => {
            for (i, o) in out[..QK].iter_mut().enumerate() {
                *o = h(b, 2 * i);
            }
        }
        Format::BF16 => {
            for (i, o) in out[..QK].iter_mut().enumerate() {
                *o = bf16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f32();
            }
        }
        Format::Q8_0 => {
            let d = f(b, 0);
            for (i, o) in out[..QK].iter_mut().enumerate() {
                *o = f32::from(b[4 + i] as i8) * d;
            }
        }
        Format::Q4_0 | Format::Q4_1 | Format::Q5_0 | Format::Q5_1 => {
            let d = f(b, 0);
            let (m, qh, at) = match format {
                Format::Q4_0 => (0.0, 0, 4),
                Format::Q4_1 => (f(b, 4), 0, 8),
                Format::Q5_0 => (0.0, u32_at(b, 4), 8),
                _ => (f(b, 4), u32_at(b, 8), 12),
            };
            let nibs = unnib(&b[at..]);
            for (i, o) in out[..QK].iter_mut().enumerate() {
                let q = i32::from(nibs[i]) | (((qh >> i) & 1) << 4) as i32;
                *o = match format {
                    Format::Q4_0 => (q - 8) as f32 * d,
                    Format::Q5_0 => (q - 16) as f32 * d,
                    _ => q as f32 * d + m,
                };
            }
        }
        Format::Q4_K | Format::Q5_K => {
            let (d, dmin) = (f(b, 0), f(b, 4));
            let nibs = if format == Format::Q4_K { 24 } else { 56 };
            for u in 0..8 {
                let d1 = d * f32::from(b[8 + u]);
                let m1 = dmin * f32::from(b[16 + u]);
                let qh = if format == Format::Q5_K {
                    u32_at(b, 24 + 4 * u)
                } else {
                    0
                };
                let q4 = unnib(&b[nibs + 16 * u..]);
                for l in 0..QK {
                    let q = q4[l] | (((qh >> l) & 1) << 4) as u8;
                    out[QK * u + l] = d1 * f32::from(q) - m1;
                }
            }
        }
        Format::Q6_K => {
            let d = f(b, 0);
            for u in 0..8 {
                let p = &b[20 + 24 * u..];
                let (q4, crumbs) = (unnib(p), [u32_at(p, 16), u32_at(p, 20)]);
                for l in 0..QK {
                    let crumb = (crumbs[l % 2] >> (2 * (l / 2))) & 3;
                    let q = i32::from(q4[l]) | (crumb << 4) as i32;
                    let sc = f32::from(b[4 + 2 * u + l / 16] as i8);
                    out[QK * u + l] = d * sc * (q - 32) as f32;
                }
            }
        }
    }
}
