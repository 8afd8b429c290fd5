//! Weight matrices as the GGUF file stores them, and the one operation the model needs of them:
//! `out[t][r] = row r · x[t]` for a few tokens `t`, with f32 activations.
//!
//! Rows stay in their file blocks (re-laid once at load, see [`layout`], within a few percent of
//! the file's size) and are expanded to f32 in registers 32 weights at a time, so a token reads
//! each weight byte once and the numerics are those of the dequantized f32 model: activations
//! are never quantized. The kernels (AVX-512, AVX2, scalar) are chosen at run time
//! ([`dispatch`]); several tokens share each expanded unit of weights.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx2_decode;
#[cfg(target_arch = "x86_64")]
mod avx2_q8;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod dequantize;
pub mod dispatch;
mod format;
mod kquantize;
mod layout;
pub mod q8;
mod quantize;
mod scalar;

pub use dequantize::dequantize;
pub use dispatch::{SimdPath, simd_path};
pub use format::{Format, QK, QK_K};
pub use quantize::{QuantError, quantize};

use dispatch::MAX_GROUP;

/// Why a matrix could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatrixError {
    /// Rows must be whole blocks of the format.
    Columns { cols: usize, format: Format },
    /// The data is not the size the shape and format call for (`want` is `None` when that size
    /// overflows).
    Size {
        rows: usize,
        cols: usize,
        format: Format,
        want: Option<usize>,
        got: usize,
    },
}

impl std::fmt::Display for MatrixError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatrixError::Columns { cols, format } => write!(
                f,
                "{cols} columns is not a multiple of {} ({} blocks)",
                format.block_weights(),
                format.name()
            ),
            MatrixError::Size {
                rows,
                cols,
                format,
                want: Some(want),
                got,
            } => write!(
                f,
                "{rows}x{cols} {} needs {want} bytes, got {got}",
                format.name()
            ),
            MatrixError::Size {
                rows, cols, format, ..
            } => write!(f, "{rows}x{cols} {} is too large", format.name()),
        }
    }
}

impl std::error::Error for MatrixError {}

/// For callers that report errors as text.
impl From<MatrixError> for String {
    fn from(e: MatrixError) -> String {
        e.to_string()
    }
}

/// A `rows × cols` weight matrix, row-major, rows in `format` blocks.
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    format: Format,
    data: Vec<u8>,
    /// Activations rounded to 8 bits for this matrix ([`q8`]).
    int8: bool,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Matrix({}x{} {})",
            self.rows,
            self.cols,
            self.format.name()
        )
    }
}

impl Matrix {
    /// Takes file bytes: `cols` must be a multiple of the format's block and `data` exactly the
    /// matrix.
    pub fn new(
        rows: usize,
        cols: usize,
        format: Format,
        data: Vec<u8>,
    ) -> Result<Self, MatrixError> {
        if !cols.is_multiple_of(format.block_weights()) {
            return Err(MatrixError::Columns { cols, format });
        }
        let want = rows.checked_mul(cols).and_then(|n| format.file_bytes(n));
        if want != Some(data.len()) {
            return Err(MatrixError::Size {
                rows,
                cols,
                format,
                want,
                got: data.len(),
            });
        }
        let data = match format {
            Format::F32 | Format::F16 | Format::BF16 => data,
            _ => {
                let blocks = data.len() / format.file_block_bytes();
                let mut mem = Vec::with_capacity(blocks * format.mem_block_bytes());
                for block in data.chunks_exact(format.file_block_bytes()) {
                    layout::relayout(format, block, &mut mem);
                }
                debug_assert_eq!(mem.len(), blocks * format.mem_block_bytes());
                mem
            }
        };
        Ok(Matrix {
            rows,
            cols,
            format,
            data,
            int8: false,
        })
    }

    /// Rounds the activations to 8 bits (llama.cpp's numerics, integer kernels) where the
    /// format has such kernels ([`q8::supports`]); a no-op for the others. Returns whether
    /// it took effect.
    pub fn set_int8_activations(&mut self, on: bool) -> bool {
        self.int8 = on && q8::supports(self.format);
        self.int8
    }

    /// An f32 matrix from values.
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Result<Self, MatrixError> {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self::new(rows, cols, Format::F32, data)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    fn row_bytes(&self) -> usize {
        self.cols / self.format.block_weights() * self.format.mem_block_bytes()
    }

    fn row(&self, r: usize) -> &[u8] {
        let n = self.row_bytes();
        &self.data[r * n..(r + 1) * n]
    }

    /// Row `r` as f32 (an embedding lookup), equal to ggml's dequantization.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let row = self.row(r);
        let (bw, bb) = (self.format.block_weights(), self.format.mem_block_bytes());
        for (block, o) in row
            .chunks_exact(bb)
            .zip(out[..self.cols].chunks_exact_mut(bw))
        {
            layout::decode(self.format, block, o);
        }
    }

    /// For each of the `x.len() / cols` tokens `t` and each row `r` in `rows`:
    /// `out[t * out_stride + r] = row r · x[t]`, on the [`dispatch::active`] SIMD path.
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
        // SAFETY: the caller's contract, passed on; the active path is supported by definition.
        unsafe { self.mul_rows_on(dispatch::active(), rows, x, out, out_stride) }
    }

    /// [`Matrix::mul_rows`] on a given path (tests and benchmarks compare them).
    ///
    /// # Safety
    /// As [`Matrix::mul_rows`].
    ///
    /// # Panics
    /// If this CPU cannot run `path`.
    pub unsafe fn mul_rows_on(
        &self,
        path: SimdPath,
        rows: std::ops::Range<usize>,
        x: &[f32],
        out: *mut f32,
        out_stride: usize,
    ) {
        assert!(path.supported(), "this CPU cannot run {}", path.name());
        if self.int8 {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.mul_rows_q8(path, rows, x, out, out_stride) };
        }
        let xs: Vec<&[f32]> = x.chunks_exact(self.cols).collect();
        debug_assert_eq!(xs.len() * self.cols, x.len());
        let group = path.group();
        // Each token's sums over 32 activations (16 for Q6_K), for the factored single-token
        // kernel: computed once here for every row the call covers.
        // The AVX2 one beats AVX-512's unfactored kernel on K-quants (kernels example, one token,
        // AVX-512 Xeon: Q4_K 15.8 against 11.3 G weights/s, Q6_K 8.8 against 8.0), so AVX-512
        // machines use it there too.
        let factored = match path {
            SimdPath::Avx2 => self.format.is_quantized(),
            SimdPath::Avx512 => matches!(self.format, Format::Q4_K | Format::Q5_K | Format::Q6_K),
            SimdPath::Scalar => false,
        };
        let span = if self.format == Format::Q6_K { 16 } else { QK };
        let xsums: Vec<f32> = if factored {
            x.chunks_exact(span).map(|c| c.iter().sum()).collect()
        } else {
            Vec::new()
        };
        let per_token = self.cols / span;
        // Columns in blocks whose activations, for a whole token group, fit in L1; rows in
        // tiles. Each (group, column block) runs over a tile's rows: its activations stay in L1
        // across them and the tile's rows stay in L2 for the next one. Measured with the
        // `kernels` example on an AVX-512 Xeon, 8 tokens × 2048 columns: 26 G weight-tokens/s
        // when every row streamed all 64 KiB of activations, 39 in blocks.
        let bw = self.format.block_weights();
        let bb = self.format.mem_block_bytes();
        let block_cols = (L1_ACTIVATIONS / (4 * group.min(xs.len()).max(1)) / bw * bw)
            .max(bw)
            .min(self.cols);
        let mut tile = rows.start;
        while tile < rows.end {
            let tile_end = (tile + ROW_TILE).min(rows.end);
            for (g, chunk) in xs.chunks(group).enumerate() {
                let t0 = g * group;
                let mut c0 = 0;
                while c0 < self.cols {
                    let c1 = (c0 + block_cols).min(self.cols);
                    // This block's columns of each token in the group (no allocation per block).
                    let mut part: [&[f32]; MAX_GROUP] = [&[]; MAX_GROUP];
                    for (p, x) in part.iter_mut().zip(chunk) {
                        *p = &x[c0..c1];
                    }
                    let part = &part[..chunk.len()];
                    let xsum = (factored && chunk.len() == 1)
                        .then(|| &xsums[t0 * per_token + c0 / span..t0 * per_token + c1 / span]);
                    let bytes = c0 / bw * bb..c1 / bw * bb;
                    for r in tile..tile_end {
                        let mut sums = [0f32; MAX_GROUP];
                        dot_group(
                            path,
                            self.format,
                            &self.row(r)[bytes.clone()],
                            part,
                            xsum,
                            &mut sums,
                        );
                        for (i, s) in sums.iter().take(chunk.len()).enumerate() {
                            // SAFETY: in bounds and exclusive by the caller's contract.
                            unsafe {
                                let o = out.add((t0 + i) * out_stride + r);
                                *o = if c0 == 0 { *s } else { *o + *s };
                            }
                        }
                    }
                    c0 = c1;
                }
            }
            tile = tile_end;
        }
    }

    /// [`Matrix::mul_rows_on`] with the activations rounded to 8 bits: each token is rounded
    /// once per call (a few µs for thousands of values, against the row range's weights), then
    /// rows in tiles against groups of up to four tokens, as the f32 kernels run.
    ///
    /// # Safety
    /// As [`Matrix::mul_rows`].
    unsafe fn mul_rows_q8(
        &self,
        path: SimdPath,
        rows: std::ops::Range<usize>,
        x: &[f32],
        out: *mut f32,
        out_stride: usize,
    ) {
        thread_local! {
            static ROUNDED: std::cell::RefCell<q8::Q8> = std::cell::RefCell::default();
        }
        ROUNDED.with_borrow_mut(|q| {
            q.quantize(x, self.cols);
            let tokens = q.tokens();
            let mut sums = [0f32; MAX_GROUP];
            let mut tile = rows.start;
            while tile < rows.end {
                let tile_end = (tile + ROW_TILE).min(rows.end);
                let mut t0 = 0;
                while t0 < tokens {
                    let n = (tokens - t0).min(Q8_GROUP);
                    let mut group = [q8::Q8Token::EMPTY; Q8_GROUP];
                    for (i, g) in group[..n].iter_mut().enumerate() {
                        *g = q.token(t0 + i);
                    }
                    for r in tile..tile_end {
                        q8_dot_group(path, self.format, self.row(r), &group[..n], &mut sums);
                        for (i, s) in sums[..n].iter().enumerate() {
                            // SAFETY: in bounds and exclusive by the caller's contract.
                            unsafe { *out.add((t0 + i) * out_stride + r) = *s };
                        }
                    }
                    t0 += n;
                }
                tile = tile_end;
            }
        });
    }
}

/// Tokens the 8-bit kernels share a decoded unit between.
const Q8_GROUP: usize = 4;

/// `sums[i] = row · xs[i]` with 8-bit activations, on `path` (checked by the caller).
fn q8_dot_group(
    path: SimdPath,
    format: Format,
    row: &[u8],
    xs: &[q8::Q8Token<'_>],
    sums: &mut [f32; MAX_GROUP],
) {
    match path {
        // SAFETY: the CPU has AVX2 (an AVX-512 one too), checked by the caller; `row` is whole
        // blocks of a format `Matrix::set_int8_activations` accepted, each token as many.
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx2 | SimdPath::Avx512 => unsafe { avx2_q8::dot_group(format, row, xs, sums) },
        _ => {
            for (s, x) in sums.iter_mut().zip(xs) {
                *s = q8::dot(format, row, *x);
            }
        }
    }
}

/// Bytes of activations a token group keeps in the L1 data cache while rows stream past them
/// (32 KiB: every x86-64 core since 2011 has at least that).
const L1_ACTIVATIONS: usize = 32 * 1024;

/// Rows [`Matrix::mul_rows_on`] runs past each token group before the next group: 64 rows of
/// 8192 Q4_K weights are 288 KiB, within a core's L2.
const ROW_TILE: usize = 64;

/// `sums[i] = row · xs[i]` on `path`, which the caller has checked this CPU supports (`xsum`:
/// see `avx2::dot_group`).
fn dot_group(
    path: SimdPath,
    format: Format,
    row: &[u8],
    xs: &[&[f32]],
    xsum: Option<&[f32]>,
    sums: &mut [f32; MAX_GROUP],
) {
    // Only the AVX2 kernel uses the activation sums (on AVX-512 CPUs too, for K-quants).
    #[cfg(not(target_arch = "x86_64"))]
    let _ = xsum;
    match path {
        // SAFETY: the CPU has the path's features (checked by the caller); `row` is whole blocks
        // (`Matrix::new`, cut at block boundaries) and each x as many values as it has weights.
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx2 => unsafe { avx2::dot_group(format, row, xs, xsum, sums) },
        // SAFETY: as above; an AVX-512 CPU has AVX2 too (`SimdPath::supported`).
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx512 if xsum.is_some() => unsafe {
            avx2::dot_group(format, row, xs, xsum, sums)
        },
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx512 => unsafe { avx512::dot_group(format, row, xs, sums) },
        _ => scalar::dot(format, row, xs, sums),
    }
}

#[cfg(test)]
mod tests;
