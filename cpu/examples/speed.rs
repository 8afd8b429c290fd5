//! Quick engine speed check for profiling (the benchmark of record is `bench/run engine`):
//! `cargo run --release -p orrery-cpu --example speed -- MODEL.gguf [threads] [batch] [int8]`
//! prints prompt tokens/s (one 64-token pass) and decode tokens/s (`batch` sequences stepping
//! together), after the SIMD path in use (`ORRERY_SIMD` chooses another the CPU has); `int8`
//! rounds K-quant matrices' activations to 8 bits (`Precision::Int8`).

use std::time::Instant;

use orrery_cpu::gguf::Gguf;
use orrery_cpu::{Feed, Model, Precision};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: speed MODEL.gguf [threads] [batch]")?;
    let threads: usize = args
        .next()
        .map_or(Ok(2), |a| a.parse())
        .map_err(|e| format!("{e}"))?;
    let batch: usize = args
        .next()
        .map_or(Ok(1), |a| a.parse())
        .map_err(|e| format!("{e}"))?;
    let precision = match args.next().as_deref() {
        Some("int8") => Precision::Int8,
        _ => Precision::Quantized,
    };
    println!("simd: {} {precision:?}", orrery_cpu::quant::simd_path());
    let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
    let gguf = Gguf::read(&mut file)?;
    let model = Model::from_gguf(&gguf, &mut file, threads, precision, 0)?;
    let prompt: Vec<u32> = (0..64).map(|i| 100 + i * 7).collect();
    let mut caches: Vec<_> = (0..batch).map(|_| model.new_cache()).collect();
    for _ in 0..2 {
        let t0 = Instant::now();
        let mut feeds = [Feed {
            tokens: &prompt,
            pos: 0,
            cache: &mut caches[0],
            logits: true,
        }];
        model.forward(&mut feeds)?;
        println!(
            "prompt: {:.1} tok/s",
            prompt.len() as f64 / t0.elapsed().as_secs_f64()
        );
    }
    for c in caches.iter_mut().skip(1) {
        model.forward(&mut [Feed {
            tokens: &prompt,
            pos: 0,
            cache: c,
            logits: true,
        }])?;
    }
    let steps = 64;
    let t0 = Instant::now();
    for s in 0..steps {
        let tok = [500u32 + s as u32];
        let mut feeds: Vec<Feed> = caches
            .iter_mut()
            .map(|c| Feed {
                tokens: &tok,
                pos: prompt.len() + s,
                cache: c,
                logits: true,
            })
            .collect();
        model.forward(&mut feeds)?;
    }
    let dt = t0.elapsed().as_secs_f64();
    println!(
        "decode x{batch}: {:.1} tok/s per sequence, {:.1} tok/s in all",
        steps as f64 / dt,
        (steps * batch) as f64 / dt
    );
    Ok(())
}
