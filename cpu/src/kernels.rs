//! Weight matrices as the GGUF file stores them, and the one operation the model needs of them:
//! `out[t][r] = row r · x[t]` for a few tokens `t`, with f32 activations.
//!
//! Rows stay in their file blocks (32 weights each: Q4_0, Q4_1, Q8_0, F16, F32) and are expanded
//! to f32 in registers, block by block, so a token reads each weight byte once and the numerics
//! are those of the dequantized f32 model (the activations are never quantized). With AVX2+FMA
//! (chosen at compile time, like candle's kernels) a block is 4 vectors of 8; elsewhere a scalar
//! loop computes the same sums. Up to [`GROUP`] tokens share each expanded block.

use half::f16;

/// Weights per block in every supported format.
pub const QK: usize = 32;
/// Tokens that share one pass over a row: as many as the vector registers hold accumulators for
/// (two per token).
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "f16c"
))]
pub const GROUP: usize = 8;
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "f16c"
)))]
pub const GROUP: usize = 4;

/// Storage format of a matrix's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    F32,
    F16,
    /// f16 scale `d`, 16 bytes of nibbles: `w = d * (q - 8)`.
    Q4_0,
    /// f16 scale `d`, f16 minimum `m`, 16 bytes of nibbles: `w = d * q + m`.
    Q4_1,
    /// f16 scale `d`, 32 signed bytes: `w = d * q`.
    Q8_0,
}

impl Format {
    /// The format of a ggml type id, where this engine keeps it compact.
    pub fn from_ggml_type(id: u32) -> Option<Format> {
        Some(match id {
            0 => Format::F32,
            1 => Format::F16,
            2 => Format::Q4_0,
            3 => Format::Q4_1,
            8 => Format::Q8_0,
            _ => return None,
        })
    }

    /// Weights per block.
    pub const fn block_weights(self) -> usize {
        QK
    }

    /// Bytes of `elements` weights in the file; `None` unless whole blocks (or on overflow).
    pub fn file_bytes(self, elements: usize) -> Option<usize> {
        if !elements.is_multiple_of(self.block_weights()) {
            return None;
        }
        (elements / self.block_weights()).checked_mul(self.file_block_bytes())
    }

    /// The name llama.cpp gives the format.
    pub const fn name(self) -> &'static str {
        match self {
            Format::F32 => "F32",
            Format::F16 => "F16",
            Format::Q4_0 => "Q4_0",
            Format::Q4_1 => "Q4_1",
            Format::Q8_0 => "Q8_0",
        }
    }

    /// Bytes of one block of [`QK`] weights in the file.
    pub const fn file_block_bytes(self) -> usize {
        match self {
            Format::F32 => 4 * QK,
            Format::F16 => 2 * QK,
            Format::Q4_0 => 2 + QK / 2,
            Format::Q4_1 => 4 + QK / 2,
            Format::Q8_0 => 2 + QK,
        }
    }

    /// Bytes of one block in memory: the file block with its f16 scales widened to f32 at load,
    /// so the kernels broadcast them straight from memory instead of converting every time.
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::F32 | Format::F16 => self.file_block_bytes(),
            Format::Q4_0 | Format::Q8_0 => self.file_block_bytes() + 2,
            Format::Q4_1 => self.file_block_bytes() + 4,
        }
    }

    /// Bytes of f16 scales at the start of a file block.
    const fn scale_bytes(self) -> usize {
        match self {
            Format::F32 | Format::F16 => 0,
            Format::Q4_0 | Format::Q8_0 => 2,
            Format::Q4_1 => 4,
        }
    }
}

/// A `rows × cols` weight matrix, row-major, rows in `format` blocks.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    format: Format,
    data: Vec<u8>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix({}x{} {:?})", self.rows, self.cols, self.format)
    }
}

impl Matrix {
    /// Takes file bytes. `cols` must be a multiple of [`QK`] and `data` exactly the matrix.
    pub fn new(rows: usize, cols: usize, format: Format, data: Vec<u8>) -> Result<Self, String> {
        if !cols.is_multiple_of(QK) {
            return Err(format!("{cols} columns is not a multiple of {QK}"));
        }
        let want = rows * cols / QK * format.file_block_bytes();
        if data.len() != want {
            return Err(format!(
                "{rows}x{cols} {format:?} needs {want} bytes, got {}",
                data.len()
            ));
        }
        let data = if format.scale_bytes() == 0 {
            data
        } else {
            let sb = format.scale_bytes();
            let mut wide = Vec::with_capacity(rows * cols / QK * format.block_bytes());
            for block in data.chunks_exact(format.file_block_bytes()) {
                for s in block[..sb].chunks_exact(2) {
                    wide.extend(f16::from_le_bytes([s[0], s[1]]).to_f32().to_le_bytes());
                }
                wide.extend_from_slice(&block[sb..]);
            }
            wide
        };
        Ok(Matrix {
            rows,
            cols,
            format,
            data,
        })
    }

    /// An f32 matrix from values.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(rows, cols, Format::F32, data)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn row_bytes(&self) -> usize {
        self.cols / QK * self.format.block_bytes()
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 (an embedding lookup).
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let row = self.row(r);
        let bb = self.format.block_bytes();
        for (b, chunk) in out[..self.cols].chunks_exact_mut(QK).enumerate() {
            // `chunks_exact_mut(QK)` yields slices of exactly QK elements, so this cannot fail.
            let block: &mut [f32; QK] = chunk.try_into().expect("chunks of QK");
            scalar::expand(self.format, &row[b * bb..(b + 1) * bb], block);
        }
    }

    /// For each of the `x.len() / cols` tokens `t` and each row `r` in `rows`:
    /// `out[t * out_stride + r] = row r · x[t]`.
    ///
    /// # Safety
    /// `out` must be valid for writes at every such index, and no other thread may touch those
    /// elements meanwhile (callers split `rows` between threads over one shared output).
    pub unsafe fn mul_rows(
        &self,
        rows: std::ops::Range<usize>,
        x: &[f32],
        out: *mut f32,
        out_stride: usize,
    ) {
        let tokens = x.len() / self.cols;
        let xs: Vec<&[f32]> = x.chunks_exact(self.cols).collect();
        debug_assert_eq!(tokens * self.cols, x.len());
        for r in rows {
            let row = self.row(r);
            for (g, group) in xs.chunks(GROUP).enumerate() {
                let mut sums = [0f32; GROUP];
                dot_group(self.format, row, group, &mut sums);
                for (i, s) in sums.iter().take(group.len()).enumerate() {
                    let t = g * GROUP + i;
                    // SAFETY: in bounds and exclusive by the caller's contract.
                    unsafe { *out.add(t * out_stride + r) = *s };
                }
            }
        }
    }
}

/// `sums[i] = row · xs[i]` for up to [`GROUP`] tokens: AVX-512 where the build targets it, else
/// AVX2, else the scalar loop.
fn dot_group(format: Format, row: &[u8], xs: &[&[f32]], sums: &mut [f32; GROUP]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "f16c"
    ))]
    // SAFETY: the target features are enabled at compile time; lengths are checked by
    // `Matrix::new` (whole blocks) and the callers (xs rows of `cols`).
    unsafe {
        match xs.len() {
            1 => avx512::dot::<1>(format, row, xs, sums),
            2 => avx512::dot::<2>(format, row, xs, sums),
            3 => avx512::dot::<3>(format, row, xs, sums),
            4 => avx512::dot::<4>(format, row, xs, sums),
            5 => avx512::dot::<5>(format, row, xs, sums),
            6 => avx512::dot::<6>(format, row, xs, sums),
            7 => avx512::dot::<7>(format, row, xs, sums),
            _ => avx512::dot::<8>(format, row, xs, sums),
        }
    }
    #[cfg(all(
        target_arch = "x86_64",
        not(target_feature = "avx512f"),
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    // SAFETY: as above.
    unsafe {
        match xs.len() {
            1 => avx::dot::<1>(format, row, xs, sums),
            2 => avx::dot::<2>(format, row, xs, sums),
            3 => avx::dot::<3>(format, row, xs, sums),
            _ => avx::dot::<4>(format, row, xs, sums),
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    )))]
    scalar::dot(format, row, xs, sums);
}

/// The row-dot driver both SIMD widths share: blocks in pairs into even and odd accumulators (so
/// consecutive blocks' additions overlap), `N` tokens unrolled, constant indices only so the
/// accumulators stay in registers. The invoking module provides `expand` (a block as vectors),
/// `block` (accumulate one expanded block for every token) and the vector operations named here.
#[allow(unused_macros)] // unused where neither SIMD module is built
macro_rules! row_dot {
    ($zero:path, $add:path, $sum:path) => {
        /// `sums[i] = row · xs[i]` for `N` tokens.
        #[inline(always)]
        pub unsafe fn dot<const N: usize>(
            format: Format,
            row: &[u8],
            xs: &[&[f32]],
            sums: &mut [f32; GROUP],
        ) {
            let bb = format.block_bytes();
            let blocks = row.len() / bb;
            let mut even = [$zero(); N];
            let mut odd = [$zero(); N];
            let xp: [*const f32; N] = std::array::from_fn(|i| xs[i].as_ptr());
            let base = row.as_ptr();
            let mut b = 0;
            while b + 1 < blocks {
                block(expand(format, base.add(b * bb)), &xp, b * QK, &mut even);
                block(
                    expand(format, base.add((b + 1) * bb)),
                    &xp,
                    (b + 1) * QK,
                    &mut odd,
                );
                b += 2;
            }
            if b < blocks {
                block(expand(format, base.add(b * bb)), &xp, b * QK, &mut even);
            }
            for n in 0..N {
                sums[n] = $sum($add(even[n], odd[n]));
            }
        }
    };
}

/// The portable reference: expand a block to f32, multiply, add.
pub mod scalar {
    use super::*;

    pub fn expand(format: Format, b: &[u8], out: &mut [f32; QK]) {
        let h = |i: usize| f16::from_le_bytes([b[i], b[i + 1]]).to_f32();
        let f = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        match format {
            Format::F32 => {
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            Format::F16 => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = h(2 * i);
                }
            }
            Format::Q4_0 => {
                let d = f(0);
                for j in 0..QK / 2 {
                    out[j] = d * (f32::from(b[4 + j] & 0x0F) - 8.0);
                    out[j + QK / 2] = d * (f32::from(b[4 + j] >> 4) - 8.0);
                }
            }
            Format::Q4_1 => {
                let (d, m) = (f(0), f(4));
                for j in 0..QK / 2 {
                    out[j] = d * f32::from(b[8 + j] & 0x0F) + m;
                    out[j + QK / 2] = d * f32::from(b[8 + j] >> 4) + m;
                }
            }
            Format::Q8_0 => {
                let d = f(0);
                for (j, o) in out.iter_mut().enumerate() {
                    *o = d * f32::from(b[4 + j] as i8);
                }
            }
        }
    }

    #[allow(dead_code)] // the kernel on machines without AVX2; the tests' reference everywhere
    pub fn dot(format: Format, row: &[u8], xs: &[&[f32]], sums: &mut [f32; GROUP]) {
        let bb = format.block_bytes();
        let mut w = [0f32; QK];
        *sums = [0.0; GROUP];
        for (b, block) in row.chunks_exact(bb).enumerate() {
            expand(format, block, &mut w);
            for (s, x) in sums.iter_mut().zip(xs) {
                let x = &x[b * QK..(b + 1) * QK];
                *s += w.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
            }
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    not(target_feature = "avx512f"),
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
#[allow(unsafe_op_in_unsafe_fn)] // every function here is one unsafe SIMD expression
mod avx {
    use super::*;
    use std::arch::x86_64::*;

    /// A block's f32 scale, broadcast.
    #[inline(always)]
    unsafe fn h(p: *const u8) -> __m256 {
        _mm256_set1_ps(p.cast::<f32>().read_unaligned())
    }

    /// 16 bytes of nibbles → weights 0..15 (low nibbles) and 16..31 (high), as u8 lanes.
    #[inline(always)]
    unsafe fn nibbles(p: *const u8) -> (__m128i, __m128i) {
        let q = unsafe { _mm_loadu_si128(p.cast()) };
        let mask = _mm_set1_epi8(0x0F);
        (
            _mm_and_si128(q, mask),
            _mm_and_si128(_mm_srli_epi16(q, 4), mask),
        )
    }

    #[inline(always)]
    unsafe fn u8x8(v: __m128i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    /// One block as four vectors of eight f32 weights.
    #[inline(always)]
    unsafe fn expand(format: Format, p: *const u8) -> [__m256; 4] {
        unsafe {
            match format {
                Format::F32 => {
                    let f = p.cast::<f32>();
                    [
                        _mm256_loadu_ps(f),
                        _mm256_loadu_ps(f.add(8)),
                        _mm256_loadu_ps(f.add(16)),
                        _mm256_loadu_ps(f.add(24)),
                    ]
                }
                Format::F16 => {
                    let f = p.cast::<__m128i>();
                    [
                        _mm256_cvtph_ps(_mm_loadu_si128(f)),
                        _mm256_cvtph_ps(_mm_loadu_si128(f.add(1))),
                        _mm256_cvtph_ps(_mm_loadu_si128(f.add(2))),
                        _mm256_cvtph_ps(_mm_loadu_si128(f.add(3))),
                    ]
                }
                Format::Q4_0 | Format::Q4_1 => {
                    let (d, m, qs) = if format == Format::Q4_0 {
                        let d = h(p);
                        (d, _mm256_mul_ps(d, _mm256_set1_ps(-8.0)), p.add(4))
                    } else {
                        (h(p), h(p.add(4)), p.add(8))
                    };
                    let (lo, hi) = nibbles(qs);
                    [
                        _mm256_fmadd_ps(u8x8(lo), d, m),
                        _mm256_fmadd_ps(u8x8(_mm_srli_si128(lo, 8)), d, m),
                        _mm256_fmadd_ps(u8x8(hi), d, m),
                        _mm256_fmadd_ps(u8x8(_mm_srli_si128(hi, 8)), d, m),
                    ]
                }
                Format::Q8_0 => {
                    let d = h(p);
                    let q = p.add(4);
                    let i8x8 = |o: usize| {
                        let v = _mm_loadl_epi64(q.add(o).cast());
                        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), d)
                    };
                    [i8x8(0), i8x8(8), i8x8(16), i8x8(24)]
                }
            }
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    #[inline(always)]
    unsafe fn block<const N: usize>(
        w: [__m256; 4],
        xp: &[*const f32; N],
        at: usize,
        acc: &mut [__m256; N],
    ) {
        for n in 0..N {
            let x = xp[n].add(at);
            let p = _mm256_mul_ps(w[0], _mm256_loadu_ps(x));
            let p = _mm256_fmadd_ps(w[1], _mm256_loadu_ps(x.add(8)), p);
            let q = _mm256_mul_ps(w[2], _mm256_loadu_ps(x.add(16)));
            let q = _mm256_fmadd_ps(w[3], _mm256_loadu_ps(x.add(24)), q);
            acc[n] = _mm256_add_ps(acc[n], _mm256_add_ps(p, q));
        }
    }

    row_dot!(_mm256_setzero_ps, _mm256_add_ps, hsum);
}

/// The same kernel sixteen lanes wide: a block is two vectors, and 16 nibbles widen to 16 lanes
/// in one instruction.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "f16c"
))]
#[allow(unsafe_op_in_unsafe_fn)] // every function here is one unsafe SIMD expression
mod avx512 {
    use super::*;
    use std::arch::x86_64::*;

    /// A block's f32 scale, broadcast.
    #[inline(always)]
    unsafe fn h(p: *const u8) -> __m512 {
        _mm512_set1_ps(p.cast::<f32>().read_unaligned())
    }

    #[inline(always)]
    unsafe fn u8x16(v: __m128i) -> __m512 {
        _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v))
    }

    /// One block as two vectors of sixteen f32 weights.
    #[inline(always)]
    unsafe fn expand(format: Format, p: *const u8) -> [__m512; 2] {
        match format {
            Format::F32 => {
                let f = p.cast::<f32>();
                [_mm512_loadu_ps(f), _mm512_loadu_ps(f.add(16))]
            }
            Format::F16 => {
                let f = p.cast::<__m256i>();
                [
                    _mm512_cvtph_ps(_mm256_loadu_si256(f)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(f.add(1))),
                ]
            }
            Format::Q4_0 | Format::Q4_1 => {
                let (d, m, qs) = if format == Format::Q4_0 {
                    let d = h(p);
                    (d, _mm512_mul_ps(d, _mm512_set1_ps(-8.0)), p.add(4))
                } else {
                    (h(p), h(p.add(4)), p.add(8))
                };
                let q = _mm_loadu_si128(qs.cast());
                let mask = _mm_set1_epi8(0x0F);
                let lo = _mm_and_si128(q, mask);
                let hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
                [
                    _mm512_fmadd_ps(u8x16(lo), d, m),
                    _mm512_fmadd_ps(u8x16(hi), d, m),
                ]
            }
            Format::Q8_0 => {
                let d = h(p);
                let q = p.add(4).cast::<__m128i>();
                [
                    _mm512_mul_ps(
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q))),
                        d,
                    ),
                    _mm512_mul_ps(
                        _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(q.add(1)))),
                        d,
                    ),
                ]
            }
        }
    }

    #[inline(always)]
    unsafe fn block<const N: usize>(
        w: [__m512; 2],
        xp: &[*const f32; N],
        at: usize,
        acc: &mut [__m512; N],
    ) {
        for n in 0..N {
            let x = xp[n].add(at);
            let p = _mm512_mul_ps(w[0], _mm512_loadu_ps(x));
            acc[n] = _mm512_add_ps(acc[n], _mm512_fmadd_ps(w[1], _mm512_loadu_ps(x.add(16)), p));
        }
    }

    row_dot!(_mm512_setzero_ps, _mm512_add_ps, _mm512_reduce_add_ps);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    /// Random valid blocks: finite f16 scales, any nibbles/bytes.
    fn random_matrix(format: Format, rows: usize, cols: usize, seed: &mut u64) -> Matrix {
        let blocks = rows * cols / QK;
        let mut data = Vec::with_capacity(blocks * format.file_block_bytes());
        let f16b = |v: f32| f16::from_f32(v).to_le_bytes();
        for _ in 0..blocks {
            match format {
                Format::F32 => {
                    for _ in 0..QK {
                        let v = (lcg(seed) % 2000) as f32 / 1000.0 - 1.0;
                        data.extend(v.to_le_bytes());
                    }
                }
                Format::F16 => {
                    for _ in 0..QK {
                        data.extend(f16b((lcg(seed) % 2000) as f32 / 1000.0 - 1.0));
                    }
                }
                Format::Q4_0 | Format::Q4_1 | Format::Q8_0 => {
                    data.extend(f16b((lcg(seed) % 100) as f32 / 1000.0));
                    if format == Format::Q4_1 {
                        data.extend(f16b(-((lcg(seed) % 100) as f32) / 100.0));
                    }
                    let n = if format == Format::Q8_0 { QK } else { QK / 2 };
                    data.extend((0..n).map(|_| lcg(seed) as u8));
                }
            }
        }
        Matrix::new(rows, cols, format, data).expect("sizes match")
    }

    fn reference(m: &Matrix, x: &[f32]) -> Vec<f32> {
        let tokens = x.len() / m.cols;
        let mut w = vec![0f32; m.cols];
        let mut out = vec![0f32; tokens * m.rows];
        for r in 0..m.rows {
            m.dequantize_row(r, &mut w);
            for t in 0..tokens {
                let xt = &x[t * m.cols..(t + 1) * m.cols];
                out[t * m.rows + r] =
                    w.iter().zip(xt).map(|(a, b)| (a * b) as f64).sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn every_format_and_batch_size_matches_the_f64_reference() {
        let mut seed = 7;
        for format in [
            Format::F32,
            Format::F16,
            Format::Q4_0,
            Format::Q4_1,
            Format::Q8_0,
        ] {
            let (rows, cols) = (5, 96);
            let m = random_matrix(format, rows, cols, &mut seed);
            for tokens in [1, 2, 3, 4, 5, 7, 8, 9, 13, 17] {
                let x: Vec<f32> = (0..tokens * cols)
                    .map(|_| (lcg(&mut seed) % 2000) as f32 / 1000.0 - 1.0)
                    .collect();
                let want = reference(&m, &x);
                let mut got = vec![f32::NAN; tokens * rows];
                // SAFETY: `got` holds tokens × rows and is ours alone.
                unsafe { m.mul_rows(0..rows, &x, got.as_mut_ptr(), rows) };
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = 1e-4 * (1.0 + w.abs());
                    assert!(
                        (g - w).abs() <= tol,
                        "{format:?} tokens {tokens} element {i}: got {g}, want {w}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_scalar_kernel_agrees_with_the_reference() {
        let mut seed = 11;
        let m = random_matrix(Format::Q4_1, 3, 64, &mut seed);
        let x: Vec<f32> = (0..2 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let want = reference(&m, &x);
        for r in 0..3 {
            let mut sums = [0f32; GROUP];
            scalar::dot(m.format, m.row(r), &[&x[..64], &x[64..]], &mut sums);
            assert!(
                (sums[0] - want[r]).abs() < 1e-4,
                "{} vs {}",
                sums[0],
                want[r]
            );
            assert!((sums[1] - want[3 + r]).abs() < 1e-4);
        }
    }

    #[test]
    fn bad_shapes_are_refused() {
        assert!(Matrix::new(2, 33, Format::F32, vec![0; 2 * 33 * 4]).is_err());
        assert!(Matrix::new(2, 32, Format::Q4_1, vec![0; 39]).is_err());
    }
}
