//! Tokenizers built from a GGUF file's own vocabulary metadata, matching llama.cpp token for
//! token: byte-level BPE (`gpt2`, with the pre-tokenizer named by `tokenizer.ggml.pre`),
//! SentencePiece (`llama`: Llama 2, Mistral, TinyLlama, Phi-3, Gemma 2/3) and Gemma 4's
//! SentencePiece-style BPE (`gemma4`).
//!
//! Special tokens (control, user-defined, unknown) are cut out of the text before the tokenizer
//! proper runs. A chat prompt is a sequence of [`Segment`]s so that control tokens are recognised
//! only where the chat template wrote them, never inside what a user typed. Decoding is a
//! per-token byte table, so streaming can emit exactly the bytes generated.

mod bpe;
mod pre;
mod spec;
mod spm;

use std::collections::HashMap;

use crate::gguf::Gguf;

pub use bpe::byte_decoder;
pub use spec::VocabSpec;

use bpe::Merges;
use pre::PreTokenizer;

/// llama.cpp token types (`tokenizer.ggml.token_type`).
const TYPE_NORMAL: i64 = 1;
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_BYTE: i64 = 6;

/// `tokenizer.ggml.model` values this crate implements.
const SUPPORTED_MODELS: &[&str] = &["gpt2", "llama", "gemma4"];

/// SentencePiece's visible space.
const SPACE: &str = "\u{2581}";

/// Token texts that end a turn in the chat formats we know, besides the declared EOS.
const END_OF_TURN_TEXTS: &[&str] = &[
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "<turn|>",
];

/// Why a vocabulary cannot be used, or a text cannot be tokenized.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer model {model:?} is not supported (supported: {supported})")]
    UnsupportedModel { model: String, supported: String },
    #[error("pre-tokenizer {pre:?} is not supported (supported: {supported})")]
    UnsupportedPre { pre: String, supported: String },
    #[error("GGUF metadata {key}: {problem}")]
    Metadata { key: String, problem: String },
    #[error("invalid vocabulary: {0}")]
    Invalid(String),
    /// The pre-tokenizer's regex gave up on this input (backtracking limit).
    #[error("cannot split the text into words: {0}")]
    Regex(String),
}

impl TokenizerError {
    /// True for errors about the vocabulary (the model cannot be loaded), false for errors about
    /// one input.
    pub fn is_load_error(&self) -> bool {
        !matches!(self, TokenizerError::Regex(_))
    }
}

/// A piece of a prompt, as the chat template produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Written by the template: control tokens in it (`<|im_start|>`) are parsed.
    Markup(String),
    /// Written by a user or the model (message content, a resumed answer): plain text, where
    /// `<|im_start|>` is just characters.
    Text(String),
}

/// Which algorithm turns text between special tokens into ids.
#[derive(Clone, Debug)]
enum Algorithm {
    /// Byte-level BPE: words' bytes spelled as GPT-2's printable characters, then merged.
    ByteLevelBpe { pre: PreTokenizer, merges: Merges },
    /// Gemma 4: BPE over raw UTF-8 with `▁` for space and `<0xNN>` byte fallback.
    RawBpe { pre: PreTokenizer, merges: Merges },
    /// SentencePiece with scores.
    Spm,
}

/// Encodes text to token ids and back.
#[derive(Clone)]
pub struct Tokenizer {
    algorithm: Algorithm,
    texts: Vec<String>,
    types: Vec<i64>,
    scores: Vec<f32>,
    by_text: HashMap<String, u32>,
    /// The token of each raw byte, where the vocabulary has one.
    byte_ids: [Option<u32>; 256],
    /// GPT-2's byte → character map (byte-level vocabularies only).
    byte_chars: [char; 256],
    /// Raw bytes each token stands for; empty for control tokens, which print nothing.
    token_bytes: Vec<Vec<u8>>,
    /// Text of control and unknown tokens, for decoding with special tokens shown.
    control_text: HashMap<u32, String>,
    /// Control, user-defined and unknown tokens, longest text first: the order they are cut out.
    specials: Vec<u32>,
    bos_id: Option<u32>,
    eos_id: u32,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    end_of_turn: Vec<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.texts.len())
            .field("bos_id", &self.bos_id)
            .field("eos_id", &self.eos_id)
            .field("add_bos", &self.add_bos)
            .field("end_of_turn", &self.end_of_turn)
            .finish_non_exhaustive()
    }
}

/// A run of text still to tokenize, or a special token already cut out.
enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

impl Tokenizer {
    /// Reads the `tokenizer.ggml.*` keys of a GGUF file.
    pub fn from_gguf(gguf: &Gguf) -> Result<Self, TokenizerError> {
        Self::from_spec(VocabSpec::from_gguf(gguf)?)
    }

    /// Builds the tokenizer from a vocabulary description.
    pub fn from_spec(spec: VocabSpec) -> Result<Self, TokenizerError> {
        let n = spec.tokens.len();
        if n == 0 {
            return Err(TokenizerError::Invalid("the vocabulary is empty".into()));
        }
        for (what, len) in [
            ("token types", spec.token_types.len()),
            ("scores", spec.scores.len()),
        ] {
            if len != 0 && len != n {
                return Err(TokenizerError::Invalid(format!(
                    "{len} {what} for {n} tokens"
                )));
            }
        }
        let types: Vec<i64> = if spec.token_types.is_empty() {
            vec![TYPE_NORMAL; n]
        } else {
            spec.token_types.clone()
        };
        let scores = if spec.scores.is_empty() {
            vec![0.0; n]
        } else {
            spec.scores.clone()
        };
        // llama.cpp names empty tokens so that every text maps back to one id.
        let texts: Vec<String> = spec
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    format!("[EMPTY_{i}]")
                } else {
                    t.clone()
                }
            })
            .collect();
        let by_text: HashMap<String, u32> = texts
            .iter()
            .enumerate()
            .map(|(id, t)| (t.clone(), id as u32))
            .collect();

        let byte_chars = bpe::byte_chars();
        let (algorithm, default_bos, default_eos, default_add_bos, add_space_prefix) =
            match spec.model.as_str() {
                "gpt2" => {
                    let pre = PreTokenizer::byte_level(&spec.pre)?;
                    let add_bos = pre.default_add_bos;
                    let merges = Merges::parse(&spec.merges, &by_text)?;
                    (
                        Algorithm::ByteLevelBpe { pre, merges },
                        None,
                        None,
                        add_bos,
                        false,
                    )
                }
                "gemma4" => {
                    let merges = Merges::parse(&spec.merges, &by_text)?;
                    let pre = PreTokenizer::gemma4()?;
                    (Algorithm::RawBpe { pre, merges }, None, None, true, false)
                }
                "llama" => (
                    Algorithm::Spm,
                    Some(1),
                    Some(2),
                    true,
                    spec.add_space_prefix.unwrap_or(true),
                ),
                other => {
                    return Err(TokenizerError::UnsupportedModel {
                        model: other.to_string(),
                        supported: SUPPORTED_MODELS.join(", "),
                    });
                }
            };
        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let bos_id = in_range(spec.bos_id.or(default_bos));
        let eos_id = spec
            .eos_id
            .or(default_eos)
            .ok_or_else(|| TokenizerError::Invalid("no EOS token".into()))?;
        if eos_id as usize >= n || spec.bos_id.is_some_and(|b| b as usize >= n) {
            return Err(TokenizerError::Invalid(
                "BOS/EOS id outside the vocabulary".into(),
            ));
        }
        let mut add_bos = spec.add_bos.unwrap_or(default_add_bos);
        if matches!(algorithm, Algorithm::RawBpe { .. }) {
            // llama.cpp forces BOS for Gemma 4, whatever the file says.
            add_bos = true;
        }

        let mut byte_ids = [None; 256];
        for (b, slot) in byte_ids.iter_mut().enumerate() {
            *slot = match algorithm {
                Algorithm::ByteLevelBpe { .. } => by_text.get(&byte_chars[b].to_string()).copied(),
                _ => by_text.get(&format!("<0x{b:02X}>")).copied().or_else(|| {
                    std::str::from_utf8(&[b as u8])
                        .ok()
                        .and_then(|s| by_text.get(s).copied())
                }),
            };
        }

        let decoder = byte_decoder();
        let mut token_bytes = Vec::with_capacity(n);
        let mut control_text = HashMap::new();
        let mut specials = Vec::new();
        for (id, text) in texts.iter().enumerate() {
            let kind = types[id];
            if matches!(kind, TYPE_CONTROL | TYPE_USER_DEFINED | TYPE_UNKNOWN) {
                specials.push(id as u32);
            }
            let bytes = match kind {
                TYPE_CONTROL | TYPE_UNKNOWN => {
                    control_text.insert(id as u32, text.clone());
                    Vec::new()
                }
                // llama.cpp stores user-defined tokens as plain text, not byte-level form.
                TYPE_USER_DEFINED => text.as_bytes().to_vec(),
                TYPE_BYTE => parse_byte_token(text).map_or_else(Vec::new, |b| vec![b]),
                _ => match algorithm {
                    Algorithm::ByteLevelBpe { .. } => byte_level_to_bytes(text, &decoder),
                    _ => text.replace(SPACE, " ").into_bytes(),
                },
            };
            token_bytes.push(bytes);
        }
        specials.sort_by_key(|&id| std::cmp::Reverse(texts[id as usize].len()));

        let mut end_of_turn = vec![eos_id];
        end_of_turn.extend(spec.eot_ids.iter().filter(|&&id| (id as usize) < n));
        for text in END_OF_TURN_TEXTS {
            if let Some(&id) = by_text.get(*text)
                && types[id as usize] == TYPE_CONTROL
            {
                end_of_turn.push(id);
            }
        }
        end_of_turn.sort_unstable();
        end_of_turn.dedup();

        Ok(Tokenizer {
            algorithm,
            texts,
            types,
            scores,
            by_text,
            byte_ids,
            byte_chars,
            token_bytes,
            control_text,
            specials,
            bos_id,
            eos_id,
            add_bos,
            add_eos: spec.add_eos.unwrap_or(false),
            add_space_prefix,
            end_of_turn,
        })
    }

    /// Token ids of `text`; control tokens written in the text (`<|im_start|>`) become their ids.
    /// For text from the model's own template or tests; never for what a user typed.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(text, false, true)
    }

    /// Token ids of plain `text`: control-token texts in it are ordinary characters.
    pub fn encode_text(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(text, false, false)
    }

    /// llama.cpp's `tokenize(text, add_special, parse_special)`: `add_special` adds BOS/EOS as
    /// the model asks; `parse_special` recognises control tokens written in the text
    /// (user-defined tokens are always recognised, as Hugging Face does).
    pub fn encode_with(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let fragments = self.partition(text, parse_special);
        let fragments: Vec<(String, Option<u32>)> = fragments
            .into_iter()
            .map(|f| match f {
                Fragment::Text(t) => (t.to_string(), None),
                Fragment::Token(id) => (String::new(), Some(id)),
            })
            .collect();
        self.encode_fragments(&fragments, add_special)
    }

    /// Token ids of a chat prompt: control tokens are parsed in the template's markup only, and
    /// BOS (when the model asks for it and the template did not write it) and EOS (when the
    /// model asks for it) are added. Text on both sides of a segment boundary is tokenized as
    /// one run, exactly as the rendered string would be.
    pub fn encode_prompt(&self, segments: &[Segment]) -> Result<Vec<u32>, TokenizerError> {
        let mut fragments: Vec<(String, Option<u32>)> = Vec::new();
        for segment in segments {
            let (text, parse_special) = match segment {
                Segment::Markup(t) => (t, true),
                Segment::Text(t) => (t, false),
            };
            for f in self.partition(text, parse_special) {
                match (f, fragments.last_mut()) {
                    (Fragment::Text(t), Some((run, None))) => run.push_str(t),
                    (Fragment::Text(t), _) => fragments.push((t.to_string(), None)),
                    (Fragment::Token(id), _) => fragments.push((String::new(), Some(id))),
                }
            }
        }
        let starts_with_bos =
            self.bos_id.is_some() && fragments.first().map(|f| f.1) == Some(self.bos_id);
        let mut ids = self.encode_fragments(&fragments, false)?;
        if let Some(bos) = self.bos_id.filter(|_| self.add_bos && !starts_with_bos) {
            ids.insert(0, bos);
        }
        if self.add_eos && ids.last() != Some(&self.eos_id) {
            ids.push(self.eos_id);
        }
        Ok(ids)
    }

    /// Cuts special tokens out of `text`, llama.cpp's way: each special token in turn, longest
    /// first, is found in what is still text. Without `parse_special`, only user-defined tokens.
    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        for &id in &self.specials {
            if !parse_special && self.types[id as usize] != TYPE_USER_DEFINED {
                continue;
            }
            let needle = self.texts[id as usize].as_str();
            if !fragments
                .iter()
                .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
            {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for f in fragments {
                let Fragment::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = rest.find(needle) {
                    if at > 0 {
                        next.push(Fragment::Text(&rest[..at]));
                    }
                    next.push(Fragment::Token(id));
                    rest = &rest[at + needle.len()..];
                }
                if !rest.is_empty() {
                    next.push(Fragment::Text(rest));
                }
            }
            fragments = next;
        }
        fragments
    }

    /// Tokenizes text runs and passes special tokens through (`(text, None)` / `("", Some(id))`).
    fn encode_fragments(
        &self,
        fragments: &[(String, Option<u32>)],
        add_special: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        let mut out = Vec::new();
        if add_special
            && self.add_bos
            && let Some(bos) = self.bos_id
        {
            out.push(bos);
        }
        // SentencePiece (as llama.cpp runs it) prefixes a space to every run that starts the text
        // or follows a special token.
        let mut after_special = true;
        for (text, token) in fragments {
            if let Some(id) = token {
                out.push(*id);
                after_special = true;
                continue;
            }
            match &self.algorithm {
                Algorithm::Spm => {
                    let mut escaped = String::with_capacity(text.len() + 3);
                    if self.add_space_prefix && after_special {
                        escaped.push_str(SPACE);
                    }
                    escaped.push_str(&text.replace(' ', SPACE));
                    spm::tokenize(self, &escaped, &mut out);
                }
                Algorithm::ByteLevelBpe { pre, merges } => {
                    for word in pre.split(text)? {
                        self.byte_level_word(pre, merges, word, &mut out);
                    }
                }
                Algorithm::RawBpe { pre, merges } => {
                    let escaped = text.replace(' ', SPACE);
                    for word in pre.split(&escaped)? {
                        self.raw_word(merges, word, &mut out);
                    }
                }
            }
            after_special = false;
        }
        if add_special && self.add_eos {
            out.push(self.eos_id);
        }
        Ok(out)
    }

    fn byte_level_word(&self, pre: &PreTokenizer, merges: &Merges, word: &str, out: &mut Vec<u32>) {
        if pre.ignore_merges {
            let spelled: String = word.bytes().map(|b| self.byte_chars[b as usize]).collect();
            if let Some(&id) = self.by_text.get(&spelled) {
                out.push(id);
                return;
            }
        }
        let pieces = word
            .bytes()
            .enumerate()
            .map(|(i, b)| (self.byte_ids[b as usize], i, i + 1));
        for (id, start, end) in bpe::merge(merges, pieces) {
            match id {
                Some(id) => out.push(id),
                None => out.extend(
                    word.as_bytes()[start..end]
                        .iter()
                        .filter_map(|&b| self.byte_ids[b as usize]),
                ),
            }
        }
    }

    fn raw_word(&self, merges: &Merges, word: &str, out: &mut Vec<u32>) {
        // Newline runs that are tokens stay whole (llama.cpp's fix for Gemma 4).
        if word.bytes().all(|b| b == b'\n')
            && let Some(&id) = self.by_text.get(word)
        {
            out.push(id);
            return;
        }
        let pieces = word.char_indices().map(|(i, c)| {
            (
                self.by_text.get(&word[i..i + c.len_utf8()]).copied(),
                i,
                i + c.len_utf8(),
            )
        });
        for (id, start, end) in bpe::merge(merges, pieces) {
            match id {
                Some(id) => out.push(id),
                None => out.extend(
                    word.as_bytes()[start..end]
                        .iter()
                        .filter_map(|&b| self.byte_ids[b as usize]),
                ),
            }
        }
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
        self.texts.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Whether prompts start with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos
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

impl spm::SpmVocab for Tokenizer {
    fn id(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    fn score(&self, id: u32) -> f32 {
        self.scores.get(id as usize).copied().unwrap_or(0.0)
    }

    fn byte_id(&self, byte: u8) -> Option<u32> {
        self.byte_ids[byte as usize]
    }
}

/// The byte of a `<0xNN>` token.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
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

#[cfg(test)]
mod tests;
