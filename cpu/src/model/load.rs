//! Reading a model's tensors from its GGUF file: matrices stay in their file format where the
//! kernels have one; anything else is dequantized to f32 (by candle) and named in a warning with
//! the memory it costs.

use std::fs::File;

use half::{bf16, f16};

use crate::gguf::{Gguf, TensorInfo};
use crate::kernels::Matrix;

use super::config::{Arch, ModelConfig};
use super::{Layer, ModelError, Qkv, UpGate};

pub(super) struct Loader<'a> {
    pub g: &'a Gguf,
    pub file: &'a mut File,
    pub dequantize: bool,
    /// Round activations to 8 bits for the matrices that have such kernels.
    pub int8: bool,
    pub warnings: Vec<String>,
}

fn tensor_err(name: &str, problem: impl Into<String>) -> ModelError {
    ModelError::Tensor {
        name: name.to_string(),
        problem: problem.into(),
    }
}

impl Loader<'_> {
    fn info(&self, name: &str) -> Result<TensorInfo, ModelError> {
        self.g
            .tensor(name)
            .cloned()
            .ok_or_else(|| tensor_err(name, "missing from the file"))
    }

    /// A `rows × cols` matrix.
    pub fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix, ModelError> {
        let t = self.info(name)?;
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        if dims != [cols, rows] {
            return Err(tensor_err(
                name,
                format!("shape {dims:?}, expected [{cols}, {rows}]"),
            ));
        }
        match t.format.filter(|_| !self.dequantize) {
            Some(format) => {
                let data = self.g.read_tensor(self.file, &t)?;
                let mut m = Matrix::new(rows, cols, format, data)
                    .map_err(|e| tensor_err(name, e.to_string()))?;
                m.set_int8_activations(self.int8);
                Ok(m)
            }
            None => {
                let values = self.f32_values(&t)?;
                if !self.dequantize {
                    self.warnings.push(format!(
                        "{name}: type {} has no compact kernel here; held as f32 ({} MiB instead \
                         of {} MiB)",
                        t.type_name(),
                        (values.len() * 4) >> 20,
                        t.bytes.unwrap_or(0) >> 20
                    ));
                }
                Matrix::from_f32(rows, cols, &values).map_err(|e| tensor_err(name, e.to_string()))
            }
        }
    }

    pub fn opt_matrix(
        &mut self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<Option<Matrix>, ModelError> {
        if self.g.tensor(name).is_none() {
            return Ok(None);
        }
        self.matrix(name, rows, cols).map(Some)
    }

    /// A vector of `len` values (norms, biases, rope factors).
    pub fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        let t = self.info(name)?;
        let v = self.f32_values(&t)?;
        if v.len() != len {
            return Err(tensor_err(
                name,
                format!("{} values, expected {len}", v.len()),
            ));
        }
        Ok(v)
    }

    pub fn opt_vector(&mut self, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
        if self.g.tensor(name).is_none() {
            return Ok(None);
        }
        self.vector(name, len).map(Some)
    }

    /// Every value of a tensor as f32.
    fn f32_values(&mut self, t: &TensorInfo) -> Result<Vec<f32>, ModelError> {
        let n = t.elements() as usize;
        match t.ggml_type {
            0 => Ok(self
                .raw(t)?
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            1 => Ok(self
                .raw(t)?
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            30 => Ok(self
                .raw(t)?
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect()),
            _ => match t.format {
                Some(format) => {
                    let data = self.g.read_tensor(self.file, t)?;
                    let cols = t.dims[0] as usize;
                    let m = Matrix::new(n / cols, cols, format, data)
                        .map_err(|e| tensor_err(&t.name, e.to_string()))?;
                    let mut out = vec![0f32; n];
                    for (r, row) in out.chunks_exact_mut(cols).enumerate() {
                        m.dequantize_row(r, row);
                    }
                    Ok(out)
                }
                None => self.candle_dequantize(t),
            },
        }
    }

    fn raw(&mut self, t: &TensorInfo) -> Result<Vec<u8>, ModelError> {
        Ok(self.g.read_tensor(self.file, t)?)
    }

    /// Formats the kernels do not have: candle dequantizes Q8_1, Q2_K, Q3_K and Q8_K.
    fn candle_dequantize(&mut self, t: &TensorInfo) -> Result<Vec<f32>, ModelError> {
        use candle_core::quantized::{GgmlDType, ggml_file::qtensor_from_ggml};
        let unsupported =
            || tensor_err(&t.name, format!("type {} is not supported", t.type_name()));
        let dtype = match t.ggml_type {
            9 => GgmlDType::Q8_1,
            10 => GgmlDType::Q2K,
            11 => GgmlDType::Q3K,
            15 => GgmlDType::Q8K,
            _ => return Err(unsupported()),
        };
        // The byte size is known only through candle's block table: bound it by the file.
        let elems = t.elements() as usize;
        let bytes = elems / dtype.block_size() * dtype.type_size();
        if t.offset.saturating_add(bytes as u64) > self.g.file_len {
            return Err(tensor_err(
                &t.name,
                "its data runs past the end of the file",
            ));
        }
        let info = TensorInfo {
            bytes: Some(bytes as u64),
            ..t.clone()
        };
        let data = self.g.read_tensor(self.file, &info)?;
        let dims: Vec<usize> = t.dims.iter().rev().map(|&d| d as usize).collect();
        qtensor_from_ggml(dtype, &data, dims, &candle_core::Device::Cpu)
            .and_then(|q| q.dequantize(&candle_core::Device::Cpu))
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(|e| tensor_err(&t.name, e.to_string()))
    }

    pub fn layer(&mut self, c: &ModelConfig, i: usize) -> Result<Layer, ModelError> {
        let p = |s: &str| format!("blk.{i}.{s}");
        let (e, qd, kvd, hd, ff) = (c.embd, c.q_dim(), c.kv_dim(), c.head_dim, c.ff);
        let qkv = match self.opt_matrix(&p("attn_qkv.weight"), qd + 2 * kvd, e)? {
            Some(m) => Qkv::Fused(m),
            None => Qkv::Split(
                self.matrix(&p("attn_q.weight"), qd, e)?,
                self.matrix(&p("attn_k.weight"), kvd, e)?,
                self.matrix(&p("attn_v.weight"), kvd, e)?,
            ),
        };
        let qkv_bias = match self.opt_vector(&p("attn_qkv.bias"), qd + 2 * kvd)? {
            Some(b) => Some(b),
            None => {
                let q = self.opt_vector(&p("attn_q.bias"), qd)?;
                let k = self.opt_vector(&p("attn_k.bias"), kvd)?;
                let v = self.opt_vector(&p("attn_v.bias"), kvd)?;
                (q.is_some() || k.is_some() || v.is_some()).then(|| {
                    let mut b = q.unwrap_or_else(|| vec![0.0; qd]);
                    b.extend(k.unwrap_or_else(|| vec![0.0; kvd]));
                    b.extend(v.unwrap_or_else(|| vec![0.0; kvd]));
                    b
                })
            }
        };
        let up_gate = match self.opt_matrix(&p("ffn_gate.weight"), ff, e)? {
            Some(gate) => UpGate::Split(gate, self.matrix(&p("ffn_up.weight"), ff, e)?),
            // Phi-3: one matrix, gate rows first.
            None => UpGate::Fused(self.matrix(&p("ffn_up.weight"), 2 * ff, e)?),
        };
        let post = c.arch == Arch::Gemma2;
        Ok(Layer {
            attn_norm: self.vector(&p("attn_norm.weight"), e)?,
            qkv,
            qkv_bias,
            q_norm: self.opt_vector(&p("attn_q_norm.weight"), hd)?,
            k_norm: self.opt_vector(&p("attn_k_norm.weight"), hd)?,
            wo: self.matrix(&p("attn_output.weight"), e, qd)?,
            wo_bias: self.opt_vector(&p("attn_output.bias"), e)?,
            attn_post_norm: if post {
                Some(self.vector(&p("post_attention_norm.weight"), e)?)
            } else {
                None
            },
            ffn_norm: self.vector(&p("ffn_norm.weight"), e)?,
            up_gate,
            down: self.matrix(&p("ffn_down.weight"), e, ff)?,
            ffn_post_norm: if post {
                Some(self.vector(&p("post_ffw_norm.weight"), e)?)
            } else {
                None
            },
        })
    }

    /// Per-frequency divisors of the rotary angles: Llama 3's `rope_freqs`, or Phi-3's
    /// short/long factors (long ones when the context used exceeds the original).
    pub fn rope_factors(
        &mut self,
        c: &ModelConfig,
        context: usize,
    ) -> Result<Option<Vec<f32>>, ModelError> {
        let half = c.head_dim / 2;
        if let Some(f) = self.opt_vector("rope_freqs.weight", half)? {
            return Ok(Some(f));
        }
        let orig = self
            .g
            .u64(&format!(
                "{}.rope.scaling.original_context_length",
                c.arch.name()
            ))
            .map_or(c.context_len, |v| v as usize);
        let name = if context > orig {
            "rope_factors_long.weight"
        } else {
            "rope_factors_short.weight"
        };
        self.opt_vector(name, half)
    }
}
