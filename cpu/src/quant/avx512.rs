//! AVX-512F kernels: the AVX2 scheme sixteen lanes wide. A 32-weight unit is two vectors, the
//! fifth bits of Q5 formats are applied straight from mask registers, and up to eight tokens
//! share each expanded unit. Only AVX-512F is required (no BW/VL), so every AVX-512 CPU runs it.

// Every function here is a sequence of SIMD intrinsics over raw pointers into checked buffers;
// marking each expression unsafe would only add noise.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::dispatch::MAX_GROUP;
use super::format::{Format, QK};

const F32: u8 = Format::F32 as u8;
const F16: u8 = Format::F16 as u8;
const BF16: u8 = Format::BF16 as u8;
const Q4_0: u8 = Format::Q4_0 as u8;
const Q4_1: u8 = Format::Q4_1 as u8;
const Q5_0: u8 = Format::Q5_0 as u8;
const Q5_1: u8 = Format::Q5_1 as u8;
const Q8_0: u8 = Format::Q8_0 as u8;
const Q4_K: u8 = Format::Q4_K as u8;
const Q5_K: u8 = Format::Q5_K as u8;
const Q6_K: u8 = Format::Q6_K as u8;

#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn rd(p: *const u8) -> f32 {
    p.cast::<f32>().read_unaligned()
}

/// A unit's nibble words → weights `16t..16t+16` in vector `t`, as u32 lanes.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn nibbles(p: *const u8) -> [__m512i; 2] {
    let b = _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast()));
    let m = _mm512_set1_epi32(0xF);
    [
        _mm512_and_si512(
            _mm512_srlv_epi32(
                b,
                _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12),
            ),
            m,
        ),
        _mm512_and_si512(
            _mm512_srlv_epi32(
                b,
                _mm512_setr_epi32(
                    16, 16, 16, 16, 20, 20, 20, 20, 24, 24, 24, 24, 28, 28, 28, 28,
                ),
            ),
            m,
        ),
    ]
}

/// Adds each weight's fifth bit (`qh` bit `i` for weight `i`) as 16, the bits serving directly
/// as lane masks.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn fifth(q: [__m512i; 2], qh: u32) -> [__m512i; 2] {
    let sixteen = _mm512_set1_epi32(16);
    [
        _mm512_mask_or_epi32(q[0], qh as u16, q[0], sixteen),
        _mm512_mask_or_epi32(q[1], (qh >> 16) as u16, q[1], sixteen),
    ]
}

/// Adds a Q6_K unit's 2-bit high parts (its crumb words at `p`) as multiples of 16.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn crumbs(q: [__m512i; 2], p: *const u8) -> [__m512i; 2] {
    let c = _mm512_set1_epi64(p.cast::<i64>().read_unaligned());
    let three = _mm512_set1_epi32(3);
    let s0 = _mm512_setr_epi32(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14);
    let s1 = _mm512_setr_epi32(
        16, 16, 18, 18, 20, 20, 22, 22, 24, 24, 26, 26, 28, 28, 30, 30,
    );
    let b0 = _mm512_and_si512(_mm512_srlv_epi32(c, s0), three);
    let b1 = _mm512_and_si512(_mm512_srlv_epi32(c, s1), three);
    [
        _mm512_or_si512(q[0], _mm512_slli_epi32(b0, 4)),
        _mm512_or_si512(q[1], _mm512_slli_epi32(b1, 4)),
    ]
}

/// `q * s + a` for the first sixteen weights, `q * s2 + a2` for the second.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn scale(q: [__m512i; 2], s: f32, a: f32, s2: f32, a2: f32) -> [__m512; 2] {
    [
        _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(q[0]),
            _mm512_set1_ps(s),
            _mm512_set1_ps(a),
        ),
        _mm512_fmadd_ps(
            _mm512_cvtepi32_ps(q[1]),
            _mm512_set1_ps(s2),
            _mm512_set1_ps(a2),
        ),
    ]
}

/// Sixteen bfloat16 → f32.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn bf16x16(p: *const __m256i) -> __m512 {
    _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(p)),
        16,
    ))
}

/// Sixteen i8 at `q`, times `d`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn i8x16(q: *const u8, d: __m512) -> __m512 {
    let v = _mm512_cvtepi8_epi32(_mm_loadu_si128(q.cast()));
    _mm512_mul_ps(_mm512_cvtepi32_ps(v), d)
}

/// Unit `g` of a row (weights `32g..32g+32`) as f32; as `avx2::weights`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn weights<const F: u8>(row: *const u8, g: usize) -> [__m512; 2] {
    match F {
        F32 => {
            let p = row.add(g * 128).cast::<f32>();
            [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))]
        }
        F16 => {
            let p = row.add(g * 64).cast::<__m256i>();
            [
                _mm512_cvtph_ps(_mm256_loadu_si256(p)),
                _mm512_cvtph_ps(_mm256_loadu_si256(p.add(1))),
            ]
        }
        BF16 => {
            let p = row.add(g * 64).cast::<__m256i>();
            [bf16x16(p), bf16x16(p.add(1))]
        }
        Q8_0 => {
            let p = row.add(g * 36);
            let d = _mm512_set1_ps(rd(p));
            [i8x16(p.add(4), d), i8x16(p.add(20), d)]
        }
        Q4_0 => {
            let p = row.add(g * 20);
            let d = rd(p);
            scale(nibbles(p.add(4)), d, -8.0 * d, d, -8.0 * d)
        }
        Q4_1 => {
            let p = row.add(g * 24);
            let (d, m) = (rd(p), rd(p.add(4)));
            scale(nibbles(p.add(8)), d, m, d, m)
        }
        Q5_0 => {
            let p = row.add(g * 24);
            let d = rd(p);
            let qh = p.add(4).cast::<u32>().read_unaligned();
            scale(fifth(nibbles(p.add(8)), qh), d, -16.0 * d, d, -16.0 * d)
        }
        Q5_1 => {
            let p = row.add(g * 28);
            let (d, m) = (rd(p), rd(p.add(4)));
            let qh = p.add(8).cast::<u32>().read_unaligned();
            scale(fifth(nibbles(p.add(12)), qh), d, m, d, m)
        }
        Q4_K | Q5_K => {
            let (b, u) = (g / 8, g % 8);
            let p = row.add(b * if F == Q4_K { 152 } else { 184 });
            let s = rd(p) * f32::from(*p.add(8 + u));
            let a = -(rd(p.add(4)) * f32::from(*p.add(16 + u)));
            let q = if F == Q4_K {
                nibbles(p.add(24 + 16 * u))
            } else {
                let qh = p.add(24 + 4 * u).cast::<u32>().read_unaligned();
                fifth(nibbles(p.add(56 + 16 * u)), qh)
            };
            scale(q, s, a, s, a)
        }
        _ => {
            debug_assert_eq!(F, Q6_K);
            let (b, u) = (g / 8, g % 8);
            let p = row.add(b * 212);
            let d = rd(p);
            let s = d * f32::from(*p.add(4 + 2 * u) as i8);
            let s2 = d * f32::from(*p.add(5 + 2 * u) as i8);
            let unit = p.add(20 + 24 * u);
            let q = crumbs(nibbles(unit), unit.add(16));
            scale(q, s, -32.0 * s, s2, -32.0 * s2)
        }
    }
}

/// Accumulates one expanded unit against every token's activations at `at`.
#[inline]
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
unsafe fn acc<const N: usize>(
    w: [__m512; 2],
    xp: &[*const f32; N],
    at: usize,
    acc: &mut [__m512; N],
) {
    for n in 0..N {
        let x = xp[n].add(at);
        if N >= FMA_CHAINS_FROM {
            // Enough independent accumulators (two per token) to hide the FMA latency: fold
            // the unit straight in, two instructions per token instead of three.
            acc[n] = _mm512_fmadd_ps(w[0], _mm512_loadu_ps(x), acc[n]);
            acc[n] = _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x.add(16)), acc[n]);
        } else {
            // Few tokens: a fresh product per unit keeps the dependency chain one add long.
            let p = _mm512_mul_ps(w[0], _mm512_loadu_ps(x));
            acc[n] = _mm512_add_ps(acc[n], _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x.add(16)), p));
        }
    }
}

/// From this many tokens per group, [`acc`] chains FMAs into the accumulators: 2 × N chains of
/// two FMAs per unit pair keep both FMA ports busy.
const FMA_CHAINS_FROM: usize = 4;

/// `N` tokens against one row; as `avx2::dot`.
#[target_feature(enable = "avx512f,avx2,fma,f16c")]
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
    let mut even = [_mm512_setzero_ps(); N];
    let mut odd = [_mm512_setzero_ps(); N];
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
        sums[n] = _mm512_reduce_add_ps(_mm512_add_ps(even[n], odd[n]));
    }
}

#[target_feature(enable = "avx512f,avx2,fma,f16c")]
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
        4 => dot::<F, 4>(row, units, xs, sums),
        5 => dot::<F, 5>(row, units, xs, sums),
        6 => dot::<F, 6>(row, units, xs, sums),
        7 => dot::<F, 7>(row, units, xs, sums),
        _ => dot::<F, 8>(row, units, xs, sums),
    }
}

/// `sums[i] = row · xs[i]` for up to eight tokens.
///
/// # Safety
/// The CPU must have AVX-512F, AVX2, FMA and F16C; `row` must be whole memory blocks of `format`
/// and every `xs[i]` at least as long as the row has weights.
pub unsafe fn dot_group(format: Format, row: &[u8], xs: &[&[f32]], sums: &mut [f32; MAX_GROUP]) {
    let units = row.len() / format.mem_block_bytes() * (format.block_weights() / QK);
    debug_assert!(xs.len() <= 8 && xs.iter().all(|x| x.len() >= units * QK));
    let p = row.as_ptr();
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
