//! Building a [`Grammar`] from rules written as alternatives of [`Term`]s; the JSON-schema
//! compiler uses this, and so can code that needs a hand-written grammar.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{ByteSet, Element, Grammar, GrammarError, Inner, MAX_ELEMENTS, utf8};

/// A rule of a [`GrammarBuilder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleId(u32);

/// One item of a rule alternative.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// These bytes, in order.
    Literal(Vec<u8>),
    /// One byte from the set.
    Bytes(ByteSet),
    /// One character from the class, in UTF-8.
    Chars(CharClass),
    /// A match of the rule.
    Rule(RuleId),
}

impl Term {
    /// The literal text `text`.
    pub fn lit(text: &str) -> Term {
        Term::Literal(text.as_bytes().to_vec())
    }
}

/// A set of Unicode scalar values, kept as sorted, disjoint, non-adjacent ranges.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CharClass {
    ranges: Vec<(u32, u32)>,
}

const SURROGATES: (u32, u32) = (0xD800, 0xDFFF);
const MAX_CHAR: u32 = 0x10FFFF;

impl CharClass {
    /// The characters in the inclusive ranges.
    pub fn new(ranges: &[(char, char)]) -> Self {
        Self::normalize(ranges.iter().map(|&(a, b)| (a as u32, b as u32)).collect())
    }

    /// Every character.
    pub fn any() -> Self {
        Self::new(&[('\0', char::MAX)])
    }

    /// Every character not in this class.
    pub fn negate(&self) -> Self {
        let mut out = Vec::new();
        let mut next = 0u32;
        for &(lo, hi) in &self.ranges {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = hi + 1;
        }
        if next <= MAX_CHAR {
            out.push((next, MAX_CHAR));
        }
        Self::normalize(out)
    }

    pub fn contains(&self, c: char) -> bool {
        let c = c as u32;
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi)
    }

    fn normalize(mut ranges: Vec<(u32, u32)>) -> Self {
        ranges.retain(|&(lo, hi)| lo <= hi);
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut out = Vec::with_capacity(merged.len() + 1);
        for (lo, hi) in merged {
            let hi = hi.min(MAX_CHAR);
            if hi < SURROGATES.0 || lo > SURROGATES.1 {
                out.push((lo, hi));
                continue;
            }
            if lo < SURROGATES.0 {
                out.push((lo, SURROGATES.0 - 1));
            }
            if hi > SURROGATES.1 {
                out.push((SURROGATES.1 + 1, hi));
            }
        }
        CharClass { ranges: out }
    }

    /// The class's UTF-8 spellings as rule alternatives, alternatives that differ only in their
    /// first byte merged into one byte set (all of ASCII is then one terminal).
    fn alternatives(&self) -> Vec<Vec<Term>> {
        let mut seqs = Vec::new();
        for &(lo, hi) in &self.ranges {
            utf8::sequences(lo, hi, &mut seqs);
        }
        let mut by_tail: Vec<(Vec<(u8, u8)>, ByteSet)> = Vec::new();
        for seq in seqs {
            let Some((&(lo, hi), tail)) = seq.split_first() else {
                continue;
            };
            let first = ByteSet::range(lo, hi);
            match by_tail.iter_mut().find(|(t, _)| t.as_slice() == tail) {
                Some((_, set)) => {
                    for b in lo..=hi {
                        set.insert(b);
                    }
                }
                None => by_tail.push((tail.to_vec(), first)),
            }
        }
        by_tail
            .into_iter()
            .map(|(tail, first)| {
                std::iter::once(Term::Bytes(first))
                    .chain(
                        tail.iter()
                            .map(|&(lo, hi)| Term::Bytes(ByteSet::range(lo, hi))),
                    )
                    .collect()
            })
            .collect()
    }
}

/// Collects rules, then checks and flattens them into a [`Grammar`].
#[derive(Debug, Default)]
pub struct GrammarBuilder {
    names: Vec<String>,
    bodies: Vec<Option<Vec<Vec<Term>>>>,
    taken: FxHashMap<String, u32>,
    /// Terms in all bodies so far: the size bound is checked as rules are added.
    terms: usize,
}

impl GrammarBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new rule, to be defined later (for recursion). Names are made unique with a suffix.
    pub fn declare(&mut self, name: &str) -> RuleId {
        let count = self.taken.entry(name.to_string()).or_insert(0);
        *count += 1;
        let unique = if *count == 1 {
            name.to_string()
        } else {
            format!("{name}-{count}")
        };
        self.names.push(unique);
        self.bodies.push(None);
        RuleId(self.names.len() as u32 - 1)
    }

    /// Gives a declared rule its alternatives (an empty list matches nothing).
    pub fn define(
        &mut self,
        rule: RuleId,
        alternatives: Vec<Vec<Term>>,
    ) -> Result<(), GrammarError> {
        self.terms += alternatives.iter().map(|a| a.len() + 1).sum::<usize>();
        if self.terms > MAX_ELEMENTS {
            return Err(GrammarError::TooLarge {
                limit: MAX_ELEMENTS,
            });
        }
        self.bodies[rule.0 as usize] = Some(alternatives);
        Ok(())
    }

    /// Declares and defines a rule.
    pub fn rule(
        &mut self,
        name: &str,
        alternatives: Vec<Vec<Term>>,
    ) -> Result<RuleId, GrammarError> {
        let id = self.declare(name);
        self.define(id, alternatives)?;
        Ok(id)
    }

    /// `body` repeated `min` to `max` times (`None`: unbounded), llama.cpp's way: `min` copies,
    /// then a chain of optional copies each nested in the last, so that the matcher's stacks do
    /// not grow with the count.
    pub fn repeat(
        &mut self,
        name: &str,
        body: &[Term],
        min: usize,
        max: Option<usize>,
    ) -> Result<RuleId, GrammarError> {
        let copies = max.unwrap_or(min).max(min);
        if copies.saturating_mul(body.len() + 2) > MAX_ELEMENTS {
            return Err(GrammarError::TooLarge {
                limit: MAX_ELEMENTS,
            });
        }
        let tail = match max {
            None => {
                let tail = self.declare(&format!("{name}-more"));
                let mut more = body.to_vec();
                more.push(Term::Rule(tail));
                self.define(tail, vec![more, vec![]])?;
                Some(tail)
            }
            Some(max) => {
                let mut next = None;
                for _ in min..max {
                    let mut more = body.to_vec();
                    more.extend(next.map(Term::Rule));
                    next = Some(self.rule(&format!("{name}-opt"), vec![more, vec![]])?);
                }
                next
            }
        };
        let mut seq = Vec::with_capacity(body.len() * min + 1);
        for _ in 0..min {
            seq.extend_from_slice(body);
        }
        seq.extend(tail.map(Term::Rule));
        let alternatives = if max.is_some_and(|m| m < min) {
            Vec::new()
        } else {
            vec![seq]
        };
        self.rule(name, alternatives)
    }

    /// Flattens the rules into a grammar that starts at `root`, checking that every referenced
    /// rule is defined and none is left-recursive.
    pub fn build(mut self, root: RuleId) -> Result<Grammar, GrammarError> {
        let mut flat = Flattener::default();
        let mut classes: FxHashMap<CharClass, u32> = FxHashMap::default();
        let defined: Vec<bool> = self.bodies.iter().map(Option::is_some).collect();
        if !defined.get(root.0 as usize).copied().unwrap_or(false) {
            return Err(GrammarError::Undefined {
                name: self.names.get(root.0 as usize).cloned().unwrap_or_default(),
            });
        }
        let mut rule = 0;
        // Character classes add rules as they are met, so the count grows in the loop.
        while rule < self.bodies.len() {
            let body = self.bodies[rule].take().unwrap_or_default();
            let mut starts = Vec::with_capacity(body.len());
            for alternative in body {
                starts.push(flat.elements.len() as u32);
                for term in alternative {
                    self.flatten_term(term, &defined, &mut flat, &mut classes)?;
                }
                flat.elements.push(Element::End);
            }
            flat.alternatives.push(starts);
            if flat.elements.len() > MAX_ELEMENTS {
                return Err(GrammarError::TooLarge {
                    limit: MAX_ELEMENTS,
                });
            }
            rule += 1;
        }
        check_left_recursion(&flat, &self.names)?;
        Ok(Grammar(Arc::new(Inner {
            names: self.names,
            alternatives: flat.alternatives,
            elements: flat.elements,
            sets: flat.sets,
            root: root.0,
        })))
    }

    fn flatten_term(
        &mut self,
        term: Term,
        defined: &[bool],
        flat: &mut Flattener,
        classes: &mut FxHashMap<CharClass, u32>,
    ) -> Result<(), GrammarError> {
        match term {
            Term::Literal(bytes) => {
                for b in bytes {
                    flat.push_set(ByteSet::byte(b));
                }
            }
            Term::Bytes(set) => flat.push_set(set),
            Term::Rule(RuleId(r)) => {
                if !defined[r as usize] {
                    return Err(GrammarError::Undefined {
                        name: self.names[r as usize].clone(),
                    });
                }
                flat.elements.push(Element::Rule(r));
            }
            Term::Chars(class) => {
                let mut alternatives = class.alternatives();
                if let [single] = alternatives.as_mut_slice()
                    && let [Term::Bytes(set)] = single.as_slice()
                {
                    flat.push_set(*set);
                    return Ok(());
                }
                let rule = match classes.get(&class) {
                    Some(&r) => r,
                    None => {
                        let id = self.rule("char-class", alternatives)?;
                        classes.insert(class, id.0);
                        id.0
                    }
                };
                flat.elements.push(Element::Rule(rule));
            }
        }
        Ok(())
    }
}

#[derive(Default)]
struct Flattener {
    alternatives: Vec<Vec<u32>>,
    elements: Vec<Element>,
    sets: Vec<ByteSet>,
    set_index: FxHashMap<ByteSet, u32>,
}

impl Flattener {
    fn push_set(&mut self, set: ByteSet) {
        let next = self.sets.len() as u32;
        let index = *self.set_index.entry(set).or_insert(next);
        if index == next {
            self.sets.push(set);
        }
        self.elements.push(Element::Bytes(index));
    }
}

/// Refuses a rule that can reach itself through nullable prefixes only.
fn check_left_recursion(flat: &Flattener, names: &[String]) -> Result<(), GrammarError> {
    let n = flat.alternatives.len();
    let nullable = nullable_rules(flat);
    let alt_elements = |start: u32| {
        flat.elements[start as usize..]
            .iter()
            .take_while(|e| **e != Element::End)
    };
    let mut edges: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (r, out) in edges.iter_mut().enumerate() {
        for &start in &flat.alternatives[r] {
            for e in alt_elements(start) {
                let Element::Rule(x) = *e else { break };
                out.push(x);
                if !nullable[x as usize] {
                    break;
                }
            }
        }
    }
    // Iterative depth-first search: 0 unvisited, 1 on the path, 2 done.
    let mut color = vec![0u8; n];
    for start in 0..n {
        if color[start] != 0 {
            continue;
        }
        let mut path = vec![(start, 0usize)];
        color[start] = 1;
        while let Some((node, next)) = path.last_mut() {
            let node = *node;
            if let Some(&to) = edges[node].get(*next) {
                *next += 1;
                match color[to as usize] {
                    0 => {
                        color[to as usize] = 1;
                        path.push((to as usize, 0));
                    }
                    1 => {
                        return Err(GrammarError::LeftRecursive {
                            name: names[to as usize].clone(),
                        });
                    }
                    _ => {}
                }
            } else {
                color[node] = 2;
                path.pop();
            }
        }
    }
    Ok(())
}

/// Which rules can match the empty string.
fn nullable_rules(flat: &Flattener) -> Vec<bool> {
    let n = flat.alternatives.len();
    let alt_elements = |start: u32| {
        flat.elements[start as usize..]
            .iter()
            .take_while(|e| **e != Element::End)
    };
    let mut nullable = vec![false; n];
    let mut changed = true;
    while changed {
        changed = false;
        for r in 0..n {
            if nullable[r] {
                continue;
            }
            let any_nullable = flat.alternatives[r].iter().any(|&start| {
                alt_elements(start).all(|e| matches!(e, Element::Rule(x) if nullable[*x as usize]))
            });
            if any_nullable {
                nullable[r] = true;
                changed = true;
            }
        }
    }
    nullable
}
