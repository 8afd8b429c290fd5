//! The llama architecture on the CPU, batched: one forward pass advances several sequences at
//! once, each with its own KV cache and position, over one shared copy of the weights.
//!
//! Work is split between `threads` OS threads that run the whole pass together (each takes its
//! share of the matrix rows, tokens or attention heads of every phase) and meet at a spinning
//! barrier between phases, so a pass costs one thread start-up, not one per matrix product.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::{Content, TensorInfo};

use super::kernels::{Format, Matrix};

/// Shape and constants of a llama model, from GGUF metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub embd: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ff: usize,
    pub vocab: usize,
    pub rope_base: f32,
    pub eps: f32,
    pub context_len: usize,
}

impl LlamaConfig {
    pub fn from_gguf(content: &Content) -> Result<Self, String> {
        let md = &content.metadata;
        let int = |key: &str| -> Result<usize, String> {
            md.get(&format!("llama.{key}"))
                .and_then(|v| v.to_u32().ok())
                .map(|v| v as usize)
                .ok_or_else(|| format!("no llama.{key} in GGUF metadata"))
        };
        let float = |key: &str, default: f32| {
            md.get(&format!("llama.{key}"))
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(default)
        };
        let embd = int("embedding_length")?;
        let heads = int("attention.head_count")?.max(1);
        let kv_heads = int("attention.head_count_kv").unwrap_or(heads).max(1);
        let head_dim = embd / heads;
        if head_dim * heads != embd
            || !heads.is_multiple_of(kv_heads)
            || !head_dim.is_multiple_of(2)
        {
            return Err(format!(
                "unsupported attention shape: {embd} wide, {heads} heads, {kv_heads} kv heads"
            ));
        }
        if let Ok(rope_dim) = int("rope.dimension_count")
            && rope_dim != head_dim
        {
            return Err(format!(
                "partial rotary embeddings ({rope_dim} of {head_dim}) are not supported"
            ));
        }
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .map(|t| t.shape.dims()[0])
            .ok_or("no token_embd.weight tensor")?;
        Ok(LlamaConfig {
            embd,
            layers: int("block_count")?,
            heads,
            kv_heads,
            head_dim,
            ff: int("feed_forward_length")?,
            vocab,
            rope_base: float("rope.freq_base", 10_000.0),
            eps: float("attention.layer_norm_rms_epsilon", 1e-5),
            context_len: int("context_length").unwrap_or(4096),
        })
    }

    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Matrix,
    wk: Matrix,
    wv: Matrix,
    wo: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The weights, shared by every sequence.
pub struct Llama {
    pub config: LlamaConfig,
    embd: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None`: the output head is the embedding matrix (tied).
    output: Option<Matrix>,
    threads: usize,
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
        self.k.iter().chain(&self.v).map(|l| l.len() * 4).sum()
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

impl Llama {
    /// Reads a llama model from a parsed GGUF file. Matrices in F32, F16, Q4_0, Q4_1 or Q8_0 are
    /// kept as stored unless `dequantize`; other formats are dequantized to f32 by candle.
    pub fn from_gguf(
        content: &Content,
        file: &mut File,
        threads: usize,
        dequantize: bool,
    ) -> Result<Self, String> {
        let config = LlamaConfig::from_gguf(content)?;
        let read = |name: &str, file: &mut File| -> Result<Matrix, String> {
            let info = content
                .tensor_infos
                .get(name)
                .ok_or_else(|| format!("no tensor {name}"))?;
            read_matrix(content, info, file, dequantize).map_err(|e| format!("{name}: {e}"))
        };
        let vector = |name: &str, len: usize, file: &mut File| -> Result<Vec<f32>, String> {
            let v: Vec<f32> = content
                .tensor_infos
                .get(name)
                .ok_or_else(|| format!("no tensor {name}"))?
                .read(file, content.tensor_data_offset, &Device::Cpu)
                .and_then(|q| q.dequantize(&Device::Cpu))
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(|e| format!("{name}: {e}"))?;
            if v.len() != len {
                return Err(format!("{name}: expected {len} values, found {}", v.len()));
            }
            Ok(v)
        };
        let c = &config;
        let mut layers = Vec::with_capacity(c.layers);
        for i in 0..c.layers {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector(&p("attn_norm"), c.embd, file)?,
                ffn_norm: vector(&p("ffn_norm"), c.embd, file)?,
                wq: shaped(read(&p("attn_q"), file)?, c.embd, c.embd)?,
                wk: shaped(read(&p("attn_k"), file)?, c.kv_dim(), c.embd)?,
                wv: shaped(read(&p("attn_v"), file)?, c.kv_dim(), c.embd)?,
                wo: shaped(read(&p("attn_output"), file)?, c.embd, c.embd)?,
                gate: shaped(read(&p("ffn_gate"), file)?, c.ff, c.embd)?,
                up: shaped(read(&p("ffn_up"), file)?, c.ff, c.embd)?,
                down: shaped(read(&p("ffn_down"), file)?, c.embd, c.ff)?,
            });
        }
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(shaped(read("output.weight", file)?, c.vocab, c.embd)?)
        } else {
            None
        };
        Ok(Llama {
            embd: shaped(read("token_embd.weight", file)?, c.vocab, c.embd)?,
            out_norm: vector("output_norm.weight", c.embd, file)?,
            output,
            layers,
            threads: threads.max(1),
            config,
        })
    }

    /// Bytes of weights held.
    pub fn weight_bytes(&self) -> u64 {
        let mats = self
            .layers
            .iter()
            .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.gate, &l.up, &l.down]);
        let m: usize = mats.chain(self.output.iter()).map(Matrix::bytes).sum();
        (m + self.embd.bytes()) as u64
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.config.layers],
            v: vec![Vec::new(); self.config.layers],
        }
    }

    /// One forward pass over every feed. Returns each feed's next-token logits (empty where not
    /// asked for).
    pub fn forward(&self, feeds: &mut [Feed<'_>]) -> Result<Vec<Vec<f32>>, String> {
        let c = &self.config;
        let (e, kvd) = (c.embd, c.kv_dim());
        // Token rows of the batch: (feed, absolute position).
        let mut slots = Vec::new();
        for (f, feed) in feeds.iter().enumerate() {
            if feed.tokens.is_empty() {
                return Err("a feed with no tokens".into());
            }
            if feed.pos + feed.tokens.len() > c.context_len {
                return Err(format!(
                    "position {} is past the context of {}",
                    feed.pos + feed.tokens.len(),
                    c.context_len
                ));
            }
            if let Some(bad) = feed.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                return Err(format!("token id {bad} is outside the vocabulary"));
            }
            if feed.cache.k.len() != c.layers {
                return Err("a KV cache from another model".into());
            }
            slots.extend((0..feed.tokens.len()).map(|i| (f, feed.pos + i)));
        }
        let t_total = slots.len();
        if t_total == 0 {
            return Ok(Vec::new());
        }

        // Make room in the caches, then take their addresses: nothing reallocates them until the
        // pass is over.
        let mut caches: Vec<Vec<(Ptr, Ptr)>> = Vec::with_capacity(feeds.len());
        for feed in feeds.iter_mut() {
            let len = (feed.pos + feed.tokens.len()) * kvd;
            let cache = &mut *feed.cache;
            let per_layer = cache
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
                .collect();
            caches.push(per_layer);
        }
        // The last token of each feed that wants logits, and where its logits go.
        let mut heads_for = Vec::new();
        let mut t = 0;
        for (f, feed) in feeds.iter().enumerate() {
            t += feed.tokens.len();
            if feed.logits {
                heads_for.push((f, t - 1));
            }
        }

        let mut x = vec![0f32; t_total * e];
        for (row, tok) in x
            .chunks_exact_mut(e)
            .zip(feeds.iter().flat_map(|f| f.tokens.iter()))
        {
            self.embd.dequantize_row(*tok as usize, row);
        }
        let rope = rope_table(c, slots.iter().map(|s| s.1));
        let mut b = Buffers::new(c, t_total, heads_for.len());
        let max_pos = slots.iter().map(|s| s.1).max().unwrap_or(0);

        let threads = self.threads;
        let barrier = SpinBarrier::new(threads);
        let shared = Shared {
            x: Ptr(x.as_mut_ptr()),
            xn: Ptr(b.xn.as_mut_ptr()),
            q: Ptr(b.q.as_mut_ptr()),
            k: Ptr(b.k.as_mut_ptr()),
            v: Ptr(b.v.as_mut_ptr()),
            att: Ptr(b.att.as_mut_ptr()),
            o: Ptr(b.o.as_mut_ptr()),
            g: Ptr(b.g.as_mut_ptr()),
            u: Ptr(b.u.as_mut_ptr()),
            last: Ptr(b.last.as_mut_ptr()),
            logits: Ptr(b.logits.as_mut_ptr()),
        };
        let pass = Pass {
            model: self,
            slots: &slots,
            caches: &caches,
            heads_for: &heads_for,
            rope: &rope,
            buf: shared,
            barrier: &barrier,
            threads,
            scores_len: max_pos + 1,
        };
        let panicked = std::thread::scope(|s| {
            let workers: Vec<_> = (1..threads)
                .map(|tid| {
                    let pass = &pass;
                    std::thread::Builder::new()
                        .name("engine-worker".into())
                        .spawn_scoped(s, move || pass.run_guarded(tid))
                })
                .collect();
            if workers.iter().any(|w| w.is_err()) {
                // Could not start every thread: release the ones that did.
                barrier.poison();
                return Err("could not start the forward pass threads".to_string());
            }
            let mine = pass.run_guarded(0);
            let theirs = workers
                .into_iter()
                .flatten()
                .all(|h| h.join().unwrap_or(false));
            Ok(!(mine && theirs))
        });
        if panicked? {
            return Err("a forward pass thread panicked".into());
        }
        let mut out = vec![Vec::new(); feeds.len()];
        for (i, (f, _)) in heads_for.iter().enumerate() {
            out[*f] = b.logits[i * c.vocab..(i + 1) * c.vocab].to_vec();
        }
        Ok(out)
    }
}

fn shaped(m: Matrix, rows: usize, cols: usize) -> Result<Matrix, String> {
    if m.rows != rows || m.cols != cols {
        return Err(format!("{m:?}: expected {rows}x{cols}"));
    }
    Ok(m)
}

fn read_matrix(
    content: &Content,
    info: &TensorInfo,
    file: &mut File,
    dequantize: bool,
) -> Result<Matrix, String> {
    let dims = info.shape.dims();
    let (rows, cols) = match dims {
        [n] => (1, *n),
        [r, c] => (*r, *c),
        other => return Err(format!("unexpected shape {other:?}")),
    };
    let format = match info.ggml_dtype {
        GgmlDType::F32 => Some(Format::F32),
        GgmlDType::F16 => Some(Format::F16),
        GgmlDType::Q4_0 => Some(Format::Q4_0),
        GgmlDType::Q4_1 => Some(Format::Q4_1),
        GgmlDType::Q8_0 => Some(Format::Q8_0),
        _ => None,
    };
    match format.filter(|_| !dequantize) {
        Some(format) => {
            let elems = rows * cols;
            let bytes = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
            let mut data = vec![0u8; bytes];
            file.seek(SeekFrom::Start(content.tensor_data_offset + info.offset))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(|e| e.to_string())?;
            Ok(Matrix::new(rows, cols, format, data)?)
        }
        None => {
            let values: Vec<f32> = info
                .read(file, content.tensor_data_offset, &Device::Cpu)
                .and_then(|q| q.dequantize(&Device::Cpu))
                .and_then(|t| t.flatten_all())
                .and_then(|t| t.to_vec1())
                .map_err(|e| e.to_string())?;
            Ok(Matrix::from_f32(rows, cols, &values)?)
        }
    }
}

/// cos and sin of every (position, frequency) the pass needs, interleaved-pair rotation as GGUF
/// llama models are stored.
fn rope_table(c: &LlamaConfig, positions: impl Iterator<Item = usize>) -> Vec<(f32, f32)> {
    let half = c.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / c.rope_base.powf(2.0 * i as f32 / c.head_dim as f32))
        .collect();
    positions
        .flat_map(|p| {
            inv.iter().map(move |f| {
                let a = p as f32 * f;
                (a.cos(), a.sin())
            })
        })
        .collect()
}

struct Buffers {
    xn: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    g: Vec<f32>,
    u: Vec<f32>,
    last: Vec<f32>,
    logits: Vec<f32>,
}

impl Buffers {
    fn new(c: &LlamaConfig, t: usize, heads: usize) -> Self {
        let z = |n: usize| vec![0f32; n];
        Buffers {
            xn: z(t * c.embd),
            q: z(t * c.embd),
            k: z(t * c.kv_dim()),
            v: z(t * c.kv_dim()),
            att: z(t * c.embd),
            o: z(t * c.embd),
            g: z(t * c.ff),
            u: z(t * c.ff),
            last: z(heads * c.embd),
            logits: z(heads * c.vocab),
        }
    }
}

/// A buffer address handed to every thread of a pass. Each phase writes disjoint parts and the
/// barrier orders phases, so no element is written while another thread reads or writes it.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: see the type's doc: access is partitioned by phase and by index range.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// # Safety
    /// `range` lies in the buffer and no thread writes it during the borrow.
    unsafe fn get(&self, r: Range<usize>) -> &[f32] {
        unsafe { std::slice::from_raw_parts(self.0.add(r.start), r.len()) }
    }

    /// # Safety
    /// `range` lies in the buffer and no other thread reads or writes it during the borrow.
    #[allow(clippy::mut_from_ref)]
    unsafe fn get_mut(&self, r: Range<usize>) -> &mut [f32] {
        unsafe { std::slice::from_raw_parts_mut(self.0.add(r.start), r.len()) }
    }
}

#[derive(Clone, Copy)]
struct Shared {
    x: Ptr,
    xn: Ptr,
    q: Ptr,
    k: Ptr,
    v: Ptr,
    att: Ptr,
    o: Ptr,
    g: Ptr,
    u: Ptr,
    last: Ptr,
    logits: Ptr,
}

struct Pass<'a> {
    model: &'a Llama,
    /// (feed, absolute position) of each token row.
    slots: &'a [(usize, usize)],
    /// Per feed, per layer: the KV cache's keys and values.
    caches: &'a [Vec<(Ptr, Ptr)>],
    /// (feed, token row) of each logits row.
    heads_for: &'a [(usize, usize)],
    rope: &'a [(f32, f32)],
    buf: Shared,
    barrier: &'a SpinBarrier,
    threads: usize,
    /// Attention scores of the longest sequence in the pass.
    scores_len: usize,
}

/// `tid`'s share of `0..n`.
fn share(n: usize, tid: usize, threads: usize) -> Range<usize> {
    (n * tid / threads)..(n * (tid + 1) / threads)
}

impl Pass<'_> {
    /// [`Self::run`]; a panic poisons the barrier so the other threads stop too. Returns whether
    /// the thread finished its part.
    fn run_guarded(&self, tid: usize) -> bool {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(tid)));
        if done.is_err() {
            self.barrier.poison();
        }
        done.is_ok()
    }

    /// Thread `tid`'s part of the whole pass. Every thread runs every phase and waits at the
    /// barrier after it.
    fn run(&self, tid: usize) {
        let m = self.model;
        let c = &m.config;
        let (e, kvd, hd, ff) = (c.embd, c.kv_dim(), c.head_dim, c.ff);
        let t_total = self.slots.len();
        let nt = self.threads;
        let b = self.buf;
        let mut scratch = vec![0f32; self.scores_len];
        let my_tokens = share(t_total, tid, nt);
        // SAFETY (for every block below): each phase touches disjoint ranges per thread (its
        // tokens, rows or heads) and reads only what earlier phases completed before a barrier.
        for (l, layer) in m.layers.iter().enumerate() {
            // Residual from the previous layer's feed-forward, then the attention norm.
            for t in my_tokens.clone() {
                let x = unsafe { b.x.get_mut(t * e..(t + 1) * e) };
                if l > 0 {
                    let o = unsafe { b.o.get(t * e..(t + 1) * e) };
                    add(x, o);
                }
                rms_norm(x, &layer.attn_norm, c.eps, unsafe {
                    b.xn.get_mut(t * e..(t + 1) * e)
                });
            }
            self.barrier.wait();

            // Queries, keys, values: rows of the three matrices split between threads.
            let xn = unsafe { b.xn.get(0..t_total * e) };
            let rows = share(e + 2 * kvd, tid, nt);
            let parts = [
                (&layer.wq, b.q, 0),
                (&layer.wk, b.k, e),
                (&layer.wv, b.v, e + kvd),
            ];
            for (mat, out, start) in parts {
                let lo = rows.start.max(start).min(start + mat.rows);
                let hi = rows.end.max(start).min(start + mat.rows);
                if lo < hi {
                    unsafe { mat.mul_rows(lo - start..hi - start, xn, out.0, mat.rows) };
                }
            }
            self.barrier.wait();

            // Rotary embeddings; keys and values into the caches.
            let half = hd / 2;
            for t in my_tokens.clone() {
                let (f, pos) = self.slots[t];
                let rope = &self.rope[t * half..(t + 1) * half];
                let q = unsafe { b.q.get_mut(t * e..(t + 1) * e) };
                q.chunks_exact_mut(hd).for_each(|h| rotate(h, rope));
                let k = unsafe { b.k.get_mut(t * kvd..(t + 1) * kvd) };
                k.chunks_exact_mut(hd).for_each(|h| rotate(h, rope));
                let (ck, cv) = self.caches[f][l];
                unsafe {
                    ck.get_mut(pos * kvd..(pos + 1) * kvd).copy_from_slice(k);
                    cv.get_mut(pos * kvd..(pos + 1) * kvd)
                        .copy_from_slice(b.v.get(t * kvd..(t + 1) * kvd));
                }
            }
            self.barrier.wait();

            // Causal attention, (token, head) pairs split between threads.
            let group = c.heads / c.kv_heads;
            let scale = 1.0 / (hd as f32).sqrt();
            for item in share(t_total * c.heads, tid, nt) {
                let (t, h) = (item / c.heads, item % c.heads);
                let (f, pos) = self.slots[t];
                let (ck, cv) = self.caches[f][l];
                let kv_off = (h / group) * hd;
                let q = unsafe { b.q.get(t * e + h * hd..t * e + (h + 1) * hd) };
                let scores = &mut scratch[..pos + 1];
                let keys = unsafe { ck.get(0..(pos + 1) * kvd) };
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(q, &keys[j * kvd + kv_off..j * kvd + kv_off + hd]) * scale;
                }
                softmax(scores);
                let out = unsafe { b.att.get_mut(t * e + h * hd..t * e + (h + 1) * hd) };
                out.fill(0.0);
                let values = unsafe { cv.get(0..(pos + 1) * kvd) };
                for (j, w) in scores.iter().enumerate() {
                    axpy(*w, &values[j * kvd + kv_off..j * kvd + kv_off + hd], out);
                }
            }
            self.barrier.wait();

            // Attention output projection.
            let att = unsafe { b.att.get(0..t_total * e) };
            let rows = share(e, tid, nt);
            unsafe { layer.wo.mul_rows(rows, att, b.o.0, e) };
            self.barrier.wait();

            for t in my_tokens.clone() {
                let x = unsafe { b.x.get_mut(t * e..(t + 1) * e) };
                add(x, unsafe { b.o.get(t * e..(t + 1) * e) });
                rms_norm(x, &layer.ffn_norm, c.eps, unsafe {
                    b.xn.get_mut(t * e..(t + 1) * e)
                });
            }
            self.barrier.wait();

            // Gate and up for this thread's rows, then SiLU(gate) * up in place of the gate.
            let xn = unsafe { b.xn.get(0..t_total * e) };
            let rows = share(ff, tid, nt);
            unsafe {
                layer.gate.mul_rows(rows.clone(), xn, b.g.0, ff);
                layer.up.mul_rows(rows.clone(), xn, b.u.0, ff);
            }
            for t in 0..t_total {
                let g = unsafe { b.g.get_mut(t * ff + rows.start..t * ff + rows.end) };
                let u = unsafe { b.u.get(t * ff + rows.start..t * ff + rows.end) };
                for (g, u) in g.iter_mut().zip(u) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            }
            self.barrier.wait();

            let h = unsafe { b.g.get(0..t_total * ff) };
            let rows = share(e, tid, nt);
            unsafe { layer.down.mul_rows(rows, h, b.o.0, e) };
            self.barrier.wait();
        }

        // Final residual and norm, only for the rows whose logits are wanted.
        for i in share(self.heads_for.len(), tid, nt) {
            let t = self.heads_for[i].1;
            let x = unsafe { b.x.get_mut(t * e..(t + 1) * e) };
            add(x, unsafe { b.o.get(t * e..(t + 1) * e) });
            rms_norm(x, &m.out_norm, c.eps, unsafe {
                b.last.get_mut(i * e..(i + 1) * e)
            });
        }
        self.barrier.wait();
        if !self.heads_for.is_empty() {
            let head = m.output.as_ref().unwrap_or(&m.embd);
            let last = unsafe { b.last.get(0..self.heads_for.len() * e) };
            let rows = share(c.vocab, tid, nt);
            unsafe { head.mul_rows(rows, last, b.logits.0, c.vocab) };
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    for ((o, x), w) in out.iter_mut().zip(x).zip(w) {
        *o = x * inv * w;
    }
}

/// Rotates interleaved pairs `(h[2i], h[2i+1])` by the angles of `rope`.
fn rotate(h: &mut [f32], rope: &[(f32, f32)]) {
    for (pair, (cos, sin)) in h.chunks_exact_mut(2).zip(rope) {
        let (a, b) = (pair[0], pair[1]);
        pair[0] = a * cos - b * sin;
        pair[1] = a * sin + b * cos;
    }
}

/// Eight-lane partial sums, which the compiler keeps in one vector register.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, x)| *y += a * x);
}

fn softmax(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in s.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    s.iter_mut().for_each(|v| *v *= inv);
}

/// All threads of a pass wait here until the last arrives. Spins briefly (phases are short),
/// then yields so an oversubscribed machine still makes progress.
struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// A thread failed: everyone waiting, or arriving later, panics out of the pass.
    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    fn wait(&self) {
        if self.poisoned.load(Ordering::Acquire) {
            panic!("another thread of the forward pass failed");
        }
        if self.threads == 1 {
            return;
        }
        let gen_now = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == gen_now {
            if self.poisoned.load(Ordering::Acquire) {
                panic!("another thread of the forward pass failed");
            }
            if spins < 4096 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}
