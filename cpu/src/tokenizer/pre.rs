//! Pre-tokenizers: how a text is cut into words before BPE, per `tokenizer.ggml.pre`. Each flavour
//! is the split regexes of the model's `tokenizer.json` (as llama.cpp lists them), applied in
//! order, every match and every gap between matches becoming a word of its own.

use fancy_regex::Regex;

use super::TokenizerError;

/// GPT-2's split: contractions, letters, numbers, other symbols, whitespace.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// Llama 3 (tiktoken cl100k): case-insensitive contractions, numbers in runs of up to three.
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2: Llama 3's split with every digit apart.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 3.5: Qwen 2's split with combining marks kept on their letters.
const QWEN35: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The flavours this crate implements, with the `tokenizer.ggml.pre` names that select them.
const FLAVOURS: &[(&[&str], Flavour)] = &[
    (&["default", ""], Flavour::Default),
    (
        &["gpt-2", "gpt2", "mpt", "olmo", "phi-2", "jais", "trillion"],
        Flavour::Gpt2,
    ),
    (
        &[
            "llama-bpe",
            "llama3",
            "llama-v3",
            "falcon3",
            "pixtral",
            "lfm2",
        ],
        Flavour::Llama3,
    ),
    (&["qwen2", "deepseek-r1-qwen", "stablelm2"], Flavour::Qwen2),
    (&["qwen35"], Flavour::Qwen35),
    (
        &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva",
        ],
        Flavour::Smollm,
    ),
    (&["falcon"], Flavour::Falcon),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Default,
    Gpt2,
    Llama3,
    Qwen2,
    Qwen35,
    Smollm,
    Falcon,
    /// Gemma 4's SentencePiece-style BPE: only newline runs are cut apart.
    Gemma4,
}

/// The `tokenizer.ggml.pre` names of byte-level BPE vocabularies this crate can split.
pub fn supported_names() -> Vec<&'static str> {
    FLAVOURS
        .iter()
        .flat_map(|(names, _)| names.iter().copied())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A compiled pre-tokenizer.
#[derive(Clone, Debug)]
pub struct PreTokenizer {
    regexes: Vec<Regex>,
    /// Words that are whole tokens skip the merges (tiktoken-style vocabularies).
    pub ignore_merges: bool,
    /// Prompts start with BOS unless the file says otherwise (llama.cpp's rule for Llama 3).
    pub default_add_bos: bool,
}

impl PreTokenizer {
    /// The pre-tokenizer of a byte-level (`gpt2`) vocabulary named `pre`.
    pub fn byte_level(pre: &str) -> Result<Self, TokenizerError> {
        let flavour = FLAVOURS
            .iter()
            .find(|(names, _)| names.contains(&pre))
            .map(|&(_, f)| f)
            .ok_or_else(|| TokenizerError::UnsupportedPre {
                pre: pre.to_string(),
                supported: supported_names().join(", "),
            })?;
        Self::build(flavour)
    }

    /// Gemma 4's: newline runs apart from the rest, no other split.
    pub fn gemma4() -> Result<Self, TokenizerError> {
        Self::build(Flavour::Gemma4)
    }

    fn build(flavour: Flavour) -> Result<Self, TokenizerError> {
        let sources: &[&str] = match flavour {
            Flavour::Default => &[r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
            Flavour::Gpt2 => &[GPT2],
            Flavour::Llama3 => &[LLAMA3],
            Flavour::Qwen2 => &[QWEN2],
            Flavour::Qwen35 => &[QWEN35],
            Flavour::Smollm => &[r"\p{N}", GPT2],
            Flavour::Falcon => &[
                r"[\p{P}\$\+<=>\^~\|`]+",
                r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
                r"[0-9][0-9][0-9]",
            ],
            Flavour::Gemma4 => &[r"[^\n]+|[\n]+"],
        };
        let regexes = sources
            .iter()
            .map(|s| {
                Regex::new(s).map_err(|e| TokenizerError::Invalid(format!("regex {s:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(PreTokenizer {
            regexes,
            ignore_merges: flavour == Flavour::Llama3,
            default_add_bos: flavour == Flavour::Llama3,
        })
    }

    /// Cuts `text` into words (byte ranges, in order, covering all of it).
    pub fn split<'t>(&self, text: &'t str) -> Result<Vec<&'t str>, TokenizerError> {
        let mut words = vec![text];
        for re in &self.regexes {
            let mut next = Vec::with_capacity(words.len() * 2);
            for word in words {
                let mut last = 0;
                for m in re.find_iter(word) {
                    let m = m.map_err(|e| TokenizerError::Regex(e.to_string()))?;
                    if m.start() == m.end() {
                        continue;
                    }
                    if m.start() > last {
                        next.push(&word[last..m.start()]);
                    }
                    next.push(m.as_str());
                    last = m.end();
                }
                if last < word.len() {
                    next.push(&word[last..]);
                }
            }
            words = next;
        }
        Ok(words)
    }
}
