//! Kernel throughput per format and SIMD path, without a model:
//! `cargo run --release -p orrery-cpu --example kernels -- [rows] [cols] [tokens]`
//! prints weights per second for one thread multiplying a random `rows × cols` matrix (sized
//! past the caches by default) by `tokens` activation rows.

use std::time::Instant;

use orrery_cpu::quant::{Format, Matrix, SimdPath, quantize};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut arg = |default: usize| -> Result<usize, String> {
        args.next()
            .map_or(Ok(default), |a| a.parse())
            .map_err(|e| format!("{e}"))
    };
    let (rows, cols, tokens) = (arg(4096)?, arg(2048)?, arg(1)?);
    let mut seed = 1u64;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
    };
    let values: Vec<f32> = (0..rows * cols).map(|_| next()).collect();
    let x: Vec<f32> = (0..tokens * cols).map(|_| next()).collect();
    let mut out = vec![0f32; tokens * rows];
    print!("{:6}", "format");
    for p in SimdPath::available() {
        print!(" {:>14}", p.name());
    }
    println!("   (G weights/s, {rows}x{cols}, {tokens} token(s))");
    for format in Format::ALL {
        let bytes = quantize(format, &values).map_err(|e| e.to_string())?;
        let m = Matrix::new(rows, cols, format, bytes).map_err(|e| e.to_string())?;
        print!("{:6}", format.name());
        for path in SimdPath::available() {
            let mut best = f64::MAX;
            for _ in 0..5 {
                let t0 = Instant::now();
                // SAFETY: `out` holds tokens × rows and is ours alone.
                unsafe { m.mul_rows_on(path, 0..rows, &x, out.as_mut_ptr(), rows) };
                best = best.min(t0.elapsed().as_secs_f64());
            }
            print!(" {:>14.2}", (rows * cols * tokens) as f64 / best / 1e9);
        }
        println!();
    }
    Ok(())
}
