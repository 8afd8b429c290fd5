//! The token mask: one depth-first walk of the vocabulary's byte trie, pruning every subtree whose
//! first byte the grammar refuses. The parse sets met on the walk are interned as DFA states and
//! their byte transitions cached, so a trie edge costs a table look-up once its transition is
//! known: inside a JSON string the walk visits most of the trie, but meets only a handful of
//! distinct states.

use rustc_hash::FxHashMap;

use super::state::{Arena, DONE};
use super::{Grammar, TokenMask, TokenVocab};

/// The state with no live parse.
const DEAD: u32 = 0;
/// A transition not computed yet.
const UNKNOWN: u32 = u32::MAX;

/// A DFA over bytes built lazily from the matcher's parse sets, for one mask computation.
struct Dfa<'g> {
    grammar: &'g Grammar,
    arena: Arena,
    states: Vec<Box<[u32]>>,
    index: FxHashMap<Box<[u32]>, u32>,
    next: Vec<[u32; 256]>,
    scratch: Vec<u32>,
}

impl<'g> Dfa<'g> {
    fn new(grammar: &'g Grammar, arena: Arena) -> Self {
        let mut dfa = Dfa {
            grammar,
            arena,
            states: Vec::new(),
            index: FxHashMap::default(),
            next: Vec::new(),
            scratch: Vec::new(),
        };
        let dead = dfa.intern(&[]);
        debug_assert_eq!(dead, DEAD);
        dfa.next[DEAD as usize] = [DEAD; 256];
        dfa
    }

    fn intern(&mut self, stacks: &[u32]) -> u32 {
        if let Some(&id) = self.index.get(stacks) {
            return id;
        }
        let id = self.states.len() as u32;
        self.states.push(stacks.into());
        self.index.insert(stacks.into(), id);
        self.next.push([UNKNOWN; 256]);
        id
    }

    #[inline]
    fn step(&mut self, state: u32, byte: u8) -> u32 {
        match self.next[state as usize][byte as usize] {
            UNKNOWN => self.compute(state, byte),
            known => known,
        }
    }

    #[cold]
    fn compute(&mut self, state: u32, byte: u8) -> u32 {
        let mut out = std::mem::take(&mut self.scratch);
        let stacks = &self.states[state as usize];
        self.arena.advance(self.grammar, stacks, byte, &mut out);
        let id = self.intern(&out);
        self.scratch = out;
        self.next[state as usize][byte as usize] = id;
        id
    }
}

/// The mask for the parses `stacks` (sorted node ids of `arena`).
pub(crate) fn allowed(
    grammar: &Grammar,
    arena: Arena,
    stacks: Vec<u32>,
    vocab: &TokenVocab,
) -> TokenMask {
    let mut mask = TokenMask::new(vocab.len());
    if stacks.binary_search(&DONE).is_ok() {
        for &id in vocab.end_ids() {
            mask.allow(id);
        }
    }
    let mut dfa = Dfa::new(grammar, arena);
    let root = dfa.intern(&stacks);
    // The DFA state after each byte of the current trie path; index 0 is the path's start.
    let mut at_depth = vec![root; vocab.max_depth + 1];
    let nodes = &vocab.nodes;
    let mut i = 0;
    while let Some(node) = nodes.get(i) {
        let depth = usize::from(node.depth);
        let state = dfa.step(at_depth[depth - 1], node.byte);
        if state == DEAD {
            i = node.subtree_end as usize;
            continue;
        }
        at_depth[depth] = state;
        for &id in &vocab.tokens[node.tokens_start as usize..node.tokens_end as usize] {
            mask.allow(id);
        }
        i += 1;
    }
    mask
}
