//! Structured output in the local engine: a request's response format as a grammar state that
//! masks the logits at every sampling step (`orrery_cpu::grammar`, see
//! docs/structured-output.md), rebuilt from the text so far when an answer resumes elsewhere.

use std::cell::OnceCell;
use std::sync::Arc;

use orrery_cpu::grammar::{GrammarState, TokenVocab};

use super::tokenizer::GgufTokenizer;
use super::{EngineError, ResponseFormat};

/// The model's vocabulary as the grammar sees it, built on the first constrained request (about
/// 20 ms for 49k tokens) so that models never asked for JSON never pay for it.
#[derive(Default)]
pub struct LazyVocab(OnceCell<Arc<TokenVocab>>);

impl LazyVocab {
    pub fn get(&self, tokenizer: &GgufTokenizer) -> Arc<TokenVocab> {
        Arc::clone(
            self.0
                .get_or_init(|| Arc::new(TokenVocab::from_tokenizer(tokenizer))),
        )
    }
}

/// Where one answer stands in its grammar, and the vocabulary to mask with.
pub struct Constraint {
    state: GrammarState,
    vocab: Arc<TokenVocab>,
}

impl Constraint {
    /// The constraint for `format` (none for plain text). A resumed answer's state follows
    /// `resume_text`: the state depends on the bytes only, so a failover mid-JSON continues the
    /// same JSON. A resume text the grammar refuses is the request's fault.
    pub fn new(
        format: Option<&ResponseFormat>,
        resume_text: &str,
        vocab: impl FnOnce() -> Arc<TokenVocab>,
    ) -> Result<Option<Self>, EngineError> {
        let Some(format) = format else {
            return Ok(None);
        };
        let grammar = format
            .grammar()
            .map_err(|e| EngineError::InvalidParams(format!("response_format: {e}")))?;
        let mut state = GrammarState::new(&grammar);
        state.advance(resume_text.as_bytes()).map_err(|e| {
            EngineError::InvalidParams(format!(
                "the answer to resume does not fit its response_format: {e}"
            ))
        })?;
        Ok(Some(Constraint {
            state,
            vocab: vocab(),
        }))
    }

    /// Sets the logit of every token that cannot come next to −∞.
    pub fn mask(&self, logits: &mut [f32]) -> Result<(), EngineError> {
        let mask = self.state.allowed_tokens(&self.vocab);
        if mask.count() == 0 {
            // Only a grammar that needs a byte no token has (or an empty vocabulary) gets here.
            return Err(EngineError::Inference(
                "no token of the vocabulary can continue the response format".into(),
            ));
        }
        mask.apply(logits);
        Ok(())
    }

    /// Follows a sampled token (one the mask allowed).
    pub fn accept(&mut self, token: u32) -> Result<(), EngineError> {
        self.state.advance_token(&self.vocab, token).map_err(|e| {
            EngineError::Inference(format!("sampled token {token} outside the grammar: {e}"))
        })
    }

    /// Whether nothing may follow: the answer is complete and cannot go on.
    pub fn is_finished(&self) -> bool {
        self.state.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy vocabulary: single bytes of JSON, a few longer pieces, and an end token (id 0).
    fn vocab() -> Arc<TokenVocab> {
        let pieces: Vec<&[u8]> = vec![
            b"", b"{", b"}", b"\"", b"a", b":", b"1", b" ", b"\"a\"", b"x", b",", b"[", b"]",
        ];
        Arc::new(TokenVocab::new(&pieces, &[0]))
    }

    fn schema() -> ResponseFormat {
        ResponseFormat::JsonSchema {
            name: "t".into(),
            schema_text:
                r#"{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]}"#.into(),
            strict: true,
        }
    }

    fn allowed(c: &Constraint) -> Vec<usize> {
        let mut logits = vec![0.0f32; 13];
        c.mask(&mut logits).expect("mask");
        (0..logits.len())
            .filter(|&i| logits[i].is_finite())
            .collect()
    }

    #[test]
    fn plain_text_has_no_constraint() {
        assert!(Constraint::new(None, "", vocab).expect("ok").is_none());
    }

    #[test]
    fn resumed_state_continues_the_same_json() {
        // (resume text, token ids the mask should allow next)
        let table: [(&str, &[usize]); 4] = [
            ("", &[1, 7]),
            ("{", &[3, 7, 8]),
            ("{\"a\":", &[6, 7]),
            ("{\"a\":1}", &[0, 7]),
        ];
        for (resume, want) in table {
            let c = Constraint::new(Some(&schema()), resume, vocab)
                .expect("valid prefix")
                .expect("constrained");
            assert_eq!(allowed(&c), want, "after {resume:?}");
        }
    }

    #[test]
    fn a_resume_text_outside_the_grammar_is_a_bad_request() {
        let Err(e) = Constraint::new(Some(&schema()), "{\"b\"", vocab) else {
            panic!("accepted a resume text the schema refuses");
        };
        assert!(e.is_bad_request(), "{e}");
    }

    #[test]
    fn hot_sampling_only_ever_picks_allowed_tokens() {
        use crate::engine::SamplingParams;
        use crate::engine::sampling::Sampler;
        let c = Constraint::new(Some(&schema()), "{", vocab)
            .expect("ok")
            .expect("constrained");
        let allowed = allowed(&c);
        // The model would rather say anything else: the disallowed tokens have the top logits.
        let raw: Vec<f32> = (0..13)
            .map(|i| if allowed.contains(&i) { 0.0 } else { 5.0 })
            .collect();
        for (temperature, top_p) in [(0.0, None), (1.5, None), (1.0, Some(0.9))] {
            let params = SamplingParams {
                temperature,
                top_p,
                seed: 11,
                ..SamplingParams::default()
            };
            let mut sampler = Sampler::new(&params);
            for _ in 0..50 {
                let mut logits = raw.clone();
                c.mask(&mut logits).expect("mask");
                let t = candle_core::Tensor::new(logits.as_slice(), &candle_core::Device::Cpu)
                    .expect("tensor");
                let id = sampler.sample(&t).expect("sample") as usize;
                assert!(allowed.contains(&id), "{temperature} {top_p:?}: {id}");
            }
        }
    }

    #[test]
    fn accepted_tokens_advance_until_finished() {
        let format = ResponseFormat::JsonSchema {
            name: "t".into(),
            schema_text: r#"{"const":1}"#.into(),
            strict: false,
        };
        let mut c = Constraint::new(Some(&format), "", vocab)
            .expect("ok")
            .expect("constrained");
        assert!(c.accept(9).is_err(), "x is not JSON");
        c.accept(6).expect("1");
        assert!(!c.is_finished(), "whitespace may still follow");
        assert_eq!(allowed(&c), [0, 7]);
    }
}
