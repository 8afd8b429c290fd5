//! What a model's GGUF metadata says about its shape, and which architecture features the forward
//! pass must apply. One struct covers every supported family: each family is the llama block with
//! some of these switches set (as llama.cpp's `src/models/*.cpp` build them).

use crate::gguf::Gguf;

use super::ModelError;

/// The architectures this engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2, Llama 3.x, Mistral, TinyLlama, SmolLM2.
    Llama,
    /// SmolLM3: llama with no rotary embedding on every fourth layer.
    Smollm3,
    /// Qwen 2 / 2.5: biases on the query, key and value projections.
    Qwen2,
    /// Qwen 3: RMS norms on each query and key head.
    Qwen3,
    /// Phi-3 / 3.5: fused QKV and fused gate/up projections.
    Phi3,
    /// Gemma 2: scaled embeddings, post-norms, GELU, soft-capping, alternating sliding window.
    Gemma2,
}

/// `general.architecture` values accepted, for messages.
pub const SUPPORTED: &[&str] = &["llama", "smollm3", "qwen2", "qwen3", "phi3", "gemma2"];

impl Arch {
    pub fn from_name(name: &str) -> Option<Arch> {
        Some(match name {
            "llama" => Arch::Llama,
            "smollm3" => Arch::Smollm3,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "phi3" => Arch::Phi3,
            "gemma2" => Arch::Gemma2,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Smollm3 => "smollm3",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Phi3 => "phi3",
            Arch::Gemma2 => "gemma2",
        }
    }

    /// GPT-NeoX rotation (halves of the head) rather than llama's adjacent pairs.
    fn neox_rope(self) -> bool {
        matches!(self, Arch::Qwen2 | Arch::Qwen3 | Arch::Phi3 | Arch::Gemma2)
    }
}

/// The feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU(gate) × up.
    Silu,
    /// GELU (tanh approximation)(gate) × up.
    GeluTanh,
}

/// Shape and constants of a model, from GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub embd: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Width of one query/key/value head (not always `embd / heads`: Qwen 3, Gemma).
    pub head_dim: usize,
    pub ff: usize,
    pub vocab: usize,
    pub eps: f32,
    /// The context the model was trained for (`<arch>.context_length`).
    pub context_len: usize,
    pub rope_base: f32,
    /// Linear rope scaling: positions are multiplied by this (1 / `rope.scaling.factor`).
    pub rope_freq_scale: f32,
    pub neox_rope: bool,
    /// Layers `l` with `(l + 1) % n == 0` have no rotary embedding (SmolLM3).
    pub no_rope_every: Option<usize>,
    /// Sliding-window attention: the window, and which layers use it.
    pub sliding_window: Option<usize>,
    pub sliding_layers: Vec<bool>,
    /// Scores `s` become `cap * tanh(s / cap)` before the softmax.
    pub attn_softcap: Option<f32>,
    /// Logits `z` become `cap * tanh(z / cap)`.
    pub final_softcap: Option<f32>,
    /// Scale of the query·key scores.
    pub attn_scale: f32,
    /// Token embeddings are multiplied by this (Gemma: √embd).
    pub embd_scale: Option<f32>,
    pub activation: Activation,
}

impl ModelConfig {
    pub fn from_gguf(g: &Gguf) -> Result<Self, ModelError> {
        let name = g.architecture();
        let arch = Arch::from_name(name).ok_or_else(|| ModelError::UnsupportedArchitecture {
            arch: name.to_string(),
        })?;
        let key = |k: &str| format!("{name}.{k}");
        let int = |k: &str| -> Result<usize, ModelError> {
            g.u64(&key(k))
                .and_then(|v| usize::try_from(v).ok())
                .ok_or_else(|| ModelError::Metadata(format!("no {} in the GGUF metadata", key(k))))
        };
        let opt_int = |k: &str| g.u64(&key(k)).and_then(|v| usize::try_from(v).ok());
        let float = |k: &str| g.f32(&key(k));

        let embd = int("embedding_length")?;
        let layers = int("block_count")?;
        let heads = int("attention.head_count")?;
        let kv_heads = opt_int("attention.head_count_kv").unwrap_or(heads);
        let ff = int("feed_forward_length")?;
        let bad = |what: String| Err(ModelError::Metadata(what));
        if embd == 0 || layers == 0 || heads == 0 || kv_heads == 0 || ff == 0 {
            return bad(format!(
                "a zero size: {embd} wide, {layers} layers, {heads} heads, {kv_heads} kv heads, \
                 {ff} feed-forward"
            ));
        }
        // Sizes far beyond any real model are refused before they size an allocation.
        if embd > 1 << 16 || layers > 1024 || heads > 1024 || ff > 1 << 20 {
            return bad(format!(
                "implausible sizes: {embd} wide, {layers} layers, {heads} heads, {ff} feed-forward"
            ));
        }
        let head_dim = opt_int("attention.key_length").unwrap_or(embd / heads);
        if let Some(v) = opt_int("attention.value_length")
            && v != head_dim
        {
            return Err(ModelError::Unsupported(format!(
                "value heads of {v} with key heads of {head_dim}"
            )));
        }
        if head_dim == 0 || !head_dim.is_multiple_of(2) || !heads.is_multiple_of(kv_heads) {
            return bad(format!(
                "attention shape {heads} heads × {head_dim}, {kv_heads} kv heads"
            ));
        }
        if let Some(rope_dim) = opt_int("rope.dimension_count")
            && rope_dim != head_dim
        {
            return Err(ModelError::Unsupported(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim} dimensions)"
            )));
        }
        let rope_freq_scale = match g.str(&key("rope.scaling.type")) {
            None | Some("none") | Some("linear") => float("rope.scaling.factor")
                .or_else(|| float("rope.scale_linear"))
                .filter(|f| *f != 0.0)
                .map_or(1.0, |f| 1.0 / f),
            Some(other) => {
                return Err(ModelError::Unsupported(format!(
                    "rope scaling {other:?} (linear and llama 3's frequency factors are)"
                )));
            }
        };
        let vocab = g
            .tensor("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| ModelError::Metadata("no token_embd.weight tensor".into()))?;

        let mut c = ModelConfig {
            arch,
            embd,
            layers,
            heads,
            kv_heads,
            head_dim,
            ff,
            vocab,
            eps: float("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            context_len: opt_int("context_length").unwrap_or(4096).max(1),
            rope_base: float("rope.freq_base").unwrap_or(10_000.0),
            rope_freq_scale,
            neox_rope: arch.neox_rope(),
            no_rope_every: None,
            sliding_window: None,
            sliding_layers: vec![false; layers],
            attn_softcap: None,
            final_softcap: None,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            embd_scale: None,
            activation: Activation::Silu,
        };
        match arch {
            Arch::Smollm3 => c.no_rope_every = Some(4),
            Arch::Gemma2 => {
                c.activation = Activation::GeluTanh;
                c.embd_scale = Some((embd as f32).sqrt());
                c.attn_softcap = float("attn_logit_softcapping").filter(|v| *v > 0.0);
                c.final_softcap = float("final_logit_softcapping").filter(|v| *v > 0.0);
                c.sliding_window = Some(opt_int("attention.sliding_window").unwrap_or(4096));
                // Every other layer, starting with the first (llama.cpp's pattern of 2).
                c.sliding_layers = (0..layers).map(|l| l % 2 == 0).collect();
                // Gemma 2 27B scales queries by the width per head of the model, not of a head.
                if layers == 46 {
                    c.attn_scale = 1.0 / ((embd / heads) as f32).sqrt();
                }
            }
            _ => {}
        }
        Ok(c)
    }

    pub fn q_dim(&self) -> usize {
        self.heads * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Whether layer `l` applies rotary embeddings.
    pub fn rope_on(&self, l: usize) -> bool {
        self.no_rope_every
            .is_none_or(|n| !(l + 1).is_multiple_of(n))
    }

    /// How many past positions layer `l` attends to (`None`: all).
    pub fn window(&self, l: usize) -> Option<usize> {
        self.sliding_window.filter(|_| self.sliding_layers[l])
    }

    /// Bytes of keys and values one token holds in the cache (f32, every layer).
    pub fn kv_bytes_per_token(&self) -> u64 {
        2 * self.layers as u64 * self.kv_dim() as u64 * 4
    }
}
