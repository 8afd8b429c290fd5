//! The vocabulary as the matcher sees it: each token's bytes, the end tokens, and a byte trie of
//! all tokens laid out in depth-first order so a mask walk is one pass over an array.

use crate::tokenizer::Tokenizer;

/// A trie node: the byte on the edge into it, its depth (1 for a token's first byte), where its
/// subtree ends in the node array, and the tokens whose bytes end here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) subtree_end: u32,
    pub(crate) tokens_start: u32,
    pub(crate) tokens_end: u32,
    pub(crate) depth: u16,
    pub(crate) byte: u8,
}

/// Longer tokens are never allowed (no real vocabulary has one).
const MAX_TOKEN_LEN: usize = u16::MAX as usize;

/// A model's vocabulary for constrained decoding; build it once per model and share it.
#[derive(Clone, Debug)]
pub struct TokenVocab {
    bytes: Vec<u8>,
    /// Where each token's bytes start in `bytes`; one more entry than tokens.
    offsets: Vec<u32>,
    ends: Vec<u32>,
    pub(crate) nodes: Vec<Node>,
    /// Token ids in trie order: node `n` owns `tokens[n.tokens_start..n.tokens_end]`.
    pub(crate) tokens: Vec<u32>,
    pub(crate) max_depth: usize,
}

impl TokenVocab {
    /// A vocabulary from each token's bytes (indexed by id) and the ids that end a generation.
    /// Tokens with no bytes (control tokens) are never allowed; end tokens only where the
    /// output may end, whatever their bytes.
    pub fn new(tokens: &[&[u8]], end_ids: &[u32]) -> Self {
        let mut ends: Vec<u32> = end_ids
            .iter()
            .copied()
            .filter(|&id| (id as usize) < tokens.len())
            .collect();
        ends.sort_unstable();
        ends.dedup();
        let mut bytes = Vec::with_capacity(tokens.iter().map(|t| t.len()).sum());
        let mut offsets = Vec::with_capacity(tokens.len() + 1);
        offsets.push(0);
        for (id, token) in tokens.iter().enumerate() {
            if ends.binary_search(&(id as u32)).is_err() && token.len() <= MAX_TOKEN_LEN {
                bytes.extend_from_slice(token);
            }
            offsets.push(bytes.len() as u32);
        }
        let mut vocab = TokenVocab {
            bytes,
            offsets,
            ends,
            nodes: Vec::new(),
            tokens: Vec::new(),
            max_depth: 0,
        };
        vocab.build_trie();
        vocab
    }

    /// The vocabulary of a tokenizer: control tokens (those with a control text) excluded, the
    /// end-of-turn tokens (EOS included) as end tokens.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Self {
        let n = tokenizer.vocab_size() as u32;
        let tokens: Vec<&[u8]> = (0..n)
            .map(|id| match tokenizer.control_text(id) {
                Some(_) => &[][..],
                None => tokenizer.token_bytes(id),
            })
            .collect();
        let ends: Vec<u32> = (0..n).filter(|&id| tokenizer.is_end_of_turn(id)).collect();
        Self::new(&tokens, &ends)
    }

    /// Number of token ids (the mask's length).
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes a token adds to the output; empty for end, control and unknown tokens.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        let id = id as usize;
        match (self.offsets.get(id), self.offsets.get(id + 1)) {
            (Some(&a), Some(&b)) => &self.bytes[a as usize..b as usize],
            _ => &[],
        }
    }

    /// Whether `id` ends the generation.
    pub fn is_end(&self, id: u32) -> bool {
        self.ends.binary_search(&id).is_ok()
    }

    /// The end-of-generation tokens.
    pub fn end_ids(&self) -> &[u32] {
        &self.ends
    }

    /// Lays out the trie: tokens sorted by bytes are visited in depth-first order, so each new
    /// node is appended after its parent and a subtree is a contiguous run.
    fn build_trie(&mut self) {
        let mut order: Vec<u32> = (0..self.len() as u32)
            .filter(|&id| !self.token_bytes(id).is_empty())
            .collect();
        order.sort_by(|&a, &b| self.token_bytes(a).cmp(self.token_bytes(b)));
        let mut nodes: Vec<Node> = Vec::new();
        let mut tokens = Vec::with_capacity(order.len());
        // The nodes on the path to the last token, one per byte.
        let mut path: Vec<usize> = Vec::new();
        let mut previous: &[u8] = &[];
        let mut max_depth = 0;
        for &id in &order {
            let token = self.token_bytes(id);
            let common = token
                .iter()
                .zip(previous)
                .take_while(|(a, b)| a == b)
                .count();
            for node in path.drain(common..) {
                nodes[node].subtree_end = nodes.len() as u32;
            }
            for (depth, &byte) in token.iter().enumerate().skip(common) {
                path.push(nodes.len());
                nodes.push(Node {
                    subtree_end: 0,
                    tokens_start: tokens.len() as u32,
                    tokens_end: tokens.len() as u32,
                    depth: depth as u16 + 1,
                    byte,
                });
            }
            // Sorted order puts the tokens of one node together, right after the node is made.
            tokens.push(id);
            if let Some(&last) = path.last() {
                nodes[last].tokens_end = tokens.len() as u32;
            }
            max_depth = max_depth.max(token.len());
            previous = token;
        }
        for node in path.drain(..) {
            nodes[node].subtree_end = nodes.len() as u32;
        }
        self.nodes = nodes;
        self.tokens = tokens;
        self.max_depth = max_depth;
    }
}

/// Which tokens may be sampled next: one bit per token id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMask {
    words: Vec<u64>,
    len: usize,
}

impl TokenMask {
    /// A mask of `len` tokens, none allowed.
    pub fn new(len: usize) -> Self {
        TokenMask {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Number of token ids covered.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn allow(&mut self, id: u32) {
        if (id as usize) < self.len {
            self.words[id as usize / 64] |= 1 << (id % 64);
        }
    }

    pub fn allows(&self, id: u32) -> bool {
        (id as usize) < self.len && self.words[id as usize / 64] & (1 << (id % 64)) != 0
    }

    /// Number of allowed tokens.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The allowed token ids, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros();
                w &= w - 1;
                Some(i as u32 * 64 + bit)
            })
        })
    }

    /// The bits, 64 tokens a word, token `i` at bit `i % 64` of word `i / 64`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Sets the logits of disallowed tokens to minus infinity (logits past the mask too).
    pub fn apply(&self, logits: &mut [f32]) {
        for (id, logit) in logits.iter_mut().enumerate() {
            if !self.allows(id as u32) {
                *logit = f32::NEG_INFINITY;
            }
        }
    }
}
