//! Orrery's own CPU inference for llama-architecture GGUF models: weights kept in their file
//! blocks and expanded in registers ([`kernels`]), and a batched forward pass that advances many
//! sequences per step over one shared copy of the weights ([`llama`]). candle reads the file
//! (and dequantizes formats the kernels do not handle); its `quantized_llama` is the reference
//! the node's engine tests check this against.
//!
//! A crate of its own so that debug and test builds can optimise it (see the workspace's
//! `Cargo.toml`) without optimising the whole node.

pub mod gguf;
pub mod kernels;
pub mod llama;
pub mod tokenizer;

pub use llama::{Feed, KvCache, Llama, LlamaConfig};
