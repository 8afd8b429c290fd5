//! The vocabulary description a [`super::Tokenizer`] is built from, read from GGUF metadata
//! (`tokenizer.ggml.*`).

use crate::gguf::{Gguf, Value};

use super::TokenizerError;

/// Everything needed to build a tokenizer, as stored in GGUF metadata.
#[derive(Clone, Debug, Default)]
pub struct VocabSpec {
    /// `tokenizer.ggml.model`: `gpt2` (byte-level BPE), `llama` (SentencePiece), `gemma4`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the pre-tokenizer flavour of a BPE vocabulary (empty: `default`).
    pub pre: String,
    /// Token strings, indexed by id (byte-level form, `Ġ` for space, in `gpt2` vocabularies).
    pub tokens: Vec<String>,
    /// llama.cpp token types, same length as `tokens` (empty means all normal).
    pub token_types: Vec<i64>,
    /// SentencePiece scores, same length as `tokens` (empty means all zero).
    pub scores: Vec<f32>,
    /// BPE merge rules as "left right", in priority order.
    pub merges: Vec<String>,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    /// Declared end-of-turn / end-of-message tokens (`tokenizer.ggml.eot_token_id`, `eom`).
    pub eot_ids: Vec<u32>,
    /// `tokenizer.ggml.add_bos_token`; `None`: the model family's default.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`; `None`: false.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix` (SentencePiece); `None`: the model family's default.
    pub add_space_prefix: Option<bool>,
}

impl VocabSpec {
    /// Reads the `tokenizer.ggml.*` keys of a GGUF file.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, TokenizerError> {
        let model = gguf
            .str("tokenizer.ggml.model")
            .ok_or_else(|| missing("tokenizer.ggml.model"))?
            .to_string();
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            match gguf.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .and_then(|v| u32::try_from(v).ok())
                    .map(Some)
                    .ok_or_else(|| bad(key, "not a token id")),
            }
        };
        let flag = |key: &str| -> Result<Option<bool>, TokenizerError> {
            match gguf.get(key) {
                None => Ok(None),
                Some(v) => v
                    .as_bool()
                    .map(Some)
                    .ok_or_else(|| bad(key, "not a boolean")),
            }
        };
        Ok(VocabSpec {
            pre: gguf.str("tokenizer.ggml.pre").unwrap_or("").to_string(),
            tokens: array(gguf, "tokenizer.ggml.tokens", true, |v| {
                v.as_str().map(str::to_string)
            })?,
            token_types: array(gguf, "tokenizer.ggml.token_type", false, Value::as_i64)?,
            scores: array(gguf, "tokenizer.ggml.scores", false, Value::as_f32)?,
            merges: array(gguf, "tokenizer.ggml.merges", false, |v| {
                v.as_str().map(str::to_string)
            })?,
            bos_id: id("tokenizer.ggml.bos_token_id")?,
            eos_id: id("tokenizer.ggml.eos_token_id")?,
            eot_ids: [
                id("tokenizer.ggml.eot_token_id")?,
                id("tokenizer.ggml.eom_token_id")?,
            ]
            .into_iter()
            .flatten()
            .collect(),
            add_bos: flag("tokenizer.ggml.add_bos_token")?,
            add_eos: flag("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: flag("tokenizer.ggml.add_space_prefix")?,
            model,
        })
    }
}

fn missing(key: &str) -> TokenizerError {
    bad(key, "missing from the GGUF metadata")
}

fn bad(key: &str, problem: &str) -> TokenizerError {
    TokenizerError::Metadata {
        key: key.to_string(),
        problem: problem.to_string(),
    }
}

/// An array key's elements, converted by `f`; absent and not `required`: empty.
fn array<T>(
    gguf: &Gguf,
    key: &str,
    required: bool,
    f: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, TokenizerError> {
    let Some(value) = gguf.get(key) else {
        return if required {
            Err(missing(key))
        } else {
            Ok(Vec::new())
        };
    };
    let items = value.as_array().ok_or_else(|| bad(key, "not an array"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| f(v).ok_or_else(|| bad(key, &format!("element {i} has the wrong type"))))
        .collect()
}
