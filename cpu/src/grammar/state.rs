//! The matcher: every parse of the text so far, each a stack of grammar positions whose top is a
//! byte terminal, advanced one byte at a time (llama.cpp's `llama_grammar_accept`, over bytes).

use rustc_hash::FxHashMap;

use super::{Element, Grammar, TokenMask, TokenVocab, mask};

/// The empty stack: a parse that has matched the whole root rule.
pub(crate) const DONE: u32 = 0;

/// Stacks as hash-consed `(position, parent)` nodes: equal stacks get equal ids, so a set of
/// parses is a sorted list of ids, and two sets are equal when their lists are. A parent's
/// position is where to go on when the rule above it ends: a terminal or a rule reference, never
/// an alternative's end (references in tail position push nothing, so repetition does not grow
/// the stacks).
pub(crate) struct Arena {
    nodes: Vec<(u32, u32)>,
    index: FxHashMap<(u32, u32), u32>,
    work: Vec<(u32, u32)>,
}

impl Arena {
    pub(crate) fn new() -> Self {
        Arena {
            nodes: vec![(u32::MAX, u32::MAX)],
            index: FxHashMap::default(),
            work: Vec::new(),
        }
    }

    fn intern(&mut self, pos: u32, parent: u32) -> u32 {
        let next = self.nodes.len() as u32;
        let id = *self.index.entry((pos, parent)).or_insert(next);
        if id == next {
            self.nodes.push((pos, parent));
        }
        id
    }

    /// Appends the stacks that go on at `pos` with `parent` below, expanded until a terminal is
    /// on top of each (or the stack is empty: [`DONE`]).
    fn expand(&mut self, g: &Grammar, pos: u32, parent: u32, out: &mut Vec<u32>) {
        self.work.push((pos, parent));
        while let Some((pos, parent)) = self.work.pop() {
            match g.element(pos) {
                Element::Bytes(_) => {
                    let id = self.intern(pos, parent);
                    out.push(id);
                }
                Element::Rule(rule) => {
                    let next = pos + 1;
                    let cont = if g.element(next) == Element::End {
                        parent
                    } else {
                        self.intern(next, parent)
                    };
                    for &start in g.alternatives(rule) {
                        self.work.push((start, cont));
                    }
                }
                Element::End if parent == DONE => out.push(DONE),
                Element::End => {
                    let frame = self.nodes[parent as usize];
                    self.work.push(frame);
                }
            }
        }
    }

    /// The parses at the start of the grammar, sorted and deduplicated.
    pub(crate) fn start(&mut self, g: &Grammar) -> Vec<u32> {
        let mut out = Vec::new();
        for &start in g.alternatives(g.root()) {
            self.expand(g, start, DONE, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The parses that follow `stacks` after `byte`, sorted and deduplicated, into `out`.
    pub(crate) fn advance(&mut self, g: &Grammar, stacks: &[u32], byte: u8, out: &mut Vec<u32>) {
        out.clear();
        for &stack in stacks {
            if stack == DONE {
                continue;
            }
            let (pos, parent) = self.nodes[stack as usize];
            if let Element::Bytes(set) = g.element(pos)
                && g.set(set).contains(byte)
            {
                self.expand(g, pos + 1, parent, out);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    /// The node of a stack given bottom first.
    fn load(&mut self, positions: &[u32]) -> u32 {
        positions
            .iter()
            .fold(DONE, |parent, &pos| self.intern(pos, parent))
    }

    /// Appends a stack's positions, bottom first.
    fn unload(&self, mut stack: u32, out: &mut Vec<u32>) {
        let start = out.len();
        while stack != DONE {
            let (pos, parent) = self.nodes[stack as usize];
            out.push(pos);
            stack = parent;
        }
        out[start..].reverse();
    }
}

/// Why the grammar refused a byte or a token; the state is left as it was.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the grammar does not allow byte {byte:#04x} at offset {offset}")]
    Byte { offset: usize, byte: u8 },
    #[error("the output cannot end here: the grammar expects more")]
    Incomplete,
    #[error("token {id} is never allowed: a control token, or one without text")]
    Token { id: u32 },
}

/// Where a generation stands in its grammar. Clone it per sequence: it is a few small vectors and
/// a shared [`Grammar`].
#[derive(Clone, Debug)]
pub struct GrammarState {
    grammar: Grammar,
    /// Every live parse's positions, bottom first, one after another; an empty one has matched
    /// the whole grammar.
    positions: Vec<u32>,
    /// Where each parse ends in `positions`.
    ends: Vec<u32>,
}

impl GrammarState {
    /// The state before any output.
    pub fn new(grammar: &Grammar) -> Self {
        let mut arena = Arena::new();
        let stacks = arena.start(grammar);
        let mut state = GrammarState {
            grammar: grammar.clone(),
            positions: Vec::new(),
            ends: Vec::new(),
        };
        state.store(&arena, &stacks);
        state
    }

    pub fn grammar(&self) -> &Grammar {
        &self.grammar
    }

    /// Follows `bytes` of output. Resuming a generation is `GrammarState::new(&g).advance(text)`
    /// with the text generated so far: the state depends on the bytes only, not on how they were
    /// split into tokens.
    pub fn advance(&mut self, bytes: &[u8]) -> Result<(), Rejected> {
        let (mut arena, mut stacks) = self.load();
        let mut next = Vec::with_capacity(stacks.len());
        for (offset, &byte) in bytes.iter().enumerate() {
            arena.advance(&self.grammar, &stacks, byte, &mut next);
            if next.is_empty() {
                return Err(Rejected::Byte { offset, byte });
            }
            std::mem::swap(&mut stacks, &mut next);
        }
        self.store(&arena, &stacks);
        Ok(())
    }

    /// Whether `bytes` could follow (the state is not changed).
    pub fn accepts_bytes(&self, bytes: &[u8]) -> bool {
        self.clone().advance(bytes).is_ok()
    }

    /// Follows one sampled token. An end token is accepted only where the output may end, and
    /// leaves the state as it is.
    pub fn advance_token(&mut self, vocab: &TokenVocab, id: u32) -> Result<(), Rejected> {
        if vocab.is_end(id) {
            return if self.is_complete() {
                Ok(())
            } else {
                Err(Rejected::Incomplete)
            };
        }
        match vocab.token_bytes(id) {
            [] => Err(Rejected::Token { id }),
            bytes => self.advance(bytes),
        }
    }

    /// Whether the output may end here (it matches the whole grammar).
    pub fn is_complete(&self) -> bool {
        self.stacks().any(<[u32]>::is_empty)
    }

    /// Whether nothing more may follow: the output is complete and no byte can extend it.
    pub fn is_finished(&self) -> bool {
        self.stacks().all(<[u32]>::is_empty)
    }

    /// The tokens that may come next: those whose bytes keep the output a valid prefix, and the
    /// vocabulary's end tokens where the output may end. Control tokens and tokens without text
    /// are never allowed.
    pub fn allowed_tokens(&self, vocab: &TokenVocab) -> TokenMask {
        let (arena, stacks) = self.load();
        mask::allowed(&self.grammar, arena, stacks, vocab)
    }

    /// The parses as sorted position lists: equal for equal states, however they were reached.
    #[cfg(test)]
    pub(crate) fn canonical(&self) -> Vec<Vec<u32>> {
        let mut stacks: Vec<Vec<u32>> = self.stacks().map(<[u32]>::to_vec).collect();
        stacks.sort();
        stacks.dedup();
        stacks
    }

    fn stacks(&self) -> impl Iterator<Item = &[u32]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let stack = &self.positions[start as usize..end as usize];
            start = end;
            stack
        })
    }

    /// The parses as arena nodes, sorted.
    fn load(&self) -> (Arena, Vec<u32>) {
        let mut arena = Arena::new();
        let mut stacks: Vec<u32> = self.stacks().map(|s| arena.load(s)).collect();
        stacks.sort_unstable();
        stacks.dedup();
        (arena, stacks)
    }

    fn store(&mut self, arena: &Arena, stacks: &[u32]) {
        self.positions.clear();
        self.ends.clear();
        for &stack in stacks {
            arena.unload(stack, &mut self.positions);
            self.ends.push(self.positions.len() as u32);
        }
    }
}
