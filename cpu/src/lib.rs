//! Orrery's own CPU inference for GGUF models: a defensive GGUF reader ([`gguf`]), weights kept
//! in their file blocks and expanded in registers with the SIMD path chosen at run time
//! ([`quant`]), and a batched forward pass over the supported decoder architectures that advances
//! many sequences per step over one shared copy of the weights ([`model`]). candle's
//! `quantized_llama` is the reference the node's engine tests check this against, and dequantizes
//! the few formats the kernels lack. [`grammar`] turns JSON schemas into token masks for
//! constrained decoding.
//!
//! A crate of its own so that debug and test builds can optimise it (see the workspace's
//! `Cargo.toml`) without optimising the whole node.

pub mod gguf;
pub mod grammar;
pub mod inspect;
pub mod model;
pub mod quant;
pub mod tokenizer;

/// The name the engine and the node have always imported the kernels by.
pub use quant as kernels;

pub use model::{Arch, Feed, KvCache, Model, ModelConfig, ModelError, Precision};
