//! AVX2 kernels for K-quant rows against 8-bit activations ([`super::q8`]): a unit's 32 weights
//! become one vector of bytes (nibbles masked or shifted in place, high bits added), multiplied
//! against each token's 32 activation bytes with `vpmaddubsw`, then by the unit's scale with
//! `vpmaddwd`: integer sums per block, one float multiply-add per block and token. Up to four
//! tokens share each decoded unit. AVX-512 CPUs run these too.

// A sequence of SIMD intrinsics over raw pointers into checked buffers, as in `avx2`.
#![allow(unsafe_op_in_unsafe_fn)]

use std::arch::x86_64::*;

use super::avx2::{Q4_K, Q5_K, Q6_K, hsum, rd};
use super::dispatch::MAX_GROUP;
use super::format::{Format, QK, QK_K};
use super::q8::Q8Token;

/// Two units' 32 nibble bytes (`raw`: the first unit's 16 in the lower lane) → their 64 weights
/// in [`super::q8::weight_at`] order: the low nibbles, then the high ones.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(raw: __m256i) -> (__m256i, __m256i) {
    let m = _mm256_set1_epi8(0xF);
    (
        _mm256_and_si256(raw, m),
        _mm256_and_si256(_mm256_srli_epi16(raw, 4), m),
    )
}

/// Q5_K: adds each weight's fifth bit as 16, from the two units' `qh` words at `p` (bit `i` for
/// weight `i`). Byte `b` of a lane holds weights `8 (b % 4) + b / 4` (+ 4 in the high nibbles):
/// bit `b / 4` (`4 + b / 4`) of the unit's `qh` byte `b % 4`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fifth(lo: __m256i, hi: __m256i, p: *const u8) -> (__m256i, __m256i) {
    let words = _mm256_set1_epi64x(p.cast::<i64>().read_unaligned());
    let g = _mm256_shuffle_epi8(
        words,
        _mm256_setr_epi8(
            0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4,
            5, 6, 7,
        ),
    );
    let add = |q: __m256i, m: __m256i| {
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(g, m), m);
        _mm256_or_si256(q, _mm256_and_si256(set, _mm256_set1_epi8(16)))
    };
    let ml = _mm256_setr_epi8(
        1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8, 8, 8, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 8, 8,
        8, 8,
    );
    let mh = _mm256_setr_epi8(
        16, 16, 16, 16, 32, 32, 32, 32, 64, 64, 64, 64, -128, -128, -128, -128, 16, 16, 16, 16, 32,
        32, 32, 32, 64, 64, 64, 64, -128, -128, -128, -128,
    );
    (add(lo, ml), add(hi, mh))
}

/// Q6_K: adds two units' 2-bit high parts (crumb words at `c0` and `c1`; crumb `c` of word `j`
/// is weight `2c + j`) as multiples of 16. Byte `b = 4j + k` of a lane needs crumb byte
/// `4 (j % 2) + k`, shifted by 0 or 2 (`j < 2` or not) for the low nibbles' weights, 4 or 6
/// for the high ones'.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn crumbs(lo: __m256i, hi: __m256i, c0: *const u8, c1: *const u8) -> (__m256i, __m256i) {
    let c = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_set1_epi64x(c0.cast::<i64>().read_unaligned())),
        _mm_set1_epi64x(c1.cast::<i64>().read_unaligned()),
        1,
    );
    let g = _mm256_shuffle_epi8(
        c,
        _mm256_setr_epi8(
            0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4,
            5, 6, 7,
        ),
    );
    let add = |q: __m256i, shifts: __m256i| {
        let bits = _mm256_and_si256(_mm256_srlv_epi64(g, shifts), _mm256_set1_epi8(3));
        _mm256_or_si256(q, _mm256_slli_epi16(bits, 4))
    };
    (
        add(lo, _mm256_setr_epi64x(0, 2, 0, 2)),
        add(hi, _mm256_setr_epi64x(4, 6, 4, 6)),
    )
}

/// Byte shuffles giving unit pair `v`'s scales as i16 lanes, from 8 i16 scales in each lane:
/// `[0][v]` for Q4_K/Q5_K, one scale per unit (`v`'s first unit in the lower lane); `[1][v]` for
/// Q6_K (from the 8 scales of pairs `v & !1` and `v | 1`), two per unit, alternating per i16
/// (the unit's first 16 weights, the rest).
const SCALE_PICK: [[[u8; 32]; 4]; 2] = {
    let mut t = [[[0u8; 32]; 4]; 2];
    let mut v = 0;
    while v < 4 {
        let mut i = 0;
        while i < 32 {
            let (lane, byte) = (i / 16, i % 16);
            // Q4_K/Q5_K: the i16 scale of unit 2v + lane, in every i16 of the lane.
            t[0][v][i] = (2 * (2 * v + lane) + byte % 2) as u8;
            // Q6_K: i16 scale 4 (v % 2) + 2 lane + (i16 index % 2).
            t[1][v][i] = (2 * (4 * (v % 2) + 2 * lane + (byte / 2) % 2) + byte % 2) as u8;
            i += 1;
        }
        v += 1;
    }
    t
};

/// `N` tokens against one row of `blocks` super-blocks of format `F`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<const F: u8, const N: usize>(
    row: *const u8,
    blocks: usize,
    xs: &[Q8Token<'_>],
    sums: &mut [f32; MAX_GROUP],
) {
    let bb = match F {
        Q4_K => Format::Q4_K,
        Q5_K => Format::Q5_K,
        _ => Format::Q6_K,
    }
    .mem_block_bytes();
    let mut acc = [_mm256_setzero_ps(); N];
    for b in 0..blocks {
        let blk = row.add(b * bb);
        let d = rd(blk);
        // The scales as i16, 8 per lane: Q4_K/Q5_K's 8 in both; Q6_K's first or last 8.
        let (sc0, sc1) = if F == Q6_K {
            (
                _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64(blk.add(4).cast()))),
                _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64(blk.add(12).cast()))),
            )
        } else {
            let s =
                _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(blk.add(8).cast())));
            (s, s)
        };
        let mut sumi = [_mm256_setzero_si256(); N];
        for (v, pick) in SCALE_PICK[usize::from(F == Q6_K)].iter().enumerate() {
            let (lo, hi) = match F {
                Q4_K => nibbles(_mm256_loadu_si256(blk.add(24 + 32 * v).cast())),
                Q5_K => {
                    let (lo, hi) = nibbles(_mm256_loadu_si256(blk.add(56 + 32 * v).cast()));
                    fifth(lo, hi, blk.add(24 + 8 * v))
                }
                _ => {
                    let (u0, u1) = (blk.add(20 + 48 * v), blk.add(44 + 48 * v));
                    let (lo, hi) = nibbles(_mm256_loadu2_m128i(u1.cast(), u0.cast()));
                    crumbs(lo, hi, u0.add(16), u1.add(16))
                }
            };
            let s = _mm256_shuffle_epi8(
                if v < 2 { sc0 } else { sc1 },
                _mm256_loadu_si256(pick.as_ptr().cast()),
            );
            for n in 0..N {
                let x = xs[n].qs.as_ptr().add(b * QK_K + 2 * QK * v);
                let p = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo, _mm256_loadu_si256(x.cast())),
                    _mm256_maddubs_epi16(hi, _mm256_loadu_si256(x.add(QK).cast())),
                );
                sumi[n] = _mm256_add_epi32(sumi[n], _mm256_madd_epi16(p, s));
            }
        }
        // The per-block term from the activation sums: Q4_K/Q5_K's minimums (unit u's over
        // sums 2u and 2u + 1), Q6_K's offset of 32 (scale h's over sum h).
        let (weights, factor) = if F == Q6_K {
            (
                _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(4).cast())),
                -32.0 * d,
            )
        } else {
            let m = _mm_cvtepu8_epi16(_mm_loadl_epi64(blk.add(16).cast()));
            (
                _mm256_set_m128i(_mm_unpackhi_epi16(m, m), _mm_unpacklo_epi16(m, m)),
                -rd(blk.add(4)),
            )
        };
        for n in 0..N {
            let dx = *xs[n].d.get_unchecked(b);
            let bs = _mm256_loadu_si256(xs[n].bsums.as_ptr().add(16 * b).cast());
            let terms = _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, weights));
            acc[n] = _mm256_fmadd_ps(_mm256_set1_ps(dx * d), _mm256_cvtepi32_ps(sumi[n]), acc[n]);
            acc[n] = _mm256_fmadd_ps(_mm256_set1_ps(dx * factor), terms, acc[n]);
        }
    }
    for n in 0..N {
        sums[n] = hsum(acc[n]);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn by_tokens<const F: u8>(
    row: *const u8,
    blocks: usize,
    xs: &[Q8Token<'_>],
    sums: &mut [f32; MAX_GROUP],
) {
    match xs.len() {
        1 => dot::<F, 1>(row, blocks, xs, sums),
        2 => dot::<F, 2>(row, blocks, xs, sums),
        3 => dot::<F, 3>(row, blocks, xs, sums),
        _ => dot::<F, 4>(row, blocks, xs, sums),
    }
}

/// `sums[i] = row · xs[i]` for up to four tokens.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C; `row` must be whole memory blocks of `format` (one of
/// [`super::q8::supports`]) and every `xs[i]` hold at least as many blocks.
pub unsafe fn dot_group(
    format: Format,
    row: &[u8],
    xs: &[Q8Token<'_>],
    sums: &mut [f32; MAX_GROUP],
) {
    let blocks = row.len() / format.mem_block_bytes();
    debug_assert!(
        (1..=4).contains(&xs.len())
            && xs
                .iter()
                .all(|x| x.d.len() >= blocks && x.qs.len() >= blocks * QK_K)
    );
    let p = row.as_ptr();
    match format {
        Format::Q4_K => by_tokens::<Q4_K>(p, blocks, xs, sums),
        Format::Q5_K => by_tokens::<Q5_K>(p, blocks, xs, sums),
        Format::Q6_K => by_tokens::<Q6_K>(p, blocks, xs, sums),
        _ => unreachable!("no 8-bit kernel for {}", format.name()),
    }
}
