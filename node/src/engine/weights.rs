//! Loading GGUF weights into candle's quantized llama, either as stored (quantized matmuls) or
//! dequantized to f32 for reference-precision numerics.

use std::collections::HashMap;
use std::fs::File;
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_transformers::models::quantized_llama::ModelWeights;
use serde::{Deserialize, Serialize};

use super::EngineError;

/// How the weights are held in memory.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// As stored in the file: quantized matmuls, activations quantized to 8 bits on the fly.
    /// Smallest and fastest to decode (about 3x the f32 decode rate on the default model).
    #[default]
    Quantized,
    /// Dequantized to f32 at load: about 4 bytes per parameter and slower decoding, but the
    /// numerics of an unquantized reference run (quantized activations can flip near-tied
    /// greedy choices; SmolLM2-135M's answer to "What is the capital of France?" is one).
    F32,
}

/// The model and the bytes its weights occupy.
pub struct Loaded {
    pub model: ModelWeights,
    pub weight_bytes: u64,
}

/// Builds the model from an already parsed GGUF `content` whose tensors are read from `file`.
pub fn load(
    content: Content,
    file: &mut File,
    precision: Precision,
) -> Result<Loaded, EngineError> {
    match precision {
        Precision::Quantized => {
            let weight_bytes = content
                .tensor_infos
                .values()
                .map(|t| {
                    (t.shape.elem_count() / t.ggml_dtype.block_size() * t.ggml_dtype.type_size())
                        as u64
                })
                .sum();
            let model = from_gguf(content, file)?;
            Ok(Loaded {
                model,
                weight_bytes,
            })
        }
        Precision::F32 => {
            let (content, mut data) = dequantize_all(content, file)?;
            let weight_bytes = data.get_ref().len() as u64;
            let model = from_gguf(content, &mut data)?;
            Ok(Loaded {
                model,
                weight_bytes,
            })
        }
    }
}

fn from_gguf<R: std::io::Read + std::io::Seek>(
    content: Content,
    reader: &mut R,
) -> Result<ModelWeights, EngineError> {
    // candle can panic on malformed tensors; that must be a load error, not a crash.
    catch_unwind(AssertUnwindSafe(|| {
        ModelWeights::from_gguf(content, reader, &Device::Cpu)
    }))
    .map_err(|_| EngineError::Load("candle panicked while loading the weights".into()))?
    .map_err(|e| EngineError::Load(format!("loading the weights: {e}")))
}

/// Rewrites every tensor as f32 into an in-memory GGUF data section: candle then builds plain f32
/// matmuls for them (it only keeps quantized matmuls for quantized dtypes).
fn dequantize_all(
    content: Content,
    file: &mut File,
) -> Result<(Content, Cursor<Vec<u8>>), EngineError> {
    let err =
        |name: &str, e: candle_core::Error| EngineError::Load(format!("dequantizing {name}: {e}"));
    let total: usize = content
        .tensor_infos
        .values()
        .map(|t| t.shape.elem_count() * 4)
        .sum();
    let mut data = Vec::with_capacity(total);
    let mut infos = HashMap::with_capacity(content.tensor_infos.len());
    for (name, info) in &content.tensor_infos {
        let q = info
            .read(file, content.tensor_data_offset, &Device::Cpu)
            .map_err(|e| err(name, e))?;
        let values: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| err(name, e))?;
        let offset = data.len() as u64;
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        let info = TensorInfo {
            ggml_dtype: GgmlDType::F32,
            shape: info.shape.clone(),
            offset,
        };
        infos.insert(name.clone(), info);
    }
    let content = Content {
        magic: content.magic,
        metadata: content.metadata,
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((content, Cursor::new(data)))
}
