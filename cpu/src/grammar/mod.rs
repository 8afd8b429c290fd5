//! Constrained decoding: a context-free grammar over bytes (compiled from a JSON schema or built
//! by hand), a matcher state that follows the generated text, and the mask of vocabulary tokens
//! that keep that text a valid prefix of the grammar's language.
//!
//! The design follows llama.cpp's `llama-grammar.cpp`: a rule set like GBNF, and a matcher that
//! keeps every parse as a stack of positions in the rules (a pushdown automaton run on all its
//! branches at once). Two things differ:
//!
//! - Terminals are byte sets, not code-point ranges. A character class is compiled to its UTF-8
//!   byte sequences ([`CharClass`]), so a token that ends inside a character (`<0xE2>` byte
//!   fallback, or half a character in byte-level BPE) is just a state between two bytes.
//! - The mask is computed by walking a byte trie of the vocabulary once, with the parse states met
//!   on the way interned and their byte transitions cached: a lazily built DFA local to one mask
//!   call. Inside a JSON string almost every token is allowed, and almost every trie edge is a
//!   cached table look-up. See [`GrammarState::allowed_tokens`].

mod builder;
mod mask;
mod schema;
mod state;
mod utf8;
mod vocab;

use std::fmt;
use std::sync::Arc;

pub use builder::{CharClass, GrammarBuilder, RuleId, Term};
pub use schema::{
    Json, MAX_DEPTH, SchemaError, SchemaOptions, Whitespace, any_json, compile_schema,
    compile_value,
};
pub use state::{GrammarState, Rejected};
pub use vocab::{TokenMask, TokenVocab};

/// The most elements a grammar may have: a bound on what one request can make us allocate.
pub const MAX_ELEMENTS: usize = 1 << 20;

/// Why a rule set is not a usable grammar.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("rule {name:?} is referenced but never defined")]
    Undefined { name: String },
    /// A rule that can reach itself without consuming a byte: the matcher would never stop
    /// expanding it.
    #[error("rule {name:?} is left-recursive")]
    LeftRecursive { name: String },
    #[error("the grammar has more than {limit} elements")]
    TooLarge { limit: usize },
}

/// A set of bytes: one terminal of the grammar.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ByteSet([u64; 4]);

impl ByteSet {
    /// The bytes `lo..=hi`.
    pub fn range(lo: u8, hi: u8) -> Self {
        let mut set = ByteSet::default();
        for b in lo..=hi {
            set.insert(b);
        }
        set
    }

    /// The one byte `b`.
    pub fn byte(b: u8) -> Self {
        Self::range(b, b)
    }

    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    pub fn remove(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] &= !(1 << (b & 63));
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0; 4]
    }
}

impl fmt::Debug for ByteSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        let mut b = 0u16;
        while b < 256 {
            if !self.contains(b as u8) {
                b += 1;
                continue;
            }
            let lo = b;
            while b + 1 < 256 && self.contains((b + 1) as u8) {
                b += 1;
            }
            if lo == b {
                write!(f, "{}", show_byte(lo as u8))?;
            } else {
                write!(f, "{}-{}", show_byte(lo as u8), show_byte(b as u8))?;
            }
            b += 1;
        }
        f.write_str("]")
    }
}

fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() && !matches!(b, b'-' | b']' | b'\\') {
        (b as char).to_string()
    } else {
        format!("\\x{b:02X}")
    }
}

/// One element of a rule alternative, in the grammar's flat element array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Element {
    /// A byte from the set with this index.
    Bytes(u32),
    /// The rule with this index.
    Rule(u32),
    /// The end of an alternative.
    End,
}

#[derive(Debug)]
struct Inner {
    names: Vec<String>,
    /// Per rule, the position in `elements` where each alternative starts.
    alternatives: Vec<Vec<u32>>,
    elements: Vec<Element>,
    sets: Vec<ByteSet>,
    root: u32,
}

/// A compiled grammar: rules whose terminals are byte sets. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Grammar(Arc<Inner>);

impl Grammar {
    /// Number of rules, those made for character classes and repetitions included.
    pub fn rule_count(&self) -> usize {
        self.0.names.len()
    }

    /// Number of elements (terminals, rule references and alternative ends).
    pub fn element_count(&self) -> usize {
        self.0.elements.len()
    }

    pub(crate) fn element(&self, pos: u32) -> Element {
        self.0.elements[pos as usize]
    }

    pub(crate) fn set(&self, index: u32) -> &ByteSet {
        &self.0.sets[index as usize]
    }

    pub(crate) fn alternatives(&self, rule: u32) -> &[u32] {
        &self.0.alternatives[rule as usize]
    }

    pub(crate) fn root(&self) -> u32 {
        self.0.root
    }
}

/// GBNF-like text, one rule a line, root first; for debugging and error reports.
impl fmt::Display for Grammar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        let order =
            std::iter::once(g.root).chain((0..g.names.len() as u32).filter(|&r| r != g.root));
        for rule in order {
            write!(f, "{} ::=", g.names[rule as usize])?;
            for (i, &start) in g.alternatives[rule as usize].iter().enumerate() {
                if i > 0 {
                    f.write_str(" |")?;
                }
                let mut pos = start as usize;
                while let Some(&element) = g.elements.get(pos) {
                    match element {
                        Element::Bytes(s) => write!(f, " {:?}", g.sets[s as usize])?,
                        Element::Rule(r) => write!(f, " {}", g.names[r as usize])?,
                        Element::End => break,
                    }
                    pos += 1;
                }
                if g.elements.get(start as usize) == Some(&Element::End) {
                    f.write_str(" \"\"")?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mask;
#[cfg(test)]
mod tests_schema;
