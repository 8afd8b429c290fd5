//! Activations rounded to 8 bits, as llama.cpp rounds them for its K-quant kernels (ggml's
//! `Q8_K`: per 256 values one f32 scale, 256 `i8`, and the sums of each 16), and the integer dot
//! products of K-quant rows with them: one `i8 × u8` multiply-add per weight instead of
//! expanding every weight to f32. Chosen per model (`Precision::Int8`); the answers are then
//! llama.cpp's on the same file rather than the dequantized model's.
//!
//! A token's values are stored per pair of 32-weight units in the order the units' nibble bytes
//! hold their weights ([`weight_at`]): the low nibbles of the first unit's 16 bytes, of the
//! second's, then the high nibbles of each, so a kernel masks or shifts 32 bytes of two units'
//! nibbles and multiplies them straight against the activations.

use super::format::{Format, QK, QK_K};

/// Memory position `p` (0..64) of a unit pair's activations → the weight (0..64, the second
/// unit's from 32) it multiplies. Nibble `k` of a unit's nibble word `j` is weight `4k + j` (see
/// `layout`), so its byte `4j + b` holds weights `8b + j` (low nibble) and `8b + 4 + j` (high).
pub(crate) const fn weight_at(p: usize) -> usize {
    let (high, unit, byte) = (p / 32, (p / 16) % 2, p % 16);
    QK * unit + 8 * (byte % 4) + byte / 4 + 4 * high
}

/// The nibble of unit-pair position `p`, from the pair's two 16-byte nibble runs.
fn nibble_at(units: [&[u8]; 2], p: usize) -> u8 {
    let b = units[(p / 16) % 2][p % 16];
    if p < 32 { b & 0xF } else { b >> 4 }
}

/// ggml's `nearest_int`: round half to even through the float adder (no libm call).
fn nearest_int(v: f32) -> i32 {
    ((v + 12582912.0).to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// Whether matrices of `format` have 8-bit-activation kernels.
pub fn supports(format: Format) -> bool {
    matches!(format, Format::Q4_K | Format::Q5_K | Format::Q6_K)
}

/// Some tokens' activations in Q8_K blocks (buffers reused from call to call).
#[derive(Default)]
pub struct Q8 {
    cols: usize,
    d: Vec<f32>,
    qs: Vec<i8>,
    bsums: Vec<i16>,
}

/// One token's blocks.
#[derive(Clone, Copy)]
pub struct Q8Token<'a> {
    /// Per block: the value one step of `qs` stands for.
    pub d: &'a [f32],
    /// Per block, per unit pair, in [`weight_at`] order.
    pub qs: &'a [i8],
    /// Per 16 consecutive values (in weight order): their `qs` sum.
    pub bsums: &'a [i16],
}

impl<'a> Q8Token<'a> {
    pub(crate) const EMPTY: Q8Token<'static> = Q8Token {
        d: &[],
        qs: &[],
        bsums: &[],
    };
}

impl Q8 {
    /// Rounds `x` (tokens of `cols` values, `cols` a multiple of 256) exactly as ggml's
    /// `quantize_row_q8_K` does.
    pub fn quantize(&mut self, x: &[f32], cols: usize) {
        debug_assert!(cols.is_multiple_of(QK_K) && x.len().is_multiple_of(cols.max(1)));
        self.cols = cols;
        let blocks = x.len() / QK_K;
        self.d.clear();
        self.qs.clear();
        self.bsums.clear();
        self.d.reserve(blocks);
        self.qs.reserve(x.len());
        self.bsums.reserve(x.len() / 16);
        for xb in x.chunks_exact(QK_K) {
            let (mut amax, mut max) = (0f32, 0f32);
            for &v in xb {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                self.d.push(0.0);
                self.qs.extend([0i8; QK_K]);
                self.bsums.extend([0i16; QK_K / 16]);
                continue;
            }
            let iscale = -127.0 / max;
            let q: [i8; QK_K] = std::array::from_fn(|i| nearest_int(iscale * xb[i]).min(127) as i8);
            for pair in q.chunks_exact(2 * QK) {
                self.qs.extend((0..2 * QK).map(|p| pair[weight_at(p)]));
            }
            self.bsums.extend(
                q.chunks_exact(16)
                    .map(|s| s.iter().map(|&v| i16::from(v)).sum::<i16>()),
            );
            self.d.push(1.0 / iscale);
        }
    }

    /// How many tokens it holds.
    pub fn tokens(&self) -> usize {
        self.qs.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Token `t`'s blocks.
    pub fn token(&self, t: usize) -> Q8Token<'_> {
        let (c, b) = (self.cols, self.cols / QK_K);
        Q8Token {
            d: &self.d[t * b..(t + 1) * b],
            qs: &self.qs[t * c..(t + 1) * c],
            bsums: &self.bsums[t * c / 16..(t + 1) * c / 16],
        }
    }
}

fn f(b: &[u8], i: usize) -> f32 {
    f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Unit `u`'s 16 nibble bytes in a memory block.
fn nibs(format: Format, block: &[u8], u: usize) -> &[u8] {
    match format {
        Format::Q4_K => &block[24 + 16 * u..],
        Format::Q5_K => &block[56 + 16 * u..],
        _ => &block[20 + 24 * u..],
    }
}

/// The high bits of unit `u`'s weight `i` (Q5_K: one, Q6_K: two; Q4_K: none).
fn high(format: Format, block: &[u8], u: usize, i: usize) -> i32 {
    match format {
        Format::Q5_K => ((u32_at(block, 24 + 4 * u) >> i) & 1) as i32,
        Format::Q6_K => {
            let word = u32_at(block, 20 + 24 * u + 16 + 4 * (i % 2));
            ((word >> (2 * (i / 2))) & 3) as i32
        }
        _ => 0,
    }
}

/// The portable kernel, what the SIMD one is tested against: `row · x` for a row of whole
/// memory blocks of `format` (one of [`supports`]), integer sums per block, scaled as
/// llama.cpp's AVX2 kernels scale them.
pub fn dot(format: Format, row: &[u8], x: Q8Token<'_>) -> f32 {
    let bb = format.mem_block_bytes();
    let mut total = 0f32;
    for (b, block) in row.chunks_exact(bb).enumerate() {
        let dx = x.d[b];
        let qs = &x.qs[b * QK_K..(b + 1) * QK_K];
        let bs = &x.bsums[b * 16..(b + 1) * 16];
        let d = f(block, 0);
        assert!(supports(format), "no 8-bit kernel for {}", format.name());
        // Per unit and half unit (16 weights): the integer sum of weights × activations.
        let mut s = [[0i32; 2]; 8];
        for v in 0..4 {
            let units = [nibs(format, block, 2 * v), nibs(format, block, 2 * v + 1)];
            for p in 0..2 * QK {
                let w = weight_at(p);
                let (u, i) = (2 * v + w / QK, w % QK);
                let q = i32::from(nibble_at(units, p)) | high(format, block, u, i) << 4;
                s[u][i / 16] += q * i32::from(qs[2 * QK * v + p]);
            }
        }
        if format == Format::Q6_K {
            let sc = |h: usize| i32::from(block[4 + h] as i8);
            let sumi: i32 = (0..16).map(|h| sc(h) * s[h / 2][h % 2]).sum();
            let offset: i32 = (0..16).map(|h| sc(h) * i32::from(bs[h])).sum();
            total += (dx * d) * sumi as f32 + (-32.0 * dx * d) * offset as f32;
        } else {
            let dmin = f(block, 4);
            let (mut sumi, mut summ) = (0i32, 0i32);
            for (u, s) in s.iter().enumerate() {
                sumi += i32::from(block[8 + u]) * (s[0] + s[1]);
                summ +=
                    i32::from(block[16 + u]) * (i32::from(bs[2 * u]) + i32::from(bs[2 * u + 1]));
            }
            total += (dx * d) * sumi as f32 + (-dx * dmin) * summ as f32;
        }
    }
    total
}
