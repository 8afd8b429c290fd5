//! The tokenizer is orrery-cpu's ([`orrery_cpu::tokenizer`]); this module names it for the engine
//! and reads it from a model file.

use std::path::Path;

use orrery_cpu::gguf::Gguf;
pub use orrery_cpu::tokenizer::{
    Segment, Tokenizer as GgufTokenizer, TokenizerError, VocabSpec, byte_decoder,
};

use super::EngineError;

/// The tokenizer of the GGUF file at `path`, from its `tokenizer.ggml.*` metadata.
pub fn from_file(path: &Path) -> Result<GgufTokenizer, EngineError> {
    let gguf = Gguf::open(path)
        .map_err(|e| EngineError::Load(format!("reading {}: {e}", path.display())))?;
    GgufTokenizer::from_gguf(&gguf)
        .map_err(|e| EngineError::Load(format!("tokenizer of {}: {e}", path.display())))
}

#[cfg(test)]
#[path = "tokenizer_tests.rs"]
mod tests;
