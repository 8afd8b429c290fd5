//! The forward pass itself: every thread runs every phase of every layer on its share of the
//! work and waits at a barrier after each phase.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::config::{Activation, ModelConfig};
use super::{Model, Qkv, UpGate};

/// cos and sin of every (position, frequency) the pass needs.
pub(super) fn rope_table(
    c: &ModelConfig,
    factors: Option<&[f32]>,
    positions: impl Iterator<Item = usize>,
) -> Vec<(f32, f32)> {
    let half = c.head_dim / 2;
    let inv: Vec<f64> = (0..half)
        .map(|i| {
            let f = (c.rope_base as f64).powf(-2.0 * i as f64 / c.head_dim as f64);
            f * c.rope_freq_scale as f64 / factors.map_or(1.0, |fs| fs[i] as f64)
        })
        .collect();
    positions
        .flat_map(|p| {
            inv.iter().map(move |f| {
                let a = p as f64 * f;
                (a.cos() as f32, a.sin() as f32)
            })
        })
        .collect()
}

pub(super) struct Buffers {
    pub x: Vec<f32>,
    xn: Vec<f32>,
    /// Queries, keys and values of each token, side by side.
    qkv: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    /// Gate and up outputs of each token, side by side.
    gu: Vec<f32>,
    h: Vec<f32>,
    /// Final-normed hidden state of each head row.
    pub last: Vec<f32>,
    pub logits: Vec<f32>,
}

impl Buffers {
    /// Buffers for `t` token rows and `heads` head rows, with logits for them when `logits`.
    pub fn new(c: &ModelConfig, t: usize, heads: usize, logits: bool) -> Self {
        let z = |n: usize| vec![0f32; n];
        Buffers {
            x: z(t * c.embd),
            xn: z(t * c.embd),
            qkv: z(t * (c.q_dim() + 2 * c.kv_dim())),
            att: z(t * c.q_dim()),
            o: z(t * c.embd),
            gu: z(t * 2 * c.ff),
            h: z(t * c.ff),
            last: z(heads * c.embd),
            logits: z(if logits { heads * c.vocab } else { 0 }),
        }
    }
}

/// A buffer address handed to every thread of a pass. Each phase writes disjoint parts and the
/// barrier orders phases, so no element is written while another thread reads or writes it.
#[derive(Clone, Copy)]
pub(super) struct Ptr(pub *mut f32);
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

    /// # Safety
    /// `n` lies in the buffer.
    unsafe fn add(&self, n: usize) -> *mut f32 {
        unsafe { self.0.add(n) }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Shared {
    x: Ptr,
    xn: Ptr,
    qkv: Ptr,
    att: Ptr,
    o: Ptr,
    gu: Ptr,
    h: Ptr,
    last: Ptr,
    logits: Ptr,
}

impl Shared {
    pub fn of(b: &mut Buffers) -> Self {
        Shared {
            x: Ptr(b.x.as_mut_ptr()),
            xn: Ptr(b.xn.as_mut_ptr()),
            qkv: Ptr(b.qkv.as_mut_ptr()),
            att: Ptr(b.att.as_mut_ptr()),
            o: Ptr(b.o.as_mut_ptr()),
            gu: Ptr(b.gu.as_mut_ptr()),
            h: Ptr(b.h.as_mut_ptr()),
            last: Ptr(b.last.as_mut_ptr()),
            logits: Ptr(b.logits.as_mut_ptr()),
        }
    }
}

pub(super) struct Pass<'a> {
    pub model: &'a Model,
    /// (feed, absolute position) of each token row.
    pub slots: &'a [(usize, usize)],
    /// Per feed, per layer: the KV cache's keys and values.
    pub caches: &'a [Vec<(Ptr, Ptr)>],
    /// (feed, token row) of each logits row.
    pub heads_for: &'a [(usize, usize)],
    /// Whether the output head runs on those rows (false: only their final norm, for
    /// embeddings).
    pub head: bool,
    pub rope: &'a [(f32, f32)],
    pub buf: Shared,
    pub barrier: &'a SpinBarrier,
    pub threads: usize,
    /// Attention scores of the longest sequence in the pass.
    pub scores_len: usize,
}

/// `tid`'s share of `0..n`.
fn share(n: usize, tid: usize, threads: usize) -> Range<usize> {
    (n * tid / threads)..(n * (tid + 1) / threads)
}

impl Pass<'_> {
    /// [`Self::run`]; a panic poisons the barrier so the other threads stop too. Returns whether
    /// the thread finished its part.
    pub fn run_guarded(&self, tid: usize) -> bool {
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run(tid)));
        if done.is_err() {
            self.barrier.poison();
        }
        done.is_ok()
    }

    /// The residual of a block's output `o` (after its post-norm, if any) into `x`.
    fn residual(&self, t: usize, post_norm: Option<&[f32]>) {
        let (b, e) = (self.buf, self.model.config.embd);
        // SAFETY: token `t` is this thread's; the phase before ended at a barrier.
        let o = unsafe { b.o.get_mut(t * e..(t + 1) * e) };
        if let Some(w) = post_norm {
            rms_norm_in_place(o, w, self.model.config.eps);
        }
        add(unsafe { b.x.get_mut(t * e..(t + 1) * e) }, o);
    }

    /// Thread `tid`'s part of the whole pass. Every thread runs every phase and waits at the
    /// barrier after it.
    fn run(&self, tid: usize) {
        let m = self.model;
        let c = &m.config;
        let (e, qd, kvd, hd, ff) = (c.embd, c.q_dim(), c.kv_dim(), c.head_dim, c.ff);
        let width = qd + 2 * kvd;
        let t_total = self.slots.len();
        let nt = self.threads;
        let b = self.buf;
        let mut scratch = vec![0f32; self.scores_len];
        let my_tokens = share(t_total, tid, nt);
        // SAFETY (for every block below): each phase touches disjoint ranges per thread (its
        // tokens, rows or heads) and reads only what earlier phases completed before a barrier.
        for (l, layer) in m.layers.iter().enumerate() {
            for t in my_tokens.clone() {
                if l > 0 {
                    self.residual(t, m.layers[l - 1].ffn_post_norm.as_deref());
                }
                let x = unsafe { b.x.get(t * e..(t + 1) * e) };
                rms_norm(x, &layer.attn_norm, c.eps, unsafe {
                    b.xn.get_mut(t * e..(t + 1) * e)
                });
            }
            self.barrier.wait();

            // Queries, keys, values: rows of the projections split between threads.
            let xn = unsafe { b.xn.get(0..t_total * e) };
            let rows = share(width, tid, nt);
            match &layer.qkv {
                Qkv::Fused(mat) => unsafe { mat.mul_rows(rows, xn, b.qkv.0, width) },
                Qkv::Split(q, k, v) => {
                    for (mat, start) in [(q, 0), (k, qd), (v, qd + kvd)] {
                        let lo = rows.start.clamp(start, start + mat.rows());
                        let hi = rows.end.clamp(start, start + mat.rows());
                        if lo < hi {
                            unsafe {
                                mat.mul_rows(lo - start..hi - start, xn, b.qkv.add(start), width)
                            };
                        }
                    }
                }
            }
            self.barrier.wait();

            // Biases, q/k norms, rotary embeddings; keys and values into the caches.
            let half = hd / 2;
            for t in my_tokens.clone() {
                let (f, pos) = self.slots[t];
                let row = unsafe { b.qkv.get_mut(t * width..(t + 1) * width) };
                if let Some(bias) = &layer.qkv_bias {
                    add(row, bias);
                }
                let (q, kv) = row.split_at_mut(qd);
                let (k, v) = kv.split_at_mut(kvd);
                for (heads, norm) in [(&mut *q, &layer.q_norm), (&mut *k, &layer.k_norm)] {
                    if let Some(w) = norm {
                        heads
                            .chunks_exact_mut(hd)
                            .for_each(|h| rms_norm_in_place(h, w, c.eps));
                    }
                    if c.rope_on(l) {
                        let rope = &self.rope[t * half..(t + 1) * half];
                        heads
                            .chunks_exact_mut(hd)
                            .for_each(|h| rotate(h, rope, c.neox_rope));
                    }
                }
                let (ck, cv) = self.caches[f][l];
                unsafe {
                    ck.get_mut(pos * kvd..(pos + 1) * kvd).copy_from_slice(k);
                    cv.get_mut(pos * kvd..(pos + 1) * kvd).copy_from_slice(v);
                }
            }
            self.barrier.wait();

            // Causal attention, (token, head) pairs split between threads.
            let group = c.heads / c.kv_heads;
            let window = c.window(l);
            for item in share(t_total * c.heads, tid, nt) {
                let (t, h) = (item / c.heads, item % c.heads);
                let (f, pos) = self.slots[t];
                let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
                let (ck, cv) = self.caches[f][l];
                let kv_off = (h / group) * hd;
                let q = unsafe { b.qkv.get(t * width + h * hd..t * width + (h + 1) * hd) };
                let scores = &mut scratch[first..pos + 1];
                let keys = unsafe { ck.get(0..(pos + 1) * kvd) };
                for (j, s) in (first..).zip(scores.iter_mut()) {
                    *s = dot(q, &keys[j * kvd + kv_off..j * kvd + kv_off + hd]) * c.attn_scale;
                }
                if let Some(cap) = c.attn_softcap {
                    scores.iter_mut().for_each(|s| *s = cap * (*s / cap).tanh());
                }
                softmax(scores);
                let out = unsafe { b.att.get_mut(t * qd + h * hd..t * qd + (h + 1) * hd) };
                out.fill(0.0);
                let values = unsafe { cv.get(0..(pos + 1) * kvd) };
                for (j, w) in (first..).zip(scores.iter()) {
                    axpy(*w, &values[j * kvd + kv_off..j * kvd + kv_off + hd], out);
                }
            }
            self.barrier.wait();

            // Attention output projection.
            let att = unsafe { b.att.get(0..t_total * qd) };
            unsafe { layer.wo.mul_rows(share(e, tid, nt), att, b.o.0, e) };
            self.barrier.wait();

            for t in my_tokens.clone() {
                if let Some(bias) = &layer.wo_bias {
                    add(unsafe { b.o.get_mut(t * e..(t + 1) * e) }, bias);
                }
                self.residual(t, layer.attn_post_norm.as_deref());
                let x = unsafe { b.x.get(t * e..(t + 1) * e) };
                rms_norm(x, &layer.ffn_norm, c.eps, unsafe {
                    b.xn.get_mut(t * e..(t + 1) * e)
                });
            }
            self.barrier.wait();

            // Gate and up for this thread's rows, then act(gate) * up.
            let xn = unsafe { b.xn.get(0..t_total * e) };
            let rows = share(ff, tid, nt);
            unsafe {
                match &layer.up_gate {
                    UpGate::Split(gate, up) => {
                        gate.mul_rows(rows.clone(), xn, b.gu.0, 2 * ff);
                        up.mul_rows(rows.clone(), xn, b.gu.add(ff), 2 * ff);
                    }
                    UpGate::Fused(m) => {
                        m.mul_rows(rows.clone(), xn, b.gu.0, 2 * ff);
                        m.mul_rows(ff + rows.start..ff + rows.end, xn, b.gu.0, 2 * ff);
                    }
                }
            }
            for t in 0..t_total {
                let gu = unsafe { b.gu.get(t * 2 * ff..(t + 1) * 2 * ff) };
                let h = unsafe { b.h.get_mut(t * ff + rows.start..t * ff + rows.end) };
                for (j, h) in rows.clone().zip(h) {
                    let (g, u) = (gu[j], gu[ff + j]);
                    *h = match c.activation {
                        Activation::Silu => g / (1.0 + (-g).exp()) * u,
                        Activation::GeluTanh => gelu_tanh(g) * u,
                    };
                }
            }
            self.barrier.wait();

            let h = unsafe { b.h.get(0..t_total * ff) };
            unsafe { layer.down.mul_rows(share(e, tid, nt), h, b.o.0, e) };
            self.barrier.wait();
        }

        // Final residual and norm, only for the rows whose logits are wanted.
        let last_post = m.layers.last().and_then(|l| l.ffn_post_norm.as_deref());
        for i in share(self.heads_for.len(), tid, nt) {
            let t = self.heads_for[i].1;
            self.residual(t, last_post);
            rms_norm(
                unsafe { b.x.get(t * e..(t + 1) * e) },
                &m.out_norm,
                c.eps,
                unsafe { b.last.get_mut(i * e..(i + 1) * e) },
            );
        }
        self.barrier.wait();
        if self.head && !self.heads_for.is_empty() {
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

fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    let ms = x.iter().map(|v| v * v).sum::<f32>() / x.len() as f32;
    let inv = 1.0 / (ms + eps).sqrt();
    x.iter_mut().zip(w).for_each(|(x, w)| *x *= inv * w);
}

/// Rotates a head by the angles of `rope`: adjacent pairs `(2i, 2i+1)` (llama) or the pairs
/// `(i, i + half)` of the two halves (GPT-NeoX style).
fn rotate(h: &mut [f32], rope: &[(f32, f32)], neox: bool) {
    let half = h.len() / 2;
    for (i, (cos, sin)) in rope.iter().enumerate() {
        let (ia, ib) = if neox {
            (i, i + half)
        } else {
            (2 * i, 2 * i + 1)
        };
        let (a, b) = (h[ia], h[ib]);
        h[ia] = a * cos - b * sin;
        h[ib] = a * sin + b * cos;
    }
}

fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
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
pub(super) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// A thread failed: everyone waiting, or arriving later, panics out of the pass.
    pub fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    pub fn wait(&self) {
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
