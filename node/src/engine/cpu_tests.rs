//! The CPU llama (crate `orrery-cpu`) against candle's reference and against itself: one batched pass must give each
//! sequence what a pass of its own gives, and a failed pass must be safe to retry.

use std::fs::File;
use std::sync::OnceLock;

use candle_core::{Device, Tensor};

use orrery_cpu::gguf::Gguf;
use orrery_cpu::{Feed, KvCache, Model};

use super::testutil::{candle_f32_reference, test_model_path};

fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let mut file = File::open(test_model_path()).expect("open model");
        let gguf = Gguf::read(&mut file).expect("read GGUF");
        Model::from_gguf(&gguf, &mut file, 2, orrery_cpu::Precision::Quantized, 0).expect("loads")
    })
}

/// Token ids of two unrelated short prompts (any ids in the vocabulary do).
const A: [u32; 7] = [1, 9690, 198, 2683, 314, 260, 3575];
const B: [u32; 4] = [1, 4093, 6032, 30];

fn solo(tokens: &[u32], pos: usize, cache: &mut KvCache) -> Vec<f32> {
    let mut feeds = [Feed {
        tokens,
        pos,
        cache,
        logits: true,
    }];
    model().forward(&mut feeds).expect("forward").remove(0)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn logits_match_candle_over_the_dequantized_weights() {
    let mut reference = candle_f32_reference();
    let input = Tensor::new(&A[..], &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input");
    let want: Vec<f32> = reference
        .forward(&input, 0)
        .and_then(|l| l.squeeze(0))
        .and_then(|l| l.to_vec1())
        .expect("candle forward");
    let mut cache = model().new_cache();
    let got = solo(&A, 0, &mut cache);
    let diff = max_diff(&got, &want);
    assert!(diff < 2e-3, "largest logit difference {diff}");

    // And one decode step after the prompt.
    let next = Tensor::new(&[42u32], &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .expect("input");
    let want: Vec<f32> = reference
        .forward(&next, A.len())
        .and_then(|l| l.squeeze(0))
        .and_then(|l| l.to_vec1())
        .expect("candle decode");
    let got = solo(&[42], A.len(), &mut cache);
    let diff = max_diff(&got, &want);
    assert!(diff < 2e-3, "decode step: largest logit difference {diff}");
}

#[test]
fn a_batched_pass_gives_each_sequence_its_solo_logits() {
    let m = model();
    let (mut a_solo, mut b_solo) = (m.new_cache(), m.new_cache());
    let a1 = solo(&A, 0, &mut a_solo);
    let b1 = solo(&B, 0, &mut b_solo);
    let a2 = solo(&[7], A.len(), &mut a_solo);
    let b2 = solo(&[8], B.len(), &mut b_solo);

    let (mut a, mut b) = (m.new_cache(), m.new_cache());
    // A prompt and a prompt together, then a decode beside a decode.
    let out = m
        .forward(&mut [
            Feed {
                tokens: &A,
                pos: 0,
                cache: &mut a,
                logits: true,
            },
            Feed {
                tokens: &B,
                pos: 0,
                cache: &mut b,
                logits: true,
            },
        ])
        .expect("batched prompts");
    assert!(max_diff(&out[0], &a1) < 1e-3);
    assert!(max_diff(&out[1], &b1) < 1e-3);
    let out = m
        .forward(&mut [
            Feed {
                tokens: &[8],
                pos: B.len(),
                cache: &mut b,
                logits: true,
            },
            Feed {
                tokens: &[7],
                pos: A.len(),
                cache: &mut a,
                logits: true,
            },
        ])
        .expect("batched decodes");
    assert!(max_diff(&out[0], &b2) < 1e-3);
    assert!(max_diff(&out[1], &a2) < 1e-3);
}

#[test]
fn a_pass_can_be_repeated_from_the_same_position() {
    let m = model();
    let mut cache = m.new_cache();
    let first = solo(&A, 0, &mut cache);
    let again = solo(&A, 0, &mut cache);
    assert!(max_diff(&first, &again) < 1e-5);
    let bytes = cache.bytes();
    let c = &m.config;
    assert_eq!(bytes, 2 * c.layers * A.len() * c.kv_heads * c.head_dim * 4);
}

#[test]
fn feeds_without_logits_return_none_and_bad_feeds_are_errors() {
    let m = model();
    let (mut a, mut b) = (m.new_cache(), m.new_cache());
    let out = m
        .forward(&mut [
            Feed {
                tokens: &A[..3],
                pos: 0,
                cache: &mut a,
                logits: false,
            },
            Feed {
                tokens: &B,
                pos: 0,
                cache: &mut b,
                logits: true,
            },
        ])
        .expect("forward");
    assert!(out[0].is_empty());
    assert_eq!(out[1].len(), m.config.vocab);

    let mut c = m.new_cache();
    let too_big = m.config.vocab as u32;
    let err = m
        .forward(&mut [Feed {
            tokens: &[too_big],
            pos: 0,
            cache: &mut c,
            logits: true,
        }])
        .expect_err("token outside the vocabulary");
    assert!(err.to_string().contains("vocabulary"), "{err}");
    let err = m
        .forward(&mut [Feed {
            tokens: &[],
            pos: 0,
            cache: &mut c,
            logits: true,
        }])
        .expect_err("empty feed");
    assert!(err.to_string().contains("no tokens"), "{err}");
    let past = m.config.context_len;
    let err = m
        .forward(&mut [Feed {
            tokens: &[5],
            pos: past,
            cache: &mut c,
            logits: true,
        }])
        .expect_err("past the context");
    assert!(err.to_string().contains("context"), "{err}");
}
