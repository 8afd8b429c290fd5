//! AVX2 + FMA + F16C kernels: a 32-weight unit becomes four vectors of eight f32 weights, with
//! variable shifts over broadcast words (see `layout`) instead of byte shuffles, and up to four
//! tokens share each expanded unit. Compiled for these features whatever the build's baseline;
//! `dispatch` calls them only on a CPU that has them.

// Every function here is a sequence of SIMD intrinsics over raw pointers into checked buffers;
// marking each expression unsafe would only add noise.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::avx2_decode as decode;
use super::dispatch::MAX_GROUP;
use super::format::{Format, QK};

pub(super) const F32: u8 = Format::F32 as u8;
pub(super) const F16: u8 = Format::F16 as u8;
pub(super) const BF16: u8 = Format::BF16 as u8;
pub(super) const Q4_0: u8 = Format::Q4_0 as u8;
pub(super) const Q4_1: u8 = Format::Q4_1 as u8;
pub(super) const Q5_0: u8 = Format::Q5_0 as u8;
pub(super) const Q5_1: u8 = Format::Q5_1 as u8;
pub(super) const Q8_0: u8 = Format::Q8_0 as u8;
pub(super) const Q4_K: u8 = Format::Q4_K as u8;
pub(super) const Q5_K: u8 = Format::Q5_K as u8;
pub(super) const Q6_K: u8 = Format::Q6_K as u8;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn rd(p: *const u8) -> f32 {
    p.cast::<f32>().read_unaligned()
}

/// A unit's nibble words → weights `8t..8t+8` in vector `t`, as u32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> [__m256i; 4] {
    let b = _mm256_broadcastsi128_si256(_mm_loadu_si128(p.cast()));
    let m = _mm256_set1_epi32(0xF);
    [
        _mm256_and_si256(
            _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
            m,
        ),
        _mm256_and_si256(
            _mm256_srlv_epi32(b, _mm256_setr_epi32(8, 8, 8, 8, 12, 12, 12, 12)),
            m,
        ),
        _mm256_and_si256(
            _mm256_srlv_epi32(b, _mm256_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20)),
            m,
        ),
        _mm256_and_si256(
            _mm256_srlv_epi32(b, _mm256_setr_epi32(24, 24, 24, 24, 28, 28, 28, 28)),
            m,
        ),
    ]
}

/// `q | ((h >> s) & mask) << 4`, lane by lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn high(q: __m256i, h: __m256i, s: __m256i, mask: i32) -> __m256i {
    let bits = _mm256_and_si256(_mm256_srlv_epi32(h, s), _mm256_set1_epi32(mask));
    _mm256_or_si256(q, _mm256_slli_epi32(bits, 4))
}

/// Adds each weight's fifth bit (`qh` bit `i` for weight `i`) as 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth(q: [__m256i; 4], qh: u32) -> [__m256i; 4] {
    let h = _mm256_set1_epi32(qh as i32);
    [
        high(q[0], h, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), 1),
        high(q[1], h, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15), 1),
        high(
            q[2],
            h,
            _mm256_setr_epi32(16, 17, 18, 19, 20, 21, 22, 23),
            1,
        ),
        high(
            q[3],
            h,
            _mm256_setr_epi32(24, 25, 26, 27, 28, 29, 30, 31),
            1,
        ),
    ]
}

/// Adds a Q6_K unit's 2-bit high parts (its crumb words at `p`) as multiples of 16.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn crumbs(q: [__m256i; 4], p: *const u8) -> [__m256i; 4] {
    let c = _mm256_set1_epi64x(p.cast::<i64>().read_unaligned());
    [
        high(q[0], c, _mm256_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6), 3),
        high(q[1], c, _mm256_setr_epi32(8, 8, 10, 10, 12, 12, 14, 14), 3),
        high(
            q[2],
            c,
            _mm256_setr_epi32(16, 16, 18, 18, 20, 20, 22, 22),
            3,
        ),
        high(
            q[3],
            c,
            _mm256_setr_epi32(24, 24, 26, 26, 28, 28, 30, 30),
            3,
        ),
    ]
}

/// `q * s + a`, with the second half of the unit scaled by `s2`, `a2` (Q6_K's 16-weight scales).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scale(q: [__m256i; 4], s: f32, a: f32, s2: f32, a2: f32) -> [__m256; 4] {
    let (s, a, s2, a2) = (
        _mm256_set1_ps(s),
        _mm256_set1_ps(a),
        _mm256_set1_ps(s2),
        _mm256_set1_ps(a2),
    );
    [
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[0]), s, a),
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), s, a),
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), s2, a2),
        _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), s2, a2),
    ]
}

/// Eight bfloat16 → f32: the top halves of the f32s.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16x8(p: *const __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128(p)),
        16,
    ))
}

/// Unit `g` of a row (weights `32g..32g+32`) as f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weights<const F: u8>(row: *const u8, g: usize) -> [__m256; 4] {
    match F {
        F32 => {
            let p = row.add(g * 128).cast::<f32>();
            [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ]
        }
        F16 => {
            let p = row.add(g * 64).cast::<__m128i>();
            [
                _mm256_cvtph_ps(_mm_loadu_si128(p)),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(1))),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(2))),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(3))),
            ]
        }
        BF16 => {
            let p = row.add(g * 64).cast::<__m128i>();
            [
                bf16x8(p),
                bf16x8(p.add(1)),
                bf16x8(p.add(2)),
                bf16x8(p.add(3)),
            ]
        }
        _ => {
            let (q, [s, a, s2, a2]) = levels::<F>(row, g);
            scale(q, s, a, s2, a2)
        }
    }
}

/// The levels of unit `u` of the K-quant super-block at `p` (Q6_K's from 0, not -32).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn k_levels<const F: u8>(p: *const u8, u: usize) -> [__m256i; 4] {
    match F {
        Q4_K => nibbles(p.add(24 + 16 * u)),
        Q5_K => {
            let qh = p.add(24 + 4 * u).cast::<u32>().read_unaligned();
            fifth(nibbles(p.add(56 + 16 * u)), qh)
        }
        _ => {
            let unit = p.add(20 + 24 * u);
            crumbs(nibbles(unit), unit.add(16))
        }
    }
}

/// Eight i8 at `q` as i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn i8x8(q: *const u8) -> __m256i {
    _mm256_cvtepi8_epi32(_mm_loadl_epi64(q.cast()))
}

/// A quantized unit `g`: its levels (weights `8t..8t+8` in vector `t`) and the affine map
/// `w = q * s + a` (`s2`, `a2` for the second sixteen weights). Offsets such as Q4_0's `- 8` are
/// folded into `a` as `-8d`, which is exact, so the fused `q * d - 8d` rounds as ggml's
/// `(q - 8) * d`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn levels<const F: u8>(row: *const u8, g: usize) -> ([__m256i; 4], [f32; 4]) {
    match F {
        Q8_0 => {
            let p = row.add(g * 36);
            let d = rd(p);
            let q = p.add(4);
            (
                [i8x8(q), i8x8(q.add(8)), i8x8(q.add(16)), i8x8(q.add(24))],
                [d, 0.0, d, 0.0],
            )
        }
        Q4_0 => {
            let p = row.add(g * 20);
            let d = rd(p);
            (nibbles(p.add(4)), [d, -8.0 * d, d, -8.0 * d])
        }
        Q4_1 => {
            let p = row.add(g * 24);
            let (d, m) = (rd(p), rd(p.add(4)));
            (nibbles(p.add(8)), [d, m, d, m])
        }
        Q5_0 => {
            let p = row.add(g * 24);
            let d = rd(p);
            let qh = p.add(4).cast::<u32>().read_unaligned();
            (fifth(nibbles(p.add(8)), qh), [d, -16.0 * d, d, -16.0 * d])
        }
        Q5_1 => {
            let p = row.add(g * 28);
            let (d, m) = (rd(p), rd(p.add(4)));
            let qh = p.add(8).cast::<u32>().read_unaligned();
            (fifth(nibbles(p.add(12)), qh), [d, m, d, m])
        }
        Q4_K | Q5_K => {
            let (b, u) = (g / 8, g % 8);
            let p = row.add(b * if F == Q4_K { 152 } else { 184 });
            let s = rd(p) * f32::from(*p.add(8 + u));
            let a = -(rd(p.add(4)) * f32::from(*p.add(16 + u)));
            (k_levels::<F>(p, u), [s, a, s, a])
        }
        _ => {
            debug_assert_eq!(F, Q6_K);
            let (b, u) = (g / 8, g % 8);
            let p = row.add(b * 212);
            let d = rd(p);
            let s = d * f32::from(*p.add(4 + 2 * u) as i8);
            let s2 = d * f32::from(*p.add(5 + 2 * u) as i8);
            (k_levels::<F>(p, u), [s, -32.0 * s, s2, -32.0 * s2])
        }
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Accumulates one expanded unit against every token's activations at `at`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn acc<const N: usize>(
    w: [__m256; 4],
    xp: &[*const f32; N],
    at: usize,
    acc: &mut [__m256; N],
) {
    for n in 0..N {
        let x = xp[n].add(at);
        if N >= FMA_CHAINS_FROM {
            // Enough independent accumulators (two per token) to hide the FMA latency: fold
            // the unit straight in, four instructions per token instead of six.
            let mut a = acc[n];
            for (k, w) in w.iter().enumerate() {
                a = _mm256_fmadd_ps(*w, _mm256_loadu_ps(x.add(8 * k)), a);
            }
            acc[n] = a;
        } else {
            // Few tokens: fresh products per unit keep the dependency chain short.
            let p = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
            let p = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x.add(8)), p);
            let q = _mm256_mul_ps(w[2], _mm256_loadu_ps(x.add(16)));
            let q = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x.add(24)), q);
            acc[n] = _mm256_add_ps(acc[n], _mm256_add_ps(p, q));
        }
    }
}

/// From this many tokens per group, [`acc`] chains FMAs into the accumulators: 2 × N chains of
/// four FMAs per unit pair keep both FMA ports busy.
const FMA_CHAINS_FROM: usize = 3;

/// `N` tokens against one row: units in pairs into even and odd accumulators (so consecutive
/// units' additions overlap), constant indices only so the accumulators stay in registers.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const F: u8, const N: usize>(
    row: *const u8,
    units: usize,
    xs: &[&[f32]],
    sums: &mut [f32; MAX_GROUP],
) {
    let mut xp = [std::ptr::null::<f32>(); N];
    for (p, x) in xp.iter_mut().zip(xs) {
        *p = x.as_ptr();
    }
    let mut even = [_mm256_setzero_ps(); N];
    let mut odd = [_mm256_setzero_ps(); N];
    let mut g = 0;
    while g + 1 < units {
        acc(weights::<F>(row, g), &xp, g * QK, &mut even);
        acc(weights::<F>(row, g + 1), &xp, (g + 1) * QK, &mut odd);
        g += 2;
    }
    if g < units {
        acc(weights::<F>(row, g), &xp, g * QK, &mut even);
    }
    for n in 0..N {
        sums[n] = hsum(_mm256_add_ps(even[n], odd[n]));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn by_tokens<const F: u8>(
    row: *const u8,
    units: usize,
    xs: &[&[f32]],
    sums: &mut [f32; MAX_GROUP],
) {
    match xs.len() {
        1 => dot::<F, 1>(row, units, xs, sums),
        2 => dot::<F, 2>(row, units, xs, sums),
        3 => dot::<F, 3>(row, units, xs, sums),
        _ => dot::<F, 4>(row, units, xs, sums),
    }
}

/// `sums[i] = row · xs[i]` for up to four tokens. `xsum`, when given with a single token of a
/// quantized format, holds that token's sums over each 32 activations (16 for Q6_K, whose scales
/// cover 16 weights) and selects the factored single-token kernel.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `row` must be whole memory blocks of `format` and every
/// `xs[i]` at least as long as the row has weights.
pub unsafe fn dot_group(
    format: Format,
    row: &[u8],
    xs: &[&[f32]],
    xsum: Option<&[f32]>,
    sums: &mut [f32; MAX_GROUP],
) {
    let units = row.len() / format.mem_block_bytes() * (format.block_weights() / QK);
    debug_assert!(xs.len() <= 4 && xs.iter().all(|x| x.len() >= units * QK));
    let p = row.as_ptr();
    if let (Some(xsum), [x]) = (xsum, xs) {
        let x = x.as_ptr();
        let one = match format {
            Format::Q4_0 => Some(decode::dot1::<Q4_0>(p, units, x, xsum)),
            Format::Q4_1 => Some(decode::dot1::<Q4_1>(p, units, x, xsum)),
            Format::Q5_0 => Some(decode::dot1::<Q5_0>(p, units, x, xsum)),
            Format::Q5_1 => Some(decode::dot1::<Q5_1>(p, units, x, xsum)),
            Format::Q8_0 => Some(decode::dot1::<Q8_0>(p, units, x, xsum)),
            Format::Q4_K => Some(decode::dot1_k::<Q4_K>(p, units, x, xsum)),
            Format::Q5_K => Some(decode::dot1_k::<Q5_K>(p, units, x, xsum)),
            Format::Q6_K => Some(decode::dot1_k::<Q6_K>(p, units, x, xsum)),
            Format::F32 | Format::F16 | Format::BF16 => None,
        };
        if let Some(one) = one {
            sums[0] = one;
            return;
        }
    }
    match format {
        Format::F32 => by_tokens::<F32>(p, units, xs, sums),
        Format::F16 => by_tokens::<F16>(p, units, xs, sums),
        Format::BF16 => by_tokens::<BF16>(p, units, xs, sums),
        Format::Q4_0 => by_tokens::<Q4_0>(p, units, xs, sums),
        Format::Q4_1 => by_tokens::<Q4_1>(p, units, xs, sums),
        Format::Q5_0 => by_tokens::<Q5_0>(p, units, xs, sums),
        Format::Q5_1 => by_tokens::<Q5_1>(p, units, xs, sums),
        Format::Q8_0 => by_tokens::<Q8_0>(p, units, xs, sums),
        Format::Q4_K => by_tokens::<Q4_K>(p, units, xs, sums),
        Format::Q5_K => by_tokens::<Q5_K>(p, units, xs, sums),
        Format::Q6_K => by_tokens::<Q6_K>(p, units, xs, sums),
    }
}
