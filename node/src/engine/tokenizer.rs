//! GPT-2-style byte-level BPE tokenizer built from a GGUF file's own vocabulary metadata.
//!
//! Encoding is delegated to Hugging Face `tokenizers` (the reference implementation of byte-level
//! BPE, already a dependency of candle-core), assembled programmatically the way the model's
//! `tokenizer.json` would be: special tokens split out verbatim first, then the pre-tokenizer named
//! by `tokenizer.ggml.pre`, then BPE over the GGUF merges. Decoding is a per-token byte table, so
//! streaming can emit exactly the bytes generated and never splits a UTF-8 character.

use std::collections::HashMap;

use orrery_cpu::gguf::{Gguf, Value};
use tokenizers::models::bpe::{BPE, Merges, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use super::EngineError;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;

/// Token texts that end a turn in the chat formats we know, besides the declared EOS.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|end|>",
    "<end_of_turn>",
];

/// Everything needed to build a tokenizer, as stored in GGUF metadata.
#[derive(Clone, Debug, Default)]
pub struct VocabSpec {
    /// Token strings in byte-level form (`Ġ` for space), indexed by id.
    pub tokens: Vec<String>,
    /// llama.cpp token types, same length as `tokens` (empty means all normal).
    pub token_types: Vec<i64>,
    /// Merge rules as "left right", in priority order.
    pub merges: Vec<String>,
    /// `tokenizer.ggml.pre`: the pre-tokenizer flavour.
    pub pre: String,
    pub bos_id: Option<u32>,
    pub eos_id: u32,
    /// `tokenizer.ggml.add_bos_token`: prompts start with BOS.
    pub add_bos: bool,
}

/// Encodes text to token ids and back.
#[derive(Clone)]
pub struct GgufTokenizer {
    inner: Tokenizer,
    /// Raw bytes each token stands for; empty for control tokens, which print nothing.
    token_bytes: Vec<Vec<u8>>,
    /// Text of control tokens, for decoding with special tokens shown.
    control_text: HashMap<u32, String>,
    by_text: HashMap<String, u32>,
    bos_id: Option<u32>,
    eos_id: u32,
    add_bos: bool,
    end_of_turn: Vec<u32>,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_size", &self.token_bytes.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("end_of_turn", &self.end_of_turn)
            .finish()
    }
}

impl GgufTokenizer {
    /// Reads the `tokenizer.ggml.*` keys of a GGUF file.
    pub fn from_gguf(g: &Gguf) -> Result<Self, EngineError> {
        let model = md_string(g, "tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(EngineError::Load(format!(
                "tokenizer.ggml.model {model:?} is not supported (only byte-level BPE \"gpt2\")"
            )));
        }
        let spec = VocabSpec {
            tokens: md_strings(g, "tokenizer.ggml.tokens")?,
            token_types: match g.get("tokenizer.ggml.token_type") {
                Some(v) => md_ints(v, "tokenizer.ggml.token_type")?,
                None => Vec::new(),
            },
            merges: md_strings(g, "tokenizer.ggml.merges")?,
            pre: md_string(g, "tokenizer.ggml.pre").unwrap_or_else(|_| "default".to_string()),
            bos_id: g
                .u64("tokenizer.ggml.bos_token_id")
                .and_then(|v| u32::try_from(v).ok()),
            eos_id: g
                .u64("tokenizer.ggml.eos_token_id")
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| EngineError::Load("no tokenizer.ggml.eos_token_id".into()))?,
            add_bos: g
                .get("tokenizer.ggml.add_bos_token")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        Self::from_spec(spec)
    }

    /// Builds the tokenizer from a vocabulary description.
    pub fn from_spec(spec: VocabSpec) -> Result<Self, EngineError> {
        let n = spec.tokens.len();
        if !spec.token_types.is_empty() && spec.token_types.len() != n {
            return Err(EngineError::Load(format!(
                "{} token types for {n} tokens",
                spec.token_types.len()
            )));
        }
        if spec.eos_id as usize >= n || spec.bos_id.is_some_and(|b| b as usize >= n) {
            return Err(EngineError::Load(
                "bos/eos id outside the vocabulary".into(),
            ));
        }
        let type_of = |id: usize| spec.token_types.get(id).copied().unwrap_or(1);

        let vocab: Vocab = spec
            .tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let mut merges: Merges = Vec::with_capacity(spec.merges.len());
        for m in &spec.merges {
            let (a, b) = m
                .split_once(' ')
                .ok_or_else(|| EngineError::Load(format!("malformed merge {m:?}")))?;
            merges.push((a.to_string(), b.to_string()));
        }
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| EngineError::Load(format!("building BPE: {e}")))?;

        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(&spec.pre)?));

        let decode_table = byte_decoder();
        let mut token_bytes = Vec::with_capacity(n);
        let mut control_text = HashMap::new();
        let mut added = Vec::new();
        for (id, text) in spec.tokens.iter().enumerate() {
            match type_of(id) {
                TYPE_CONTROL => {
                    added.push(AddedToken::from(text.clone(), true));
                    control_text.insert(id as u32, text.clone());
                    token_bytes.push(Vec::new());
                }
                TYPE_USER_DEFINED => {
                    // llama.cpp stores user-defined tokens as plain text, not byte-level form.
                    added.push(AddedToken::from(text.clone(), false));
                    token_bytes.push(text.as_bytes().to_vec());
                }
                _ => token_bytes.push(byte_level_to_bytes(text, &decode_table)),
            }
        }
        inner
            .add_special_tokens(added)
            .map_err(|e| EngineError::Load(format!("adding special tokens: {e}")))?;

        let by_text: HashMap<String, u32> = spec
            .tokens
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();
        let mut end_of_turn = vec![spec.eos_id];
        for text in END_OF_TURN_TEXTS {
            if let Some(&id) = by_text.get(*text)
                && type_of(id as usize) == TYPE_CONTROL
                && !end_of_turn.contains(&id)
            {
                end_of_turn.push(id);
            }
        }
        Ok(GgufTokenizer {
            inner,
            token_bytes,
            control_text,
            by_text,
            bos_id: spec.bos_id,
            eos_id: spec.eos_id,
            add_bos: spec.add_bos,
            end_of_turn,
        })
    }

    /// Token ids of `text`; control tokens written in the text (`<|im_start|>`) become their ids.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Token ids of a rendered prompt: [`Self::encode`], with BOS first when the model asks for it
    /// and the template did not write it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        let mut ids = self.encode(text)?;
        if let Some(bos) = self.bos_id.filter(|_| self.add_bos)
            && ids.first() != Some(&bos)
        {
            ids.insert(0, bos);
        }
        Ok(ids)
    }

    /// Text of `ids`, control tokens omitted; invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(self.token_bytes(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Text of `ids` with control tokens written out, the inverse of [`Self::encode`].
    pub fn decode_with_special(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match self.control_text.get(&id) {
                Some(text) => bytes.extend_from_slice(text.as_bytes()),
                None => bytes.extend_from_slice(self.token_bytes(id)),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The raw bytes a token stands for (empty for control tokens and unknown ids).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    pub fn token_to_id(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Text of a control token (`<|im_end|>`), for chat templates.
    pub fn control_text(&self, id: u32) -> Option<&str> {
        self.control_text.get(&id).map(String::as_str)
    }

    /// True for tokens that end the assistant's turn (EOS, `<|im_end|>`, ...).
    pub fn is_end_of_turn(&self, id: u32) -> bool {
        self.end_of_turn.contains(&id)
    }
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` value, as in the model's `tokenizer.json`.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, EngineError> {
    // add_prefix_space=false, trim_offsets=true, use_regex=true: the GPT-2 split regex.
    let byte_level = ByteLevel::new(false, true, true);
    match pre {
        // SmolLM / StarCoder split every digit apart before the GPT-2 regex.
        "smollm" | "starcoder" | "refact" => {
            Ok(Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into())
        }
        "default" | "gpt-2" | "gpt2" => Ok(byte_level.into()),
        other => Err(EngineError::Load(format!(
            "tokenizer.ggml.pre {other:?} is not supported"
        ))),
    }
}

/// GPT-2's reversible map from bytes to printable characters, inverted.
pub(crate) fn byte_decoder() -> HashMap<char, u8> {
    let mut printable: Vec<u32> = ('!' as u32..='~' as u32).collect();
    printable.extend('¡' as u32..='¬' as u32);
    printable.extend('®' as u32..='ÿ' as u32);
    let mut map = HashMap::with_capacity(256);
    let mut shifted = 0u32;
    for b in 0u32..256 {
        let c = if printable.contains(&b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        // Both ranges are valid scalar values (below 0x200), so `from_u32` cannot fail.
        if let Some(c) = char::from_u32(c) {
            map.insert(c, b as u8);
        }
    }
    map
}

fn byte_level_to_bytes(token: &str, table: &HashMap<char, u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.len());
    for c in token.chars() {
        match table.get(&c) {
            Some(&b) => out.push(b),
            // Not byte-level form (should not happen in a gpt2 vocabulary): keep the text.
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

fn md_string(g: &Gguf, key: &str) -> Result<String, EngineError> {
    g.str(key)
        .map(str::to_string)
        .ok_or_else(|| EngineError::Load(format!("no {key} string in GGUF metadata")))
}

fn md_strings(g: &Gguf, key: &str) -> Result<Vec<String>, EngineError> {
    g.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| EngineError::Load(format!("no {key} array in GGUF metadata")))?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| EngineError::Load(format!("{key}: not a string")))
        })
        .collect()
}

fn md_ints(value: &Value, key: &str) -> Result<Vec<i64>, EngineError> {
    value
        .as_array()
        .ok_or_else(|| EngineError::Load(format!("{key}: not an array")))?
        .iter()
        .map(|v| {
            v.as_i64()
                .ok_or_else(|| EngineError::Load(format!("{key}: not an integer")))
        })
        .collect()
}

#[cfg(test)]
#[path = "tokenizer_tests.rs"]
mod tests;
