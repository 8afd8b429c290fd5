//! Loading GGUF weights into the CPU model, either as stored or dequantized to f32.

use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::{Deserialize, Serialize};

use super::EngineError;
use orrery_cpu::Model;
use orrery_cpu::gguf::Gguf;

/// How the weights are held in memory.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// As stored in the file (every format the kernels have; any other is dequantized to f32
    /// at load, with a warning naming the tensor and its cost), expanded to f32 in registers as
    /// they are used. Activations stay f32, so the answers are those of the dequantized model
    /// (what the engine is tested against, llama.cpp on the file's f32 twin).
    Quantized,
    /// The default: as `Quantized`, except that K-quant matrices (Q4_K, Q5_K, Q6_K: most files
    /// people download) take their activations rounded to 8 bits as llama.cpp rounds them and
    /// multiply in integers, about twice as fast there; the answers are then llama.cpp's on the
    /// file. Files without K-quant matrices (the bundled SmolLM2 Q4_1) run as `Quantized`.
    #[default]
    Int8,
    /// Everything dequantized to f32 at load: the same numerics as `Quantized`, about 4 bytes
    /// per parameter and slower (more bytes to read per token). For comparison runs.
    F32,
}

/// The model, the bytes its weights occupy, and what loading had to widen to f32.
pub struct Loaded {
    pub model: Model,
    pub weight_bytes: u64,
    pub warnings: Vec<String>,
}

/// Builds the model from a parsed GGUF header whose tensors are read from `file`, with `threads`
/// threads per forward pass, for sequences of up to `context` tokens.
pub fn load(
    gguf: &Gguf,
    file: &mut File,
    precision: Precision,
    threads: usize,
    context: usize,
) -> Result<Loaded, EngineError> {
    // A malformed file must be a load error, not a crash: the reader checks every size, and a
    // panic that still slips through is caught here.
    let mut model = catch_unwind(AssertUnwindSafe(|| {
        let precision = match precision {
            Precision::Quantized => orrery_cpu::Precision::Quantized,
            Precision::Int8 => orrery_cpu::Precision::Int8,
            Precision::F32 => orrery_cpu::Precision::F32,
        };
        Model::from_gguf(gguf, file, threads, precision, context)
    }))
    .map_err(|_| {
        EngineError::Load("the loader failed unexpectedly (a bug): the file may be corrupt".into())
    })?
    .map_err(|e| EngineError::Load(e.to_string()))?;
    Ok(Loaded {
        weight_bytes: model.weight_bytes(),
        warnings: std::mem::take(&mut model.warnings),
        model,
    })
}
