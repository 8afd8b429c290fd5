//! Conversation marks: what cache-aware placement compares. A mark is a hash of a conversation's
//! first k messages (chained, so it names the whole prefix), with the characters those messages
//! hold. An engine's prefix cache publishes the marks of the conversations it holds; the plan
//! computes the ask's marks and prefers the node holding its deepest one. Marks are per message,
//! not per token, so the node that plans needs neither the model's template nor its tokenizer.

use super::chat::{ChatMessage, Role, SamplingParams};
use serde::{Deserialize, Serialize};

/// The first `messages` messages of a conversation, as a hash, and how many characters of
/// content they hold (a measure of the prompt a hit saves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefixMark {
    pub hash: u64,
    pub chars: u32,
}

/// A node publishes at most this many marks per model.
pub const MAX_PUBLISHED_MARKS: usize = 512;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a: stable across builds and machines (the std hasher is not promised to be), so nodes of
/// different builds agree on marks.
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The mark after `prev` extended by one message. Content is compared trimmed: a client that
/// sends an answer back without its trailing newline still matches.
fn step(prev: u64, role: Role, content: &str, extra: &str) -> u64 {
    let mut h = fnv(prev, role.as_str().as_bytes());
    h = fnv(h, &[0]);
    h = fnv(h, content.trim().as_bytes());
    h = fnv(h, &[0]);
    fnv(h, extra.as_bytes())
}

/// The marks of each prefix of `messages` (one per message, in order). Tools are part of what
/// the template renders first, so they seed the chain; a raw prompt has no messages to mark.
pub fn conversation_marks(messages: &[ChatMessage], params: &SamplingParams) -> Vec<PrefixMark> {
    if params.raw_prompt || params.embed {
        return Vec::new();
    }
    let seed = params
        .tools
        .as_ref()
        .and_then(|t| serde_json::to_string(&t.tools).ok())
        .map_or(FNV_OFFSET, |t| fnv(FNV_OFFSET, t.as_bytes()));
    let mut hash = seed;
    let mut chars = 0u32;
    messages
        .iter()
        .map(|m| {
            let calls = if m.tool_calls.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&m.tool_calls).unwrap_or_default()
            };
            let extra = format!("{calls}{}", m.tool_call_id.as_deref().unwrap_or(""));
            hash = step(hash, m.role, &m.content, &extra);
            chars = chars.saturating_add(m.content.trim().len() as u32);
            PrefixMark { hash, chars }
        })
        .collect()
}

/// The mark of the conversation `marks` ends, followed by the assistant's `answer`: the prefix a
/// follow-up turn starts with.
pub fn answer_mark(last: &PrefixMark, answer: &str) -> PrefixMark {
    PrefixMark {
        hash: step(last.hash, Role::Assistant, answer, ""),
        chars: last.chars.saturating_add(answer.trim().len() as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(texts: &[(Role, &str)]) -> Vec<ChatMessage> {
        texts
            .iter()
            .map(|(r, t)| ChatMessage::new(*r, *t))
            .collect()
    }

    #[test]
    fn a_follow_up_turn_extends_the_marks_of_the_turn_before() {
        let p = SamplingParams::default();
        let first = conv(&[(Role::System, "Be brief."), (Role::User, "Hi")]);
        let marks = conversation_marks(&first, &p);
        let answered = answer_mark(marks.last().unwrap(), "Hello!\n");
        let next = conv(&[
            (Role::System, "Be brief."),
            (Role::User, "Hi"),
            (Role::Assistant, "Hello!"),
            (Role::User, "And?"),
        ]);
        let next_marks = conversation_marks(&next, &p);
        assert_eq!(next_marks[..2], marks[..]);
        assert_eq!(next_marks[2], answered);
        assert_ne!(next_marks[3], answered);
        assert_eq!(next_marks[3].chars, 9 + 2 + 6 + 4);
        // Another system prompt changes every mark after it; tools change all of them.
        let other = conv(&[(Role::System, "Be long."), (Role::User, "Hi")]);
        assert_ne!(conversation_marks(&other, &p)[1], marks[1]);
        let tooled = SamplingParams {
            tools: Some(Box::new(crate::protocol::tools::sample_spec(&["weather"]))),
            ..p.clone()
        };
        assert_ne!(conversation_marks(&first, &tooled)[0], marks[0]);
        let raw = SamplingParams {
            raw_prompt: true,
            ..p
        };
        assert!(conversation_marks(&first, &raw).is_empty());
    }
}
