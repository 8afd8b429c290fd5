//! SentencePiece (BPE-scored) segmentation as llama.cpp does it for `tokenizer.ggml.model =
//! "llama"`: start from single characters, repeatedly merge the adjacent pair whose union is the
//! highest-scoring token (ties to the leftmost), then spell characters that are no token as
//! `<0xNN>` byte tokens. (A merge only ever forms a token, so only single characters can be left
//! without one: llama.cpp's re-segmentation through earlier merges never applies.)

use std::collections::BinaryHeap;

/// What the segmentation needs from the vocabulary.
pub trait SpmVocab {
    fn id(&self, text: &str) -> Option<u32>;
    fn score(&self, id: u32) -> f32;
    /// The token for one raw byte (`<0xNN>`, or the byte itself as text).
    fn byte_id(&self, byte: u8) -> Option<u32>;
}

#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A candidate merge; ordered by score, then by the leftmost position.
#[derive(Debug, PartialEq)]
struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    len: usize,
}

impl Eq for Bigram {}

impl Ord for Bigram {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct Session<'a, V: SpmVocab> {
    vocab: &'a V,
    text: &'a str,
    symbols: Vec<Symbol>,
    queue: BinaryHeap<Bigram>,
}

/// Appends the tokens of `text` (spaces already written as `▁`) to `out`.
pub fn tokenize(vocab: &impl SpmVocab, text: &str, out: &mut Vec<u32>) {
    let mut symbols = Vec::new();
    for (i, (start, c)) in text.char_indices().enumerate() {
        symbols.push(Symbol {
            start,
            len: c.len_utf8(),
            prev: i.checked_sub(1),
            next: Some(i + 1),
        });
    }
    let Some(last) = symbols.last_mut() else {
        return;
    };
    last.next = None;
    let mut s = Session {
        vocab,
        text,
        symbols,
        queue: BinaryHeap::new(),
    };
    for i in 1..s.symbols.len() {
        s.try_add(Some(i - 1), Some(i));
    }
    while let Some(b) = s.queue.pop() {
        let (l, r) = (s.symbols[b.left], s.symbols[b.right]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.len {
            continue;
        }
        s.symbols[b.left].len += r.len;
        s.symbols[b.right].len = 0;
        s.symbols[b.left].next = r.next;
        if let Some(n) = r.next {
            s.symbols[n].prev = Some(b.left);
        }
        s.try_add(l.prev, Some(b.left));
        s.try_add(Some(b.left), r.next);
    }
    let mut at = Some(0);
    while let Some(i) = at {
        s.emit(i, out);
        at = s.symbols[i].next;
    }
}

impl<'a, V: SpmVocab> Session<'a, V> {
    fn piece(&self, sym: Symbol) -> &'a str {
        &self.text[sym.start..sym.start + sym.len]
    }

    fn try_add(&mut self, left: Option<usize>, right: Option<usize>) {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (l, r) = (self.symbols[left], self.symbols[right]);
        let text = &self.text[l.start..l.start + l.len + r.len];
        let Some(id) = self.vocab.id(text) else {
            return;
        };
        self.queue.push(Bigram {
            score: self.vocab.score(id),
            left,
            right,
            len: text.len(),
        });
    }

    fn emit(&self, i: usize, out: &mut Vec<u32>) {
        let sym = self.symbols[i];
        let text = self.piece(sym);
        if let Some(id) = self.vocab.id(text) {
            out.push(id);
            return;
        }
        out.extend(text.bytes().filter_map(|b| self.vocab.byte_id(b)));
    }
}
