//! What a GGUF file holds and whether this engine can run it, from its header alone: the answer
//! behind `orrery models inspect`.

use std::collections::BTreeMap;

use crate::gguf::Gguf;
use crate::model::ModelConfig;

/// Candle dequantizes these types for us (held as f32); any other type without a kernel is
/// refused.
const WIDENED_TYPES: &[u32] = &[9, 10, 11, 15];

/// The facts about one file.
#[derive(Clone, Debug)]
pub struct Inspection {
    pub architecture: String,
    /// `general.name`, where the file has one.
    pub name: Option<String>,
    pub parameters: u64,
    pub file_bytes: u64,
    /// Tensor count and stored bytes per type name.
    pub formats: BTreeMap<String, (usize, u64)>,
    /// Layers, width, heads and kv heads, head width, context the model was trained for.
    pub shape: Option<ModelConfig>,
    pub chat_template: bool,
    /// `tokenizer.ggml.model` / `tokenizer.ggml.pre`.
    pub tokenizer: String,
    /// Weights as this engine would hold them (compact formats as stored, others as f32).
    pub weight_bytes: u64,
    /// Tensors that would be widened to f32, with their f32 size.
    pub widened: Vec<(String, u64)>,
    /// Why the engine cannot run the file; empty when it can.
    pub problems: Vec<String>,
}

impl Inspection {
    pub fn of(g: &Gguf) -> Inspection {
        let mut problems = Vec::new();
        let shape = match ModelConfig::from_gguf(g) {
            Ok(c) => Some(c),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let mut formats: BTreeMap<String, (usize, u64)> = BTreeMap::new();
        let (mut parameters, mut weight_bytes) = (0u64, 0u64);
        let mut widened = Vec::new();
        for t in &g.tensors {
            let n = t.elements();
            parameters += n;
            let entry = formats.entry(t.type_name()).or_default();
            entry.0 += 1;
            entry.1 += t.bytes.unwrap_or(0);
            match t.bytes {
                Some(b) => weight_bytes += b,
                None if WIDENED_TYPES.contains(&t.ggml_type) => {
                    weight_bytes += 4 * n;
                    widened.push((t.name.clone(), 4 * n));
                }
                None => problems.push(format!(
                    "tensor {} is {}, a format this engine does not read",
                    t.name,
                    t.type_name()
                )),
            }
        }
        Inspection {
            architecture: g.architecture().to_string(),
            name: g.str("general.name").map(str::to_string),
            parameters,
            file_bytes: g.file_len,
            formats,
            shape,
            chat_template: g.str("tokenizer.chat_template").is_some(),
            tokenizer: format!(
                "{} / {}",
                g.str("tokenizer.ggml.model").unwrap_or("none"),
                g.str("tokenizer.ggml.pre").unwrap_or("default")
            ),
            weight_bytes,
            widened,
            problems,
        }
    }

    pub fn supported(&self) -> bool {
        self.problems.is_empty()
    }

    /// Memory this model takes with `sequences` KV caches of `context` tokens each.
    pub fn memory_bytes(&self, sequences: usize, context: usize) -> u64 {
        let kv = self
            .shape
            .as_ref()
            .map_or(0, |c| c.kv_bytes_per_token() * (sequences * context) as u64);
        self.weight_bytes + kv
    }
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        writeln!(f, "architecture  {}", self.architecture)?;
        if let Some(n) = &self.name {
            writeln!(f, "name          {n}")?;
        }
        writeln!(
            f,
            "parameters    {:.1} M  (file {:.1} MiB)",
            self.parameters as f64 / 1e6,
            mib(self.file_bytes)
        )?;
        let formats: Vec<String> = self
            .formats
            .iter()
            .map(|(k, (n, _))| format!("{k} ×{n}"))
            .collect();
        writeln!(f, "tensors       {}", formats.join(", "))?;
        if let Some(c) = &self.shape {
            writeln!(
                f,
                "shape         {} layers, {} wide, {} heads ({} kv) of {}, feed-forward {}, vocabulary {}",
                c.layers, c.embd, c.heads, c.kv_heads, c.head_dim, c.ff, c.vocab
            )?;
            writeln!(f, "context       {} tokens (trained)", c.context_len)?;
            writeln!(
                f,
                "KV cache      {:.1} KiB per token (f32)",
                c.kv_bytes_per_token() as f64 / 1024.0
            )?;
        }
        writeln!(f, "tokenizer     {}", self.tokenizer)?;
        writeln!(
            f,
            "chat template {}",
            if self.chat_template {
                "in the file"
            } else {
                "none (plain ChatML is used)"
            }
        )?;
        writeln!(f, "weights here  {:.1} MiB", mib(self.weight_bytes))?;
        for (name, bytes) in &self.widened {
            writeln!(f, "  widened to f32: {name} ({:.1} MiB)", mib(*bytes))?;
        }
        if self.supported() {
            write!(f, "supported     yes")
        } else {
            write!(f, "supported     no: {}", self.problems.join("; "))
        }
    }
}
