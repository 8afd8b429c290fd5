//! Token choice and output text assembly: seeded sampling over logits, and the text stream that
//! emits only whole UTF-8 characters and holds back text that may begin a stop string.

use candle_core::Tensor;
use candle_transformers::generation::LogitsProcessor;

use super::{EngineError, SamplingParams};

/// Picks the next token from logits: argmax at temperature 0, otherwise temperature (and
/// optionally top-p) sampling from an RNG seeded by `params.seed`, so runs are reproducible.
pub struct Sampler {
    inner: LogitsProcessor,
}

impl Sampler {
    pub fn new(params: &SamplingParams) -> Self {
        let temperature = (params.temperature > 0.0).then_some(params.temperature);
        Sampler {
            inner: LogitsProcessor::new(params.seed, temperature, params.top_p),
        }
    }

    /// `logits` is one-dimensional, one value per vocabulary entry.
    pub fn sample(&mut self, logits: &Tensor) -> Result<u32, EngineError> {
        self.inner
            .sample(logits)
            .map_err(|e| EngineError::Inference(format!("sampling: {e}")))
    }
}

/// What the stream produced from one token's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Text safe to emit now (possibly empty).
    Text(String),
    /// A stop string matched: this is the text before it, and the answer is over.
    Stopped(String),
}

/// Turns generated token bytes into emitted text.
///
/// Bytes of an unfinished UTF-8 character wait for the next token. Text that could be the start
/// of a stop string waits until it either completes the stop string (then it is dropped and the
/// answer ends) or can no longer do so.
#[derive(Debug, Default)]
pub struct TextStream {
    pending_bytes: Vec<u8>,
    held: String,
    stops: Vec<String>,
}

impl TextStream {
    pub fn new(stops: &[String]) -> Self {
        TextStream {
            pending_bytes: Vec::new(),
            held: String::new(),
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
        }
    }

    /// Adds one token's bytes.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> Pushed {
        self.pending_bytes.extend_from_slice(bytes);
        let text = take_complete_utf8(&mut self.pending_bytes);
        self.push_text(&text)
    }

    /// Adds text that is already whole characters.
    pub fn push_text(&mut self, text: &str) -> Pushed {
        self.held.push_str(text);
        if let Some(at) = self.earliest_stop() {
            self.held.truncate(at);
            // Whatever follows the stop string is not part of the answer.
            self.pending_bytes.clear();
            return Pushed::Stopped(std::mem::take(&mut self.held));
        }
        let keep = self.longest_stop_prefix_suffix();
        let emit_len = self.held.len() - keep;
        let rest = self.held.split_off(emit_len);
        Pushed::Text(std::mem::replace(&mut self.held, rest))
    }

    /// Everything still held, at the end of the answer: unfinished characters become U+FFFD.
    pub fn finish(&mut self) -> String {
        let tail = String::from_utf8_lossy(&self.pending_bytes).into_owned();
        self.pending_bytes.clear();
        let mut out = std::mem::take(&mut self.held);
        out.push_str(&tail);
        out
    }

    fn earliest_stop(&self) -> Option<usize> {
        self.stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
    }

    /// Length of the longest end of `held` that is a proper beginning of some stop string.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for k in (best + 1..stop.len()).rev() {
                if stop.is_char_boundary(k) && self.held.ends_with(&stop[..k]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}

/// Removes and returns the longest decodable beginning of `bytes`, leaving only an unfinished
/// character behind; invalid sequences become U+FFFD as `String::from_utf8_lossy` would.
fn take_complete_utf8(bytes: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(s) => {
                out.push_str(s);
                start = bytes.len();
                break;
            }
            Err(e) => {
                let valid = e.valid_up_to();
                // The prefix up to `valid_up_to` is valid UTF-8 by definition.
                out.push_str(&String::from_utf8_lossy(&bytes[start..start + valid]));
                match e.error_len() {
                    Some(bad) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        start += valid + bad;
                    }
                    None => {
                        start += valid;
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn logits(values: &[f32]) -> Tensor {
        Tensor::new(values, &Device::Cpu).expect("tensor")
    }

    fn draw(params: &SamplingParams, values: &[f32], n: usize) -> Vec<u32> {
        let mut sampler = Sampler::new(params);
        let l = logits(values);
        (0..n)
            .map(|_| sampler.sample(&l).expect("sample"))
            .collect()
    }

    const FLAT: &[f32] = &[1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98];

    #[test]
    fn same_seed_same_tokens() {
        let cases = [
            (
                "temperature",
                SamplingParams {
                    temperature: 1.0,
                    seed: 7,
                    ..Default::default()
                },
            ),
            (
                "top_p",
                SamplingParams {
                    temperature: 0.8,
                    top_p: Some(0.9),
                    seed: 42,
                    ..Default::default()
                },
            ),
            (
                "hot",
                SamplingParams {
                    temperature: 2.0,
                    seed: u64::MAX,
                    ..Default::default()
                },
            ),
        ];
        for (name, params) in cases {
            let a = draw(&params, FLAT, 32);
            let b = draw(&params, FLAT, 32);
            assert_eq!(a, b, "{name}");
            let mut distinct = a.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert!(
                distinct.len() > 1,
                "{name}: a near-flat distribution should vary: {a:?}"
            );
            let other = SamplingParams {
                seed: params.seed.wrapping_add(1),
                ..params
            };
            assert_ne!(
                a,
                draw(&other, FLAT, 32),
                "{name}: another seed, another sequence"
            );
        }
    }

    #[test]
    fn fixed_seed_sequence_is_stable() {
        // Pinned so a change in the sampler or RNG that alters reproducibility is noticed.
        let params = SamplingParams {
            temperature: 1.0,
            seed: 1234,
            ..Default::default()
        };
        let top_p = SamplingParams {
            top_p: Some(0.5),
            ..params.clone()
        };
        assert_eq!(
            draw(&params, FLAT, 12),
            vec![0, 0, 7, 1, 2, 4, 5, 3, 5, 5, 7, 0]
        );
        assert_eq!(
            draw(&top_p, FLAT, 12),
            vec![0, 0, 6, 0, 1, 3, 3, 1, 3, 3, 6, 0]
        );
    }

    #[test]
    fn argmax_cases() {
        let peaked = &[0.0, 0.5, 9.0, 0.1];
        let cases = [
            (
                "temperature 0",
                SamplingParams {
                    temperature: 0.0,
                    seed: 3,
                    ..Default::default()
                },
            ),
            (
                "tiny top_p",
                SamplingParams {
                    temperature: 1.0,
                    top_p: Some(1e-6),
                    ..Default::default()
                },
            ),
        ];
        for (name, params) in cases {
            assert_eq!(draw(&params, peaked, 10), vec![2; 10], "{name}");
        }
    }

    /// Stop strings, token bytes pushed in turn, then the expected `Text` outputs, the text
    /// before a matched stop string, and what `finish` returns.
    struct StreamCase<'a> {
        name: &'a str,
        stops: &'a [&'a str],
        pieces: &'a [&'a [u8]],
        want: &'a [&'a str],
        stopped: Option<&'a str>,
        tail: &'a str,
    }

    fn check(case: &StreamCase) {
        let stops: Vec<String> = case.stops.iter().map(|s| s.to_string()).collect();
        let mut s = TextStream::new(&stops);
        let mut out = Vec::new();
        let mut stopped = None;
        for p in case.pieces {
            match s.push_bytes(p) {
                Pushed::Text(t) => out.push(t),
                Pushed::Stopped(t) => {
                    stopped = Some(t);
                    break;
                }
            }
        }
        let tail = if stopped.is_some() {
            String::new()
        } else {
            s.finish()
        };
        let name = case.name;
        assert_eq!(out, case.want, "{name}");
        assert_eq!(stopped.as_deref(), case.stopped, "{name}");
        assert_eq!(tail, case.tail, "{name}");
    }

    #[test]
    fn utf8_is_never_split() {
        let e_acute = "é".as_bytes();
        let crab = "🦀".as_bytes();
        let y_and_crab_start = [b'y', crab[0]];
        let case = |name, pieces, want, tail| StreamCase {
            name,
            stops: &[],
            pieces,
            want,
            stopped: None,
            tail,
        };
        // Temporaries in a `for` head live for the whole loop.
        for c in [
            case("ascii", &[b"ab", b"c"], &["ab", "c"], ""),
            case(
                "two-byte char split",
                &[&e_acute[..1], &e_acute[1..]],
                &["", "é"],
                "",
            ),
            case(
                "four-byte char in three",
                &[&crab[..1], &crab[1..3], &crab[3..]],
                &["", "", "🦀"],
                "",
            ),
            case(
                "text then partial",
                &[b"x", &y_and_crab_start, &crab[1..]],
                &["x", "y", "🦀"],
                "",
            ),
            case("invalid byte", &[b"a\xffb"], &["a\u{fffd}b"], ""),
            case(
                "unfinished at end",
                &[b"ok", &crab[..2]],
                &["ok", ""],
                "\u{fffd}",
            ),
        ] {
            check(&c);
        }
    }

    #[test]
    fn stop_strings_are_held_back_and_dropped() {
        let case = |name, stops, pieces, want, stopped, tail| StreamCase {
            name,
            stops,
            pieces,
            want,
            stopped,
            tail,
        };
        for c in [
            case(
                "no stop",
                &["END"],
                &[b"hello", b" world"],
                &["hello", " world"],
                None,
                "",
            ),
            case(
                "exact stop",
                &["END"],
                &[b"hi ", b"END"],
                &["hi "],
                Some(""),
                "",
            ),
            case(
                "stop across tokens",
                &["END"],
                &[b"hi E", b"N", b"D more"],
                &["hi ", ""],
                Some(""),
                "",
            ),
            case(
                "false start released",
                &["END"],
                &[b"hi E", b"NX"],
                &["hi ", "ENX"],
                None,
                "",
            ),
            case(
                "text before stop kept",
                &["\n\n"],
                &[b"a\n", b"b\n\nc"],
                &["a"],
                Some("\nb"),
                "",
            ),
            case(
                "held text flushed at end",
                &["END"],
                &[b"the EN"],
                &["the "],
                None,
                "EN",
            ),
            case(
                "earliest of several",
                &["zz", "b"],
                &[b"azzb"],
                &[],
                Some("a"),
                "",
            ),
            case(
                "multibyte stop",
                &["é!"],
                &[b"caf", "é".as_bytes(), b"!"],
                &["caf", ""],
                Some(""),
                "",
            ),
        ] {
            check(&c);
        }
    }
}
