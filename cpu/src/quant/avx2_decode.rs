//! The AVX2 single-token (decode) kernels: one token against a row of a quantized format with
//! each unit's scale factored out, `Σ w·x = s Σ q·x + a Σ x`, where `Σ x` per 32 activations
//! (`xsum`) is computed once per call for all rows. That saves the four multiply-adds per 32
//! weights that expand them, the decode step's largest cost (the weights are read once per
//! token, so nothing amortises the expansion).

// As in `avx2`: sequences of SIMD intrinsics over raw pointers into checked buffers.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::avx2::{Q4_K, Q5_K, Q6_K, hsum, k_levels, levels};
use super::format::QK;

/// One token against one row of a 32-block format.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot1<const F: u8>(
    row: *const u8,
    units: usize,
    x: *const f32,
    xsum: &[f32],
) -> f32 {
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let (mut off_even, mut off_odd) = (0f32, 0f32);
    let mut g = 0;
    while g + 1 < units {
        unit1::<F>(row, g, x, xsum, &mut even, &mut off_even);
        unit1::<F>(row, g + 1, x, xsum, &mut odd, &mut off_odd);
        g += 2;
    }
    if g < units {
        unit1::<F>(row, g, x, xsum, &mut even, &mut off_even);
    }
    hsum(_mm256_add_ps(even, odd)) + (off_even + off_odd)
}

/// Unit `g` of [`dot1`].
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unit1<const F: u8>(
    row: *const u8,
    g: usize,
    x: *const f32,
    xsum: &[f32],
    acc: &mut __m256,
    off: &mut f32,
) {
    // One scale per unit: the K-quants go through `dot1_k`.
    debug_assert!(F != Q4_K && F != Q5_K && F != Q6_K);
    let (q, [s, a, _, _]) = levels::<F>(row, g);
    let x = x.add(g * QK);
    let p = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), _mm256_loadu_ps(x));
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), _mm256_loadu_ps(x.add(8)), p);
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), _mm256_loadu_ps(x.add(16)), p);
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), _mm256_loadu_ps(x.add(24)), p);
    *acc = _mm256_fmadd_ps(p, _mm256_set1_ps(s), *acc);
    *off += a * xsum[g];
}

/// One token against one row of a K-quant format, a super-block at a time: its eight (Q6_K:
/// sixteen) scales are converted together into vectors, each unit's taken by a lane permute, and
/// the minimums (Q6_K: the `- 32` offsets) meet the activation sums in one multiply-add per
/// eight scales.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn dot1_k<const F: u8>(
    row: *const u8,
    units: usize,
    x: *const f32,
    xsum: &[f32],
) -> f32 {
    let bb = match F {
        Q4_K => 152,
        Q6_K => 212,
        _ => 184,
    };
    let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut off = _mm256_setzero_ps();
    let sums_per_unit = if F == Q6_K { 2 } else { 1 };
    assert!(xsum.len() >= units * sums_per_unit);
    for b in 0..units / 8 {
        let p = row.add(b * bb);
        let d = _mm256_set1_ps(p.cast::<f32>().read_unaligned());
        let xb = x.add(b * 8 * QK);
        if F == Q6_K {
            let sc = _mm_loadu_si128(p.add(4).cast());
            let lo = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
            let hi = _mm256_mul_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))),
            );
            off = _mm256_fmadd_ps(lo, _mm256_loadu_ps(xsum.as_ptr().add(16 * b)), off);
            off = _mm256_fmadd_ps(hi, _mm256_loadu_ps(xsum.as_ptr().add(16 * b + 8)), off);
            // Unit u's scales are 2u and 2u + 1 of the sixteen.
            for u in (0..8).step_by(2) {
                let v = if u < 4 { lo } else { hi };
                let i = (2 * u % 8) as i32;
                unit_k6(k_levels::<F>(p, u), xb.add(u * QK), v, i, &mut even);
                unit_k6(
                    k_levels::<F>(p, u + 1),
                    xb.add((u + 1) * QK),
                    v,
                    i + 2,
                    &mut odd,
                );
            }
        } else {
            let s = _mm256_mul_ps(
                d,
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(8).cast()))),
            );
            let dmin = _mm256_set1_ps(p.add(4).cast::<f32>().read_unaligned());
            let m = _mm256_mul_ps(
                dmin,
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.add(16).cast()))),
            );
            off = _mm256_fmadd_ps(m, _mm256_loadu_ps(xsum.as_ptr().add(8 * b)), off);
            for u in (0..8).step_by(2) {
                unit_k(k_levels::<F>(p, u), xb.add(u * QK), s, u as i32, &mut even);
                unit_k(
                    k_levels::<F>(p, u + 1),
                    xb.add((u + 1) * QK),
                    s,
                    u as i32 + 1,
                    &mut odd,
                );
            }
        }
    }
    let off = if F == Q6_K {
        32.0 * hsum(off)
    } else {
        hsum(off)
    };
    hsum(_mm256_add_ps(even, odd)) - off
}

/// `acc += s[lane] · Σ q·x` over one unit.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unit_k(q: [__m256i; 4], x: *const f32, s: __m256, lane: i32, acc: &mut __m256) {
    let p = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), _mm256_loadu_ps(x));
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), _mm256_loadu_ps(x.add(8)), p);
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[2]), _mm256_loadu_ps(x.add(16)), p);
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), _mm256_loadu_ps(x.add(24)), p);
    let s = _mm256_permutevar8x32_ps(s, _mm256_set1_epi32(lane));
    *acc = _mm256_fmadd_ps(p, s, *acc);
}

/// `acc += s[lane] · Σ q·x` over a Q6_K unit's first sixteen weights and `s[lane + 1] · …`
/// over its second.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn unit_k6(q: [__m256i; 4], x: *const f32, s: __m256, lane: i32, acc: &mut __m256) {
    let p = _mm256_mul_ps(_mm256_cvtepi32_ps(q[0]), _mm256_loadu_ps(x));
    let p = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[1]), _mm256_loadu_ps(x.add(8)), p);
    let r = _mm256_mul_ps(_mm256_cvtepi32_ps(q[2]), _mm256_loadu_ps(x.add(16)));
    let r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q[3]), _mm256_loadu_ps(x.add(24)), r);
    let s0 = _mm256_permutevar8x32_ps(s, _mm256_set1_epi32(lane));
    let s1 = _mm256_permutevar8x32_ps(s, _mm256_set1_epi32(lane + 1));
    *acc = _mm256_fmadd_ps(p, s0, *acc);
    *acc = _mm256_fmadd_ps(r, s1, *acc);
}
