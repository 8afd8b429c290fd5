//! Code-point ranges as UTF-8 byte-range sequences (the algorithm of regex-syntax's
//! `Utf8Sequences`), so that the matcher works on bytes and accepts exactly valid UTF-8.

/// One spelling of a range of code points: a byte range per position, every combination valid.
pub(crate) type Sequence = Vec<(u8, u8)>;

/// The largest code point encoded in 1, 2, 3 and 4 bytes.
const MAX_BY_LEN: [u32; 4] = [0x7F, 0x7FF, 0xFFFF, 0x10FFFF];

/// Appends the sequences that spell exactly the code points `lo..=hi`. The range must hold no
/// surrogates (`CharClass` removes them).
pub(crate) fn sequences(lo: u32, hi: u32, out: &mut Vec<Sequence>) {
    let mut start = lo;
    for max in MAX_BY_LEN {
        if start > hi {
            break;
        }
        if start <= max {
            let end = hi.min(max);
            split(start, end, out);
            start = end + 1;
        }
    }
}

/// `lo..=hi` share an encoded length; cut it until each byte position is an independent range.
fn split(lo: u32, hi: u32, out: &mut Vec<Sequence>) {
    for i in 1..4 {
        let m: u32 = (1 << (6 * i)) - 1;
        if lo & !m != hi & !m {
            if lo & m != 0 {
                split(lo, lo | m, out);
                split((lo | m) + 1, hi, out);
                return;
            }
            if hi & m != m {
                split(lo, (hi & !m) - 1, out);
                split(hi & !m, hi, out);
                return;
            }
        }
    }
    let (a, b) = (encode(lo), encode(hi));
    out.push(a.iter().zip(&b).map(|(&x, &y)| (x, y)).collect());
}

fn encode(c: u32) -> Vec<u8> {
    // Callers pass scalar values only (surrogates are removed from classes); U+FFFD would be a
    // wrong but harmless spelling, never reached.
    let c = char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER);
    c.encode_utf8(&mut [0; 4]).as_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(seqs: &[Sequence], bytes: &[u8]) -> bool {
        seqs.iter().any(|s| {
            s.len() == bytes.len()
                && s.iter()
                    .zip(bytes)
                    .all(|(&(lo, hi), &b)| lo <= b && b <= hi)
        })
    }

    #[test]
    fn sequences_spell_exactly_the_range() {
        for (lo, hi) in [
            (0, 0x10FFFF),
            (0x41, 0x5A),
            (0x7F, 0x800),
            (0x3B1, 0x30FF),
            (0xE000, 0x1F64F),
        ] {
            let mut seqs = Vec::new();
            sequences(lo, hi.min(0xD7FF), &mut seqs);
            if hi > 0xDFFF {
                sequences(lo.max(0xE000), hi, &mut seqs);
            }
            for c in (0..=0x10FFFFu32)
                .step_by(7)
                .chain([lo, hi, 0x7FF, 0x800, 0xFFFF, 0x10000])
            {
                let Some(ch) = char::from_u32(c) else {
                    continue;
                };
                let inside = lo <= c && c <= hi;
                let bytes = ch.to_string().into_bytes();
                assert_eq!(
                    matches(&seqs, &bytes),
                    inside,
                    "U+{c:04X} in {lo:X}..={hi:X}"
                );
            }
        }
    }
}
