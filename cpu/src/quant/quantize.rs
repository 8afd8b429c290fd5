//! Quantizers producing GGUF file bytes, ported from ggml's reference quantizers (the K-quants'
//! are in `kquantize`).

use half::f16;

use super::format::Format;
use super::kquantize;

/// Why values could not be quantized or bytes dequantized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantError {
    /// `len` values are not a whole number of `format` blocks.
    Values { format: Format, len: usize },
    /// `len` bytes are not a whole number of `format` blocks.
    Bytes { format: Format, len: usize },
}

impl std::fmt::Display for QuantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuantError::Values { format, len } => write!(
                f,
                "{len} values are not whole {} blocks of {}",
                format.name(),
                format.block_weights()
            ),
            QuantError::Bytes { format, len } => write!(
                f,
                "{len} bytes are not whole {} blocks of {} bytes",
                format.name(),
                format.file_block_bytes()
            ),
        }
    }
}

impl std::error::Error for QuantError {}

/// `values` in `format`'s FILE layout, byte for byte what llama.cpp's `llama-quantize --pure`
/// writes for the same f32 tensor without an importance matrix: ggml's `quantize_row_*_ref`
/// ported with the same float operations in the same order (Rust never fuses a multiply and an
/// add, and ggml's reference code is built without FMA contraction either).
pub fn quantize(format: Format, values: &[f32]) -> Result<Vec<u8>, QuantError> {
    let Some(bytes) = format.file_bytes(values.len()) else {
        return Err(QuantError::Values {
            format,
            len: values.len(),
        });
    };
    let mut out = Vec::with_capacity(bytes);
    let bw = format.block_weights();
    // The `expect`s below cannot fail: `chunks_exact(bw)` yields slices of exactly the block
    // width each format's arm converts to.
    for x in values.chunks_exact(bw) {
        match format {
            Format::F32 => out.extend(x.iter().flat_map(|v| v.to_le_bytes())),
            // ggml_fp32_to_fp16_row: round to nearest even, as `half` does.
            Format::F16 => out.extend(x.iter().flat_map(|v| f16::from_f32(*v).to_le_bytes())),
            Format::BF16 => out.extend(x.iter().flat_map(|v| fp32_to_bf16(*v).to_le_bytes())),
            Format::Q4_0 => q4_0(x.try_into().expect("chunks of 32"), &mut out),
            Format::Q4_1 => q4_1(x.try_into().expect("chunks of 32"), &mut out),
            Format::Q5_0 => q5_0(x.try_into().expect("chunks of 32"), &mut out),
            Format::Q5_1 => q5_1(x.try_into().expect("chunks of 32"), &mut out),
            Format::Q8_0 => q8_0(x.try_into().expect("chunks of 32"), &mut out),
            Format::Q4_K | Format::Q5_K => {
                kquantize::q45_k(format, x.try_into().expect("chunks of 256"), &mut out)
            }
            Format::Q6_K => kquantize::q6_k(x.try_into().expect("chunks of 256"), &mut out),
        }
    }
    debug_assert_eq!(out.len(), bytes);
    Ok(out)
}

/// ggml_compute_fp32_to_bf16: round to nearest even, NaNs kept quiet.
fn fp32_to_bf16(s: f32) -> u16 {
    let u = s.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    (u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// The value of largest magnitude (the first of equals), as ggml's symmetric formats pick it.
fn signed_max(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

// The `as i8` / `as u8` casts truncate toward zero like C's conversions; their arguments are in
// range for finite inputs, where C's behaviour is defined.

fn q4_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let d = signed_max(x) / -8.0;
    let id = inverse(d);
    out.extend(f16_bytes(d));
    for j in 0..16 {
        let xi0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
        let xi1 = ((x[16 + j] * id + 8.5) as i8).min(15) as u8;
        out.push(xi0 | (xi1 << 4));
    }
}

fn q4_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    out.extend(f16_bytes(d));
    out.extend(f16_bytes(min));
    for j in 0..16 {
        let xi0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
        let xi1 = (((x[16 + j] - min) * id + 0.5) as i8).min(15) as u8;
        out.push(xi0 | (xi1 << 4));
    }
}

fn q5_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let d = signed_max(x) / -16.0;
    let id = inverse(d);
    out.extend(f16_bytes(d));
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let xi0 = ((x[j] * id + 16.5) as i8).min(31) as u8;
        let xi1 = ((x[16 + j] * id + 16.5) as i8).min(31) as u8;
        qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    out.extend(qh.to_le_bytes());
    out.extend(qs);
}

fn q5_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    out.extend(f16_bytes(d));
    out.extend(f16_bytes(min));
    let mut qh = 0u32;
    let mut qs = [0u8; 16];
    for j in 0..16 {
        let xi0 = ((x[j] - min) * id + 0.5) as u8;
        let xi1 = ((x[16 + j] - min) * id + 0.5) as u8;
        qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4);
        qh |= u32::from((xi0 & 0x10) >> 4) << j;
        qh |= u32::from((xi1 & 0x10) >> 4) << (j + 16);
    }
    out.extend(qh.to_le_bytes());
    out.extend(qs);
}

fn q8_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    out.extend(f16_bytes(d));
    // roundf: halves away from zero, as f32::round.
    out.extend(x.iter().map(|v| (v * id).round() as i8 as u8));
}
