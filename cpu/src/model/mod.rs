//! A decoder-only transformer on the CPU, batched: one forward pass advances several sequences at
//! once, each with its own KV cache and position, over one shared copy of the weights. Every
//! supported family (see [`config::Arch`]) is the llama block with switches: biases, q/k norms,
//! fused projections, post-norms, soft-caps, sliding windows, rope variants.
//!
//! Work is split between `threads` OS threads that run the whole pass together (each takes its
//! share of the matrix rows, tokens or attention heads of every phase) and meet at a spinning
//! barrier between phases, so a pass costs one thread start-up, not one per matrix product.

use std::fs::File;

use crate::gguf::{Gguf, GgufError};
use crate::kernels::Matrix;

pub mod config;
mod load;
mod pass;
mod spread;

pub use config::{Activation, Arch, ModelConfig, SUPPORTED};
use pass::{Buffers, Pass, Ptr, Shared, SpinBarrier};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("architecture {arch:?} is not supported (supported: {})", SUPPORTED.join(", "))]
    UnsupportedArchitecture { arch: String },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("{0}")]
    Metadata(String),
    #[error("tensor {name}: {problem}")]
    Tensor { name: String, problem: String },
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A feed the pass cannot run (the caller's mistake, not the model's).
    #[error("{0}")]
    BadFeed(String),
    #[error("the forward pass failed: {0}")]
    Pass(String),
}

/// The query, key and value projections: one fused matrix or three.
enum Qkv {
    Fused(Matrix),
    Split(Matrix, Matrix, Matrix),
}

/// The gate and up projections: one fused matrix (gate rows first) or two.
enum UpGate {
    Fused(Matrix),
    Split(Matrix, Matrix),
}

struct Layer {
    attn_norm: Vec<f32>,
    qkv: Qkv,
    /// Bias of the concatenated q, k, v outputs.
    qkv_bias: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: Matrix,
    wo_bias: Option<Vec<f32>>,
    attn_post_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    up_gate: UpGate,
    down: Matrix,
    ffn_post_norm: Option<Vec<f32>>,
}

impl Layer {
    fn matrices(&self) -> Vec<&Matrix> {
        let mut m = vec![&self.wo, &self.down];
        match &self.qkv {
            Qkv::Fused(f) => m.push(f),
            Qkv::Split(q, k, v) => m.extend([q, k, v]),
        }
        match &self.up_gate {
            UpGate::Fused(f) => m.push(f),
            UpGate::Split(g, u) => m.extend([g, u]),
        }
        m
    }

    fn vector_bytes(&self) -> usize {
        let opt = |v: &Option<Vec<f32>>| v.as_ref().map_or(0, Vec::len);
        4 * (self.attn_norm.len()
            + self.ffn_norm.len()
            + opt(&self.qkv_bias)
            + opt(&self.q_norm)
            + opt(&self.k_norm)
            + opt(&self.wo_bias)
            + opt(&self.attn_post_norm)
            + opt(&self.ffn_post_norm))
    }
}

/// How a model's weights and activations are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// Weights as stored in the file where the kernels have the format (any other is widened to
    /// f32 with a warning), expanded to f32 in registers; activations f32: the answers are the
    /// dequantized model's.
    #[default]
    Quantized,
    /// As `Quantized`, but K-quant matrices (Q4_K, Q5_K, Q6_K) take their activations rounded
    /// to 8 bits, as llama.cpp does (ggml's Q8_K), and multiply in integers: faster, and the
    /// answers are llama.cpp's on the same file.
    Int8,
    /// Every matrix widened to f32 at load: `Quantized`'s numerics at 4 bytes per weight.
    F32,
}

/// The weights, shared by every sequence.
pub struct Model {
    pub config: ModelConfig,
    embd: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None`: the output head is the embedding matrix (tied).
    output: Option<Matrix>,
    /// Divisors of the rotary frequencies (Llama 3, Phi-3 LongRoPE).
    rope_factors: Option<Vec<f32>>,
    threads: usize,
    /// Tensors that had to be widened to f32, with what it costs.
    pub warnings: Vec<String>,
}

/// One sequence's keys and values, every layer, f32.
#[derive(Default, Clone)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl KvCache {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.k.iter().chain(&self.v).map(|l| l.capacity() * 4).sum()
    }
}

/// One sequence's part of a forward pass: `tokens` at positions `pos..`, after the `pos` tokens
/// already in `cache` (anything the cache holds beyond `pos` is dropped first, so a failed pass
/// can be retried). `logits`: whether the caller needs the next-token logits.
pub struct Feed<'a> {
    pub tokens: &'a [u32],
    pub pos: usize,
    pub cache: &'a mut KvCache,
    pub logits: bool,
}

impl Model {
    /// Reads a model from its GGUF file. Matrices are kept in their file format where the
    /// kernels have one, as `precision` says. `context` is the longest sequence that will be run
    /// (it picks Phi-3's rope factors); 0 means the model's own context length.
    pub fn from_gguf(
        g: &Gguf,
        file: &mut File,
        threads: usize,
        precision: Precision,
        context: usize,
    ) -> Result<Self, ModelError> {
        let config = ModelConfig::from_gguf(g)?;
        let context = if context == 0 {
            config.context_len
        } else {
            context
        };
        let mut ld = load::Loader {
            g,
            file,
            dequantize: precision == Precision::F32,
            int8: precision == Precision::Int8,
            warnings: Vec::new(),
        };
        let c = &config;
        let layers = (0..c.layers)
            .map(|i| ld.layer(c, i))
            .collect::<Result<Vec<_>, _>>()?;
        let output = ld.opt_matrix("output.weight", c.vocab, c.embd)?;
        let rope_factors = ld.rope_factors(c, context)?;
        let embd = ld.matrix("token_embd.weight", c.vocab, c.embd)?;
        let out_norm = ld.vector("output_norm.weight", c.embd)?;
        let warnings = ld.warnings;
        Ok(Model {
            embd,
            out_norm,
            output,
            layers,
            rope_factors,
            threads: threads.max(1),
            warnings,
            config,
        })
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> u64 {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.matrices().iter().map(|m| m.bytes()).sum::<usize>() + l.vector_bytes())
            .sum();
        let head = self.output.as_ref().map_or(0, Matrix::bytes);
        (layers + head + self.embd.bytes() + 4 * self.out_norm.len()) as u64
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.config.layers],
            v: vec![Vec::new(); self.config.layers],
        }
    }

    fn check(&self, feeds: &[Feed<'_>]) -> Result<(), ModelError> {
        let c = &self.config;
        for feed in feeds {
            if feed.tokens.is_empty() {
                return Err(ModelError::BadFeed("a feed with no tokens".into()));
            }
            if feed.pos + feed.tokens.len() > c.context_len {
                return Err(ModelError::BadFeed(format!(
                    "position {} is past the context of {}",
                    feed.pos + feed.tokens.len(),
                    c.context_len
                )));
            }
            if let Some(bad) = feed.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(ModelError::BadFeed(format!(
                    "token id {bad} is outside the vocabulary"
                )));
            }
            if feed.cache.k.len() != c.layers {
                return Err(ModelError::BadFeed("a KV cache from another model".into()));
            }
        }
        Ok(())
    }

    /// One forward pass over every feed. Returns each feed's next-token logits (empty where not
    /// asked for).
    pub fn forward(&self, feeds: &mut [Feed<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        // First: an empty feed has no last token.
        self.check(feeds)?;
        // The last token of each feed that wants logits.
        let mut heads_for = Vec::new();
        let mut t = 0;
        for (f, feed) in feeds.iter().enumerate() {
            t += feed.tokens.len();
            if feed.logits {
                heads_for.push((f, t - 1));
            }
        }
        let Some(b) = self.pass(feeds, &heads_for, true)? else {
            return Ok(Vec::new());
        };
        let c = &self.config;
        let mut out = vec![Vec::new(); feeds.len()];
        for (i, (f, _)) in heads_for.iter().enumerate() {
            let mut logits = b.logits[i * c.vocab..(i + 1) * c.vocab].to_vec();
            if let Some(cap) = c.final_softcap {
                logits.iter_mut().for_each(|z| *z = cap * (*z / cap).tanh());
            }
            out[*f] = logits;
        }
        Ok(out)
    }

    /// The embedding of a text's tokens: the final (normed) hidden states of every token,
    /// averaged and scaled to unit length, as llama.cpp's server gives for a generative model
    /// with mean pooling. A fresh cache each call; at most the model's context.
    pub fn embed(&self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        let mut cache = self.new_cache();
        let mut feeds = [Feed {
            tokens,
            pos: 0,
            cache: &mut cache,
            logits: false,
        }];
        let rows: Vec<(usize, usize)> = (0..tokens.len()).map(|t| (0, t)).collect();
        let e = self.config.embd;
        let Some(b) = self.pass(&mut feeds, &rows, false)? else {
            return Err(ModelError::BadFeed("a feed with no tokens".into()));
        };
        let mut mean = vec![0f64; e];
        for row in b.last.chunks_exact(e) {
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, v)| *m += f64::from(*v));
        }
        let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt();
        let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        Ok(mean.iter().map(|v| (v * scale) as f32).collect())
    }

    /// Runs the layers over every feed; `heads_for` are the (feed, token row) rows whose final
    /// norm is kept (in `last`), and with `head`, their logits computed. `None` when no feed has
    /// tokens.
    fn pass(
        &self,
        feeds: &mut [Feed<'_>],
        heads_for: &[(usize, usize)],
        head: bool,
    ) -> Result<Option<Buffers>, ModelError> {
        self.check(feeds)?;
        let c = &self.config;
        let kvd = c.kv_dim();
        // Token rows of the batch: (feed, absolute position).
        let slots: Vec<(usize, usize)> = feeds
            .iter()
            .enumerate()
            .flat_map(|(f, feed)| (0..feed.tokens.len()).map(move |i| (f, feed.pos + i)))
            .collect();
        if slots.is_empty() {
            return Ok(None);
        }

        // Make room in the caches, then take their addresses: nothing reallocates them until the
        // pass is over.
        let caches: Vec<Vec<(Ptr, Ptr)>> = feeds
            .iter_mut()
            .map(|feed| {
                let len = (feed.pos + feed.tokens.len()) * kvd;
                let cache = &mut *feed.cache;
                cache
                    .k
                    .iter_mut()
                    .zip(cache.v.iter_mut())
                    .map(|(k, v)| {
                        k.truncate(feed.pos * kvd);
                        v.truncate(feed.pos * kvd);
                        k.resize(len, 0.0);
                        v.resize(len, 0.0);
                        (Ptr(k.as_mut_ptr()), Ptr(v.as_mut_ptr()))
                    })
                    .collect()
            })
            .collect();
        let mut b = Buffers::new(c, slots.len(), heads_for.len(), head);
        for (row, tok) in
            b.x.chunks_exact_mut(c.embd)
                .zip(feeds.iter().flat_map(|f| f.tokens.iter()))
        {
            self.embd.dequantize_row(*tok as usize, row);
            if let Some(s) = c.embd_scale {
                row.iter_mut().for_each(|v| *v *= s);
            }
        }
        let rope = pass::rope_table(c, self.rope_factors.as_deref(), slots.iter().map(|s| s.1));
        let max_pos = slots.iter().map(|s| s.1).max().unwrap_or(0);

        let threads = self.threads;
        let barrier = SpinBarrier::new(threads);
        let pass = Pass {
            model: self,
            slots: &slots,
            caches: &caches,
            heads_for,
            head,
            rope: &rope,
            buf: Shared::of(&mut b),
            barrier: &barrier,
            threads,
            scores_len: max_pos + 1,
        };
        let spread = spread::Spread::here(threads);
        let panicked = std::thread::scope(|s| {
            let workers: Vec<_> = (1..threads)
                .map(|tid| {
                    let (pass, spread) = (&pass, &spread);
                    std::thread::Builder::new()
                        .name("engine-worker".into())
                        .spawn_scoped(s, move || {
                            spread.apply();
                            pass.run_guarded(tid)
                        })
                })
                .collect();
            if workers.iter().any(|w| w.is_err()) {
                // Could not start every thread: release the ones that did.
                barrier.poison();
                return Err(ModelError::Pass("could not start its threads".into()));
            }
            let mine = pass.run_guarded(0);
            let theirs = workers
                .into_iter()
                .flatten()
                .all(|h| h.join().unwrap_or(false));
            Ok(!(mine && theirs))
        });
        if panicked? {
            return Err(ModelError::Pass("a thread panicked".into()));
        }
        Ok(Some(b))
    }
}
