//! Every format on every SIMD path this machine has, against an f64 dot product over the
//! weights as ggml dequantizes them.

use half::{bf16, f16};

use super::*;

fn lcg(seed: &mut u64) -> u32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as u32
}

fn unit(seed: &mut u64) -> f32 {
    (lcg(seed) % 2000) as f32 / 1000.0 - 1.0
}

/// Random valid file blocks: finite small scales, any quant bits.
pub(super) fn random_file_bytes(format: Format, elements: usize, seed: &mut u64) -> Vec<u8> {
    let blocks = elements / format.block_weights();
    let mut data = Vec::new();
    let f16b = |v: f32| f16::from_f32(v).to_le_bytes();
    for _ in 0..blocks {
        let start = data.len();
        match format {
            Format::F32 => (0..QK).for_each(|_| data.extend(unit(seed).to_le_bytes())),
            Format::F16 => (0..QK).for_each(|_| data.extend(f16b(unit(seed)))),
            Format::BF16 => {
                (0..QK).for_each(|_| data.extend(bf16::from_f32(unit(seed)).to_le_bytes()))
            }
            Format::Q4_0 | Format::Q5_0 | Format::Q8_0 | Format::Q4_1 | Format::Q5_1 => {
                data.extend(f16b((lcg(seed) % 100) as f32 / 1000.0));
                if matches!(format, Format::Q4_1 | Format::Q5_1) {
                    data.extend(f16b(-((lcg(seed) % 100) as f32) / 100.0));
                }
            }
            Format::Q4_K | Format::Q5_K => {
                data.extend(f16b((lcg(seed) % 100) as f32 / 10000.0));
                data.extend(f16b((lcg(seed) % 100) as f32 / 10000.0));
            }
            Format::Q6_K => {}
        }
        let fill = format.file_block_bytes()
            - (data.len() - start)
            - if format == Format::Q6_K { 2 } else { 0 };
        data.extend((0..fill).map(|_| lcg(seed) as u8));
        if format == Format::Q6_K {
            data.extend(f16b((lcg(seed) % 100) as f32 / 100000.0));
        }
    }
    data
}

fn random_matrix(format: Format, rows: usize, cols: usize, seed: &mut u64) -> (Matrix, Vec<u8>) {
    let data = random_file_bytes(format, rows * cols, seed);
    (
        Matrix::new(rows, cols, format, data.clone()).expect("sizes match"),
        data,
    )
}

fn reference(m: &Matrix, x: &[f32]) -> Vec<f32> {
    let tokens = x.len() / m.cols;
    let mut w = vec![0f32; m.cols];
    let mut out = vec![0f32; tokens * m.rows];
    for r in 0..m.rows {
        m.dequantize_row(r, &mut w);
        for t in 0..tokens {
            let xt = &x[t * m.cols..(t + 1) * m.cols];
            out[t * m.rows + r] = w
                .iter()
                .zip(xt)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum::<f64>() as f32;
        }
    }
    out
}

/// Each kernel output within rounding of the f64 reference (`scale`: the sum of a token's
/// activation magnitudes).
fn assert_near(got: &[f32], want: &[f32], scale: f32, what: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 2e-6 * (1.0 + scale) + 1e-5 * w.abs();
        assert!(
            (g - w).abs() <= tol,
            "{what} element {i}: got {g}, want {w}"
        );
    }
}

#[test]
fn dequantized_rows_equal_ggml_dequantization_bit_for_bit() {
    let mut seed = 3;
    for format in Format::ALL {
        let (rows, cols) = (3, 512);
        let (m, file) = random_matrix(format, rows, cols, &mut seed);
        let want = dequantize(format, &file).unwrap();
        let mut got = vec![0f32; cols];
        for r in 0..rows {
            m.dequantize_row(r, &mut got);
            for (i, (g, w)) in got.iter().zip(&want[r * cols..]).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{} row {r} weight {i}: {g} vs {w}",
                    format.name()
                );
            }
        }
    }
}

#[test]
fn every_format_and_batch_size_matches_the_f64_reference() {
    let paths = SimdPath::available();
    assert!(paths.contains(&SimdPath::Scalar));
    let mut seed = 7;
    for format in Format::ALL {
        // Odd unit counts exercise the kernels' unpaired last unit.
        for (rows, cols) in [(5, 96), (3, 256), (2, 768usize)] {
            if !cols.is_multiple_of(format.block_weights()) {
                continue;
            }
            let (m, _) = random_matrix(format, rows, cols, &mut seed);
            for tokens in [1, 2, 3, 4, 5, 7, 8, 9, 13, 17] {
                let x: Vec<f32> = (0..tokens * cols).map(|_| unit(&mut seed)).collect();
                let want = reference(&m, &x);
                let scale = (0..cols).map(|i| x[i].abs()).sum::<f32>();
                for &path in &paths {
                    let mut got = vec![f32::NAN; tokens * rows];
                    // SAFETY: `got` holds tokens × rows and is ours alone.
                    unsafe { m.mul_rows_on(path, 0..rows, &x, got.as_mut_ptr(), rows) };
                    let what = format!(
                        "{} {} {rows}x{cols} tokens {tokens}",
                        format.name(),
                        path.name()
                    );
                    assert_near(&got, &want, scale, &what);
                }
            }
        }
    }
}

#[test]
fn bad_shapes_are_refused() {
    assert_eq!(
        Matrix::new(2, 33, Format::F32, vec![0; 2 * 33 * 4]).unwrap_err(),
        MatrixError::Columns {
            cols: 33,
            format: Format::F32
        }
    );
    assert!(matches!(
        Matrix::new(2, 32, Format::Q4_1, vec![0; 39]),
        Err(MatrixError::Size {
            want: Some(40),
            got: 39,
            ..
        })
    ));
    // 576 columns (SmolLM2's width) cannot be K-quantized.
    assert!(Matrix::new(1, 576, Format::Q4_K, vec![0; 324]).is_err());
    assert!(Matrix::new(usize::MAX, 64, Format::F32, vec![]).is_err());
}

#[test]
fn memory_stays_close_to_the_file_size() {
    for format in Format::ALL {
        let ratio = format.mem_block_bytes() as f64 / format.file_block_bytes() as f64;
        assert!(ratio <= 1.21, "{}: {ratio}", format.name());
    }
}

/// Weights shaped like a model's: mostly small, a few outliers, some all-zero blocks.
fn model_like(n: usize, seed: &mut u64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            if (i / 256) % 7 == 6 {
                return 0.0;
            }
            let v = unit(seed) * 0.05;
            if lcg(seed).is_multiple_of(97) {
                v * 20.0
            } else {
                v
            }
        })
        .collect()
}

#[test]
fn quantize_then_dequantize_stays_within_each_formats_error() {
    let mut seed = 5;
    let x = model_like(4096, &mut seed);
    // Bound on |w - x| relative to the block's (super-block's) largest |x|: half a step of the format's grid
    // (a whole step for Q4_0/Q5_0, whose grid stops one step short on the side opposite the
    // largest value), with room for the f16 scales and the K-quants' 6-bit sub-scales.
    let bounds = [
        (Format::F32, 0.0),
        (Format::F16, 1e-3),
        (Format::BF16, 4e-3),
        (Format::Q8_0, 0.5 / 127.0 + 1e-3),
        (Format::Q4_0, 1.0 / 8.0 + 1e-3),
        (Format::Q4_1, 0.5 / 15.0 * 2.0 + 1e-3),
        (Format::Q5_0, 1.0 / 16.0 + 1e-3),
        (Format::Q5_1, 0.5 / 31.0 * 2.0 + 1e-3),
        (Format::Q4_K, 0.12),
        (Format::Q5_K, 0.06),
        (Format::Q6_K, 0.03),
    ];
    for (format, bound) in bounds {
        let bytes = quantize(format, &x).unwrap();
        assert_eq!(Some(bytes.len()), format.file_bytes(x.len()));
        assert_eq!(
            bytes,
            quantize(format, &x).unwrap(),
            "{} is deterministic",
            format.name()
        );
        let y = dequantize(format, &bytes).unwrap();
        let bw = format.block_weights();
        for (b, (xb, yb)) in x.chunks(bw).zip(y.chunks(bw)).enumerate() {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (i, (a, w)) in xb.iter().zip(yb).enumerate() {
                assert!(
                    (a - w).abs() <= bound * amax + 1e-12,
                    "{} block {b} weight {i}: {a} became {w} (bound {bound} of {amax})",
                    format.name()
                );
            }
        }
        // And the matrix built from those bytes computes with the same weights.
        let m = Matrix::new(4096 / 512, 512, format, bytes).unwrap();
        let mut row = vec![0f32; 512];
        m.dequantize_row(3, &mut row);
        assert_eq!(row, y[3 * 512..4 * 512]);
    }
}

#[test]
fn quantize_refuses_partial_blocks() {
    assert_eq!(
        quantize(Format::Q4_K, &[0.0; 288]),
        Err(QuantError::Values {
            format: Format::Q4_K,
            len: 288
        })
    );
    assert!(quantize(Format::Q8_0, &[0.0; 64]).is_ok());
    assert!(dequantize(Format::Q6_K, &[0; 211]).is_err());
}

/// Inputs that stress the quantizers' searches and ties: model-like weights, wide and tiny
/// magnitudes, exact grid points and halves, constant and all-zero blocks.
fn quantizer_inputs(seed: &mut u64) -> Vec<f32> {
    let mut x = model_like(8192, seed);
    x.extend((0..2048).map(|_| unit(seed) * 1000.0));
    x.extend((0..2048).map(|_| unit(seed) * 1e-6));
    x.extend((0..2048).map(|i| (i % 33) as f32 * 0.5 - 8.0));
    x.extend((0..1024).map(|i| ((i % 17) as f32 - 8.0) / 16.0));
    x.extend(std::iter::repeat_n(0.25, 512));
    x.extend(std::iter::repeat_n(-3.0, 256));
    x.extend(std::iter::repeat_n(0.0, 256));
    x
}

/// Byte-for-byte agreement with ggml's own reference quantizers, when a build of
/// `cpu/tools/ggml-quant.c` (see there) is named by `ORRERY_GGML_QUANT`; skipped otherwise, as
/// llama.cpp's source is not part of this repository.
#[test]
fn quantize_matches_ggml_byte_for_byte() {
    let Some(tool) = std::env::var_os("ORRERY_GGML_QUANT") else {
        eprintln!("ORRERY_GGML_QUANT not set: skipping the comparison with ggml");
        return;
    };
    let dir = std::env::temp_dir().join(format!("orrery-quant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seed = 17;
    let x = quantizer_inputs(&mut seed);
    let input = dir.join("x.f32");
    std::fs::write(
        &input,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .unwrap();
    for format in Format::ALL.into_iter().filter(|f| *f != Format::F32) {
        let output = dir.join(format.name());
        let status = std::process::Command::new(&tool)
            .args([
                format.name().as_ref(),
                input.as_os_str(),
                output.as_os_str(),
            ])
            .status()
            .unwrap();
        assert!(status.success(), "{tool:?} {}", format.name());
        let want = std::fs::read(&output).unwrap();
        let got = quantize(format, &x).unwrap();
        assert_eq!(got.len(), want.len(), "{}", format.name());
        let bb = format.file_block_bytes();
        for (b, (g, w)) in got.chunks(bb).zip(want.chunks(bb)).enumerate() {
            assert_eq!(g, w, "{} block {b} differs from ggml's", format.name());
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Rows split between callers over one shared output (as the engine's threads do), with a
/// stride wider than the rows: every path writes exactly its own elements.
#[test]
fn split_row_ranges_fill_a_strided_output() {
    let mut seed = 23;
    let (rows, cols, stride) = (7, 256, 9);
    for format in [Format::Q4_1, Format::Q6_K, Format::F16] {
        let (m, _) = random_matrix(format, rows, cols, &mut seed);
        for tokens in [1, 6] {
            let x: Vec<f32> = (0..tokens * cols).map(|_| unit(&mut seed)).collect();
            let want = reference(&m, &x);
            for path in SimdPath::available() {
                let mut got = vec![f32::NAN; tokens * stride];
                for range in [0..3, 3..rows] {
                    // SAFETY: `got` holds tokens × stride; the ranges do not overlap.
                    unsafe { m.mul_rows_on(path, range, &x, got.as_mut_ptr(), stride) };
                }
                for t in 0..tokens {
                    for r in 0..stride {
                        let g = got[t * stride + r];
                        if r < rows {
                            let w = want[t * rows + r];
                            assert!((g - w).abs() <= 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
                        } else {
                            assert!(g.is_nan(), "{} wrote past its rows", path.name());
                        }
                    }
                }
            }
        }
    }
}

/// More rows than a tile and more columns than one L1 block of activations: the partial sums of
/// every column block add up, on every path, and a range that starts and ends inside tiles
/// writes only its own rows.
#[test]
fn tiled_rows_and_column_blocks_add_up() {
    let mut seed = 29;
    let (rows, cols) = (ROW_TILE + 9, 3 * 1024 + 256);
    for format in [Format::Q4_1, Format::Q4_K, Format::Q6_K, Format::F16] {
        let (m, _) = random_matrix(format, rows, cols, &mut seed);
        for tokens in [1, 4, 9] {
            let x: Vec<f32> = (0..tokens * cols).map(|_| unit(&mut seed)).collect();
            let want = reference(&m, &x);
            let scale = (0..cols).map(|i| x[i].abs()).sum::<f32>();
            for path in SimdPath::available() {
                let mut got = vec![f32::NAN; tokens * rows];
                for range in [0..5, 5..rows] {
                    // SAFETY: `got` holds tokens × rows; the ranges do not overlap.
                    unsafe { m.mul_rows_on(path, range, &x, got.as_mut_ptr(), rows) };
                }
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tol = 2e-6 * (1.0 + scale) + 1e-5 * w.abs();
                    assert!(
                        (g - w).abs() <= tol,
                        "{} {} tokens {tokens} element {i}: got {g}, want {w}",
                        format.name(),
                        path.name()
                    );
                }
            }
        }
    }
}

/// Natural-order values of a token's 8-bit activations (`d × q`).
fn rounded(q: &q8::Q8, t: usize) -> Vec<f32> {
    let tok = q.token(t);
    let mut out = vec![0f32; tok.qs.len()];
    for (v, pair) in tok.qs.chunks_exact(2 * QK).enumerate() {
        let d = tok.d[v * 2 * QK / QK_K];
        for (p, &q) in pair.iter().enumerate() {
            out[v * 2 * QK + q8::weight_at(p)] = d * f32::from(q);
        }
    }
    out
}

#[test]
fn activations_round_to_8_bits_as_ggml_does() {
    let positions: std::collections::BTreeSet<usize> = (0..2 * QK).map(q8::weight_at).collect();
    assert_eq!(positions.len(), 2 * QK, "weight_at is a permutation");
    assert_eq!(positions.last(), Some(&(2 * QK - 1)));
    let mut seed = 11;
    let mut x: Vec<f32> = (0..3 * QK_K).map(|_| unit(&mut seed)).collect();
    x[2 * QK_K..].fill(0.0); // an all-zero block
    x[17] = -3.0; // the largest magnitude of block 0, negative
    let mut q = q8::Q8::default();
    q.quantize(&x, 3 * QK_K);
    assert_eq!(q.tokens(), 1);
    let tok = q.token(0);
    assert_eq!(tok.d[0], 1.0 / (-127.0 / -3.0));
    assert_eq!(tok.d[2], 0.0);
    let back = rounded(&q, 0);
    assert!(
        (back[17] + 3.0).abs() < 1e-6,
        "the largest value maps to -127 steps"
    );
    for (i, (b, x)) in back.iter().zip(&x).enumerate() {
        let d = tok.d[i / QK_K].abs();
        assert!(
            (b - x).abs() <= d * 0.5 + 1e-6,
            "value {i}: {x} rounded to {b}"
        );
    }
    for (j, s) in tok.bsums.iter().enumerate() {
        let want: f32 = back[16 * j..16 * (j + 1)].iter().sum::<f32>() / tok.d[j / 16].max(1e-30);
        let want = if tok.d[j / 16] == 0.0 { 0.0 } else { want };
        assert!(
            (f32::from(*s) - want).abs() < 1e-3,
            "sum {j}: {s} vs {want}"
        );
    }
}

#[test]
fn eight_bit_kernels_match_the_f64_reference_on_every_path() {
    let mut seed = 13;
    for format in [Format::Q4_K, Format::Q5_K, Format::Q6_K] {
        for (rows, cols) in [(3, 256), (5, 768usize)] {
            let (mut m, _) = random_matrix(format, rows, cols, &mut seed);
            assert!(m.set_int8_activations(true));
            for tokens in [1, 2, 3, 4, 5, 9] {
                let x: Vec<f32> = (0..tokens * cols).map(|_| unit(&mut seed)).collect();
                let mut q = q8::Q8::default();
                q.quantize(&x, cols);
                let xr: Vec<f32> = (0..tokens).flat_map(|t| rounded(&q, t)).collect();
                let want = reference(&m, &xr);
                let scale = (0..cols).map(|i| x[i].abs()).sum::<f32>();
                for path in SimdPath::available() {
                    let mut got = vec![f32::NAN; tokens * rows];
                    // SAFETY: `got` holds tokens × rows and is ours alone.
                    unsafe { m.mul_rows_on(path, 0..rows, &x, got.as_mut_ptr(), rows) };
                    let what = format!(
                        "{} {} {rows}x{cols} tokens {tokens}",
                        format.name(),
                        path.name()
                    );
                    assert_near(&got, &want, scale, &what);
                }
            }
        }
    }
    let (mut m, _) = random_matrix(Format::Q4_0, 2, 256, &mut seed);
    assert!(!m.set_int8_activations(true), "no 8-bit kernel for Q4_0");
}
