//! ggml's `dequantize_row_*` over FILE bytes, ported line by line: the independent reference
//! the re-laid memory blocks and the quantizers are tested against, and a way to read any
//! supported tensor as f32.

use half::{bf16, f16};

use super::format::{Format, QK, QK_K};
use super::layout::scale_min_k4;
use super::quantize::QuantError;

fn h(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// The f32 values of `bytes`, a whole number of `format` blocks as stored in a GGUF file.
pub fn dequantize(format: Format, bytes: &[u8]) -> Result<Vec<f32>, QuantError> {
    let fb = format.file_block_bytes();
    if !bytes.len().is_multiple_of(fb) {
        return Err(QuantError::Bytes {
            format,
            len: bytes.len(),
        });
    }
    let mut y = Vec::with_capacity(bytes.len() / fb * format.block_weights());
    for x in bytes.chunks_exact(fb) {
        block(format, x, &mut y);
    }
    Ok(y)
}

fn block(format: Format, x: &[u8], y: &mut Vec<f32>) {
    match format {
        Format::F32 => y.extend(
            x.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        Format::F16 => y.extend((0..QK).map(|i| h(x, 2 * i))),
        Format::BF16 => {
            y.extend((0..QK).map(|i| bf16::from_le_bytes([x[2 * i], x[2 * i + 1]]).to_f32()))
        }
        Format::Q8_0 => {
            let d = h(x, 0);
            y.extend(x[2..34].iter().map(|&q| f32::from(q as i8) * d));
        }
        Format::Q4_0 | Format::Q4_1 => {
            let d = h(x, 0);
            let (m, qs) = if format == Format::Q4_1 {
                (h(x, 2), &x[4..20])
            } else {
                (0.0, &x[2..18])
            };
            let mut out = [0f32; QK];
            for j in 0..QK / 2 {
                let (x0, x1) = (i32::from(qs[j] & 0x0F), i32::from(qs[j] >> 4));
                if format == Format::Q4_0 {
                    out[j] = (x0 - 8) as f32 * d;
                    out[j + QK / 2] = (x1 - 8) as f32 * d;
                } else {
                    out[j] = x0 as f32 * d + m;
                    out[j + QK / 2] = x1 as f32 * d + m;
                }
            }
            y.extend(out);
        }
        Format::Q5_0 | Format::Q5_1 => {
            let d = h(x, 0);
            let (m, at) = if format == Format::Q5_1 {
                (h(x, 2), 4)
            } else {
                (0.0, 2)
            };
            let qh = u32::from_le_bytes([x[at], x[at + 1], x[at + 2], x[at + 3]]);
            let qs = &x[at + 4..at + 20];
            let mut out = [0f32; QK];
            for j in 0..QK / 2 {
                let xh_0 = (((qh >> j) << 4) & 0x10) as i32;
                let xh_1 = ((qh >> (j + 12)) & 0x10) as i32;
                let x0 = i32::from(qs[j] & 0x0F) | xh_0;
                let x1 = i32::from(qs[j] >> 4) | xh_1;
                if format == Format::Q5_0 {
                    out[j] = (x0 - 16) as f32 * d;
                    out[j + QK / 2] = (x1 - 16) as f32 * d;
                } else {
                    out[j] = x0 as f32 * d + m;
                    out[j + QK / 2] = x1 as f32 * d + m;
                }
            }
            y.extend(out);
        }
        Format::Q4_K | Format::Q5_K => {
            let (d, min) = (h(x, 0), h(x, 2));
            let scales = &x[4..16];
            let (qh, mut q) = if format == Format::Q5_K {
                (&x[16..48], &x[48..])
            } else {
                (&x[..0], &x[16..])
            };
            let (mut u1, mut u2) = (1u8, 2u8);
            for j in 0..QK_K / 64 {
                let (sc, m) = scale_min_k4(2 * j, scales);
                let (d1, m1) = (d * f32::from(sc), min * f32::from(m));
                let (sc, m) = scale_min_k4(2 * j + 1, scales);
                let (d2, m2) = (d * f32::from(sc), min * f32::from(m));
                let hi = |l: usize, u: u8| {
                    if !qh.is_empty() && qh[l] & u != 0 {
                        16
                    } else {
                        0
                    }
                };
                y.extend((0..32).map(|l| d1 * f32::from((q[l] & 0xF) + hi(l, u1)) - m1));
                y.extend((0..32).map(|l| d2 * f32::from((q[l] >> 4) + hi(l, u2)) - m2));
                q = &q[32..];
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        Format::Q6_K => {
            let d = h(x, 208);
            let mut out = [0f32; QK_K];
            for n in 0..2 {
                let (ql, qh, sc) = (&x[64 * n..], &x[128 + 32 * n..], &x[192 + 8 * n..]);
                let y = &mut out[128 * n..];
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = (i32::from(ql[l] & 0xF) | (i32::from(qh[l] & 3) << 4)) - 32;
                    let q2 =
                        (i32::from(ql[l + 32] & 0xF) | (i32::from((qh[l] >> 2) & 3) << 4)) - 32;
                    let q3 = (i32::from(ql[l] >> 4) | (i32::from((qh[l] >> 4) & 3) << 4)) - 32;
                    let q4 = (i32::from(ql[l + 32] >> 4) | (i32::from((qh[l] >> 6) & 3) << 4)) - 32;
                    let s = |i: usize| d * f32::from(sc[i] as i8);
                    y[l] = s(is) * q1 as f32;
                    y[l + 32] = s(is + 2) * q2 as f32;
                    y[l + 64] = s(is + 4) * q3 as f32;
                    y[l + 96] = s(is + 6) * q4 as f32;
                }
            }
            y.extend(out);
        }
    }
}
