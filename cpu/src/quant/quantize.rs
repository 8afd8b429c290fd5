//! Quantizers producing GGUF file bytes, ported from ggml's reference quantizers.

use super::format::Format;

/// Why values could not be quantized or bytes dequantized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuantError {
    /// `len` values are not a whole number of `format` blocks.
    Values { format: Format, len: usize },
    /// `len` bytes are not a whole number of `format` blocks.
    Bytes { format: Format, len: usize },
}

impl std::fmt::Display for QuantError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuantError::Values { format, len } => write!(
                f,
                "{len} values are not whole {} blocks of {}",
                format.name(),
                format.block_weights()
            ),
            QuantError::Bytes { format, len } => write!(
                f,
                "{len} bytes are not whole {} blocks of {} bytes",
                format.name(),
                format.file_block_bytes()
            ),
        }
    }
}

impl std::error::Error for QuantError {}
