//! Orrery's own CPU inference for llama-architecture GGUF models: weights kept in their file
//! blocks and expanded in registers ([`quant`]), and a batched forward pass that advances many
//! sequences per step over one shared copy of the weights ([`llama`]). candle reads the file
//! (and dequantizes formats the kernels do not handle); its `quantized_llama` is the reference
//! the node's engine tests check this against.
//!
//! A crate of its own so that debug and test builds can optimise it (see the workspace's
//! `Cargo.toml`) without optimising the whole node.

pub mod llama;
pub mod quant;

/// The name the engine and the node have always imported the kernels by.
pub use quant as kernels;

pub use llama::{Feed, KvCache, Llama, LlamaConfig};
