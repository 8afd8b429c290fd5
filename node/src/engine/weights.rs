//! Loading GGUF weights into the CPU llama model, either as stored or dequantized to f32.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};

use candle_core::quantized::gguf_file::Content;
use serde::{Deserialize, Serialize};

use super::EngineError;
use orrery_cpu::Llama;
/// How the weights are held in memory.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// As stored in the file (Q4_0, Q4_1, Q8_0, F16, F32 blocks; other formats are
    /// dequantized to f32 at load), expanded to f32 in registers as they are used. Activations
    /// stay f32, so the answers are those of the dequantized model.
    #[default]
    Quantized,
    /// Everything dequantized to f32 at load: the same numerics as `Quantized`, about 4 bytes
    /// per parameter and slower (more bytes to read per token). For comparison runs.
    F32,
}

/// The model and the bytes its weights occupy.
pub struct Loaded {
    pub model: Llama,
    pub weight_bytes: u64,
}

/// Builds the model from an already parsed GGUF `content` whose tensors are read from `file`,
/// with `threads` threads per forward pass.
pub fn load(
    content: &Content,
    file: &mut File,
    precision: Precision,
    threads: usize,
) -> Result<Loaded, EngineError> {
    // A malformed file must be a load error, not a crash.
    let model = catch_unwind(AssertUnwindSafe(|| {
        Llama::from_gguf(content, file, threads, precision == Precision::F32)
    }))
    .map_err(|_| EngineError::Load("panicked while loading the weights".into()))?
    .map_err(|e| EngineError::Load(format!("loading the weights: {e}")))?;
    Ok(Loaded {
        weight_bytes: model.weight_bytes(),
        model,
    })
}
