//! Byte-pair encoding over one pre-tokenized word: the lowest-ranked adjacent pair is merged until
//! no ranked pair is left (llama.cpp's and Hugging Face's algorithm; ties go to the leftmost pair).
//! Byte-level vocabularies (GPT-2 style) spell every byte as a printable character; Gemma 4's
//! works on raw UTF-8 and falls back to `<0xNN>` byte tokens.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::TokenizerError;

/// Merge rules, by the ids of the two tokens they join.
#[derive(Clone, Debug, Default)]
pub struct Merges {
    /// (left, right) → (rank, merged token).
    by_pair: HashMap<(u32, u32), (u32, u32)>,
}

impl Merges {
    /// Parses "left right" rules (the first space after the first character separates them, as in
    /// llama.cpp); rules whose parts or result are not tokens can never apply and are dropped.
    pub fn parse(
        merges: &[String],
        token_id: &HashMap<String, u32>,
    ) -> Result<Self, TokenizerError> {
        let mut by_pair = HashMap::with_capacity(merges.len());
        for (rank, rule) in merges.iter().enumerate() {
            let split = rule
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i)
                .ok_or_else(|| TokenizerError::Invalid(format!("malformed merge {rule:?}")))?;
            let (left, right) = (&rule[..split], &rule[split + 1..]);
            let (Some(&l), Some(&r), Some(&m)) = (
                token_id.get(left),
                token_id.get(right),
                token_id.get(&format!("{left}{right}")),
            ) else {
                continue;
            };
            // The first (lowest-ranked) rule for a pair wins.
            by_pair.entry((l, r)).or_insert((rank as u32, m));
        }
        Ok(Merges { by_pair })
    }

    fn get(&self, left: Option<u32>, right: Option<u32>) -> Option<(u32, u32)> {
        self.by_pair.get(&(left?, right?)).copied()
    }
}

/// One symbol of the word being merged: a token (or an unknown piece) over `bytes`.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    id: Option<u32>,
    start: usize,
    end: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// Merges the initial `pieces` (token id or `None`, with their byte ranges in the word) and
/// returns the final symbols as (id, byte range).
pub fn merge(
    merges: &Merges,
    pieces: impl IntoIterator<Item = (Option<u32>, usize, usize)>,
) -> Vec<(Option<u32>, usize, usize)> {
    let mut symbols: Vec<Symbol> = pieces
        .into_iter()
        .enumerate()
        .map(|(i, (id, start, end))| Symbol {
            id,
            start,
            end,
            prev: i.checked_sub(1),
            next: Some(i + 1),
        })
        .collect();
    if let Some(last) = symbols.last_mut() {
        last.next = None;
    }
    // Min-heap on (rank, left position); entries go stale when a side is merged away, which the
    // recorded ids detect.
    let mut queue = BinaryHeap::new();
    let push = |queue: &mut BinaryHeap<_>, symbols: &[Symbol], left: usize| {
        let Some(right) = symbols[left].next else {
            return;
        };
        if let Some((rank, merged)) = merges.get(symbols[left].id, symbols[right].id) {
            queue.push(Reverse((rank, left, right, merged)));
        }
    };
    for i in 0..symbols.len() {
        push(&mut queue, &symbols, i);
    }
    while let Some(Reverse((_, left, right, merged))) = queue.pop() {
        let (l, r) = (symbols[left], symbols[right]);
        if l.end == l.start || r.end == r.start || l.next != Some(right) {
            continue;
        }
        if merges.get(l.id, r.id).map(|(_, m)| m) != Some(merged) {
            continue;
        }
        symbols[left].id = Some(merged);
        symbols[left].end = r.end;
        symbols[left].next = r.next;
        symbols[right].end = symbols[right].start;
        if let Some(n) = r.next {
            symbols[n].prev = Some(left);
        }
        if let Some(p) = l.prev {
            push(&mut queue, &symbols, p);
        }
        push(&mut queue, &symbols, left);
    }
    let mut out = Vec::new();
    let mut at = if symbols.is_empty() { None } else { Some(0) };
    while let Some(i) = at {
        let s = symbols[i];
        out.push((s.id, s.start, s.end));
        at = s.next;
    }
    out
}

/// GPT-2's reversible map from bytes to printable characters: byte `b` is `table[b]`.
pub fn byte_chars() -> [char; 256] {
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for (b, slot) in table.iter_mut().enumerate() {
        let b = b as u32;
        let c = if printable(b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        // Both ranges are valid scalar values below 0x200, so `from_u32` cannot fail.
        *slot = char::from_u32(c).unwrap_or('\0');
    }
    table
}

/// The inverse of [`byte_chars`].
pub fn byte_decoder() -> HashMap<char, u8> {
    byte_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}
