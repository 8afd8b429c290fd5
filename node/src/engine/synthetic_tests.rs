//! Synthetic engine tests: text, finish reasons, resume, cancel, queueing, shutdown.

use std::time::{Duration, Instant};

use super::*;
use crate::engine::testutil::{collect, wait_until};
use crate::engine::{Role, SamplingParams};

const LIMIT: Duration = Duration::from_secs(5);

fn engine(config: SyntheticConfig) -> SyntheticEngine {
    SyntheticEngine::new("synthetic-test", config).expect("synthetic engine starts")
}

fn request(max_tokens: u32, stop: &[&str], resume: &str) -> GenerateRequest {
    let mut req = GenerateRequest::new(
        vec![ChatMessage::new(Role::User, "count for me")],
        SamplingParams {
            max_tokens,
            stop: stop.iter().map(|s| s.to_string()).collect(),
            ..SamplingParams::default()
        },
    );
    req.resume_text = resume.to_string();
    req
}

#[tokio::test]
async fn answers_by_table() {
    let fast = SyntheticConfig {
        tokens_per_second: 500.0,
        ..SyntheticConfig::default()
    };
    let ends_at_4 = SyntheticConfig {
        answer_tokens: Some(4),
        ..fast
    };
    let cases = [
        (
            "max_tokens bounds a resumed answer too",
            fast,
            request(5, &[], "w1 w2 w3"),
            " w4 w5",
            FinishReason::Length,
            2,
        ),
        (
            "max_tokens",
            fast,
            request(5, &[], ""),
            "w1 w2 w3 w4 w5",
            FinishReason::Length,
            5,
        ),
        (
            "natural end",
            ends_at_4,
            request(50, &[], ""),
            "w1 w2 w3 w4",
            FinishReason::Stop,
            4,
        ),
        (
            "resume",
            ends_at_4,
            request(50, &[], "w1 w2"),
            " w3 w4",
            FinishReason::Stop,
            2,
        ),
        (
            "resume of a finished answer",
            ends_at_4,
            request(50, &[], "w1 w2 w3 w4"),
            "",
            FinishReason::Stop,
            0,
        ),
        (
            "stop string",
            fast,
            request(50, &[" w3"], ""),
            "w1 w2",
            FinishReason::Stop,
            3,
        ),
    ];
    for (name, config, req, want_text, want_reason, want_tokens) in cases {
        let e = engine(config);
        let got = collect(e.generate(req), LIMIT).await;
        let s = got.summary();
        assert_eq!(got.text(), want_text, "{name}");
        assert_eq!(s.finish_reason, want_reason, "{name}");
        assert_eq!(s.completion_tokens, want_tokens, "{name}");
    }
}

#[tokio::test]
async fn a_seed_tags_every_word_and_a_resume_keeps_it() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 500.0,
        ..SyntheticConfig::default()
    });
    // (seed, resume text, wanted new text)
    let cases = [
        (0, "", "w1 w2 w3"),
        (7, "", "w1:7 w2:7 w3:7"),
        (7, "w1:7", " w2:7 w3:7"),
        (123456789, "", "w1:123456789 w2:123456789 w3:123456789"),
    ];
    for (seed, resume, want) in cases {
        let mut req = request(3, &[], resume);
        req.params.seed = seed;
        let got = collect(e.generate(req), LIMIT).await;
        assert_eq!(got.text(), want, "seed {seed}, resume {resume:?}");
    }
}

#[tokio::test]
async fn stamped_words_carry_when_they_were_generated() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 100.0,
        stamped: true,
        ..SyntheticConfig::default()
    });
    let now_us = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_micros() as u64
    };
    // (seed, resume text, wanted words without their stamps)
    let cases = [
        (0, "", vec!["w1", "w2", "w3"]),
        (7, "", vec!["w1:7", "w2:7", "w3:7"]),
        (7, "w1:7@1 w2:7@2", vec!["w3:7"]),
    ];
    for (seed, resume, want) in cases {
        let mut req = request(3, &[], resume);
        req.params.seed = seed;
        let before = now_us();
        let got = collect(e.generate(req), LIMIT).await;
        let after = now_us();
        let text = got.text();
        let words: Vec<&str> = text.split_whitespace().collect();
        let stamps: Vec<u64> = words.iter().filter_map(|w| word_stamp(w)).collect();
        let bare: Vec<&str> = words
            .iter()
            .map(|w| w.split_once('@').map_or(*w, |(b, _)| b))
            .collect();
        assert_eq!(bare, want, "seed {seed}, resume {resume:?}: {words:?}");
        assert_eq!(stamps.len(), want.len(), "every word stamped: {words:?}");
        // Generated in order, at 100 tokens/s, during this call.
        assert!(
            stamps.windows(2).all(|p| p[1] >= p[0] + 5_000),
            "{stamps:?}"
        );
        assert!(
            stamps.iter().all(|t| (before..=after).contains(t)),
            "{stamps:?} not within {before}..={after}"
        );
    }
}

#[test]
fn stamps_are_read_back() {
    let cases = [
        (
            stamped_word(0, 0, 1_733_345_000_123_456),
            "w1@1733345000123456",
        ),
        (stamped_word(2, 7, 42), " w3:7@42"),
    ];
    for (word, want) in &cases {
        assert_eq!(word, want);
    }
    assert_eq!(word_stamp(" w3:7@42"), Some(42));
    assert_eq!(
        word_stamp("w1@1733345000123456"),
        Some(1_733_345_000_123_456)
    );
    assert_eq!(word_stamp("w1"), None);
    assert_eq!(word_stamp("w1:7"), None);
    assert_eq!(word_stamp("w1@"), None);
}

#[tokio::test]
async fn keeps_its_token_rate() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 100.0,
        ..SyntheticConfig::default()
    });
    let started = Instant::now();
    let got = collect(e.generate(request(10, &[], "")), LIMIT).await;
    let elapsed = started.elapsed();
    assert_eq!(got.summary().completion_tokens, 10);
    assert!(
        elapsed >= Duration::from_millis(95),
        "10 tokens at 100/s took {elapsed:?}"
    );
    assert!(got.summary().time_to_first_token >= Duration::from_millis(9));
}

#[tokio::test]
async fn cancel_ends_the_answer_quickly() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 20.0,
        ..SyntheticConfig::default()
    });
    let req = request(1000, &[], "");
    let cancel = req.cancel.clone();
    let mut rx = e.generate(req);
    assert!(matches!(rx.recv().await, Some(GenEvent::Token { .. })));
    let cancelled_at = Instant::now();
    cancel.cancel();
    let got = collect(rx, LIMIT).await;
    assert_eq!(got.summary().finish_reason, FinishReason::Cancelled);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(5),
        "{:?}",
        cancelled_at.elapsed()
    );
}

#[tokio::test]
async fn extra_requests_queue_until_a_slot_frees() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 200.0,
        max_sequences: 1,
        ..SyntheticConfig::default()
    });
    let first = e.generate(request(20, &[], ""));
    let second = e.generate(request(3, &[], ""));
    wait_until("one active, one queued", LIMIT, || {
        e.active_sequences() == 1 && e.queued() == 1
    })
    .await;
    let (a, b) = tokio::join!(collect(first, LIMIT), collect(second, LIMIT));
    assert_eq!(a.summary().completion_tokens, 20);
    assert_eq!(b.text(), "w1 w2 w3");
    wait_until("idle", LIMIT, || {
        e.active_sequences() == 0 && e.queued() == 0
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_queued_request_never_starts() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 100.0,
        max_sequences: 1,
        ..SyntheticConfig::default()
    });
    let busy = e.generate(request(30, &[], ""));
    let queued = request(5, &[], "");
    let cancel = queued.cancel.clone();
    let rx = e.generate(queued);
    cancel.cancel();
    let got = collect(rx, LIMIT).await;
    assert_eq!(got.summary().finish_reason, FinishReason::Cancelled);
    assert_eq!(got.summary().completion_tokens, 0);
    drop(busy);
}

#[tokio::test]
async fn bad_requests_fail_at_once() {
    let e = engine(SyntheticConfig {
        context_len: 8,
        ..SyntheticConfig::default()
    });
    let cases = [
        ("invalid params", request(0, &[], ""), "invalid_params"),
        (
            "prompt too long",
            request(5, &[], "a b c d e f g h"),
            "prompt_too_long",
        ),
    ];
    for (name, req, code) in cases {
        let got = collect(e.generate(req), LIMIT).await;
        match got.end {
            Err(err) => assert_eq!(err.code(), code, "{name}"),
            Ok(s) => panic!("{name}: expected failure, got {s:?}"),
        }
    }
}

#[tokio::test]
async fn dropping_the_engine_fails_what_it_holds() {
    let e = engine(SyntheticConfig {
        tokens_per_second: 10.0,
        ..SyntheticConfig::default()
    });
    let rx = e.generate(request(100, &[], ""));
    drop(e);
    let got = collect(rx, LIMIT).await;
    assert_eq!(got.end.err(), Some(EngineError::Shutdown));
}

#[test]
fn info_and_token_counts() {
    let e = engine(SyntheticConfig::default());
    assert_eq!(e.info().kind, "synthetic");
    assert_eq!(e.model_id(), "synthetic-test");
    let msgs = [ChatMessage::new(Role::User, "one two three")];
    assert_eq!(
        e.count_tokens(&msgs, &SamplingParams::default()).ok(),
        Some(3 + 4 + 3)
    );
    assert_eq!(synthetic_token(0), "w1");
    assert_eq!(synthetic_token(9), " w10");
}

#[tokio::test]
async fn generations_record_the_documented_metrics() {
    use metrics_exporter_prometheus::PrometheusBuilder;
    // The recorder is process-wide; tests that ran earlier simply recorded nothing.
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .expect("first global recorder");
    let e = SyntheticEngine::new(
        "metrics-test",
        SyntheticConfig {
            tokens_per_second: 500.0,
            ..SyntheticConfig::default()
        },
    )
    .expect("starts");
    let got = collect(e.generate(request(5, &[], "")), LIMIT).await;
    assert_eq!(got.summary().completion_tokens, 5);
    let text = handle.render();
    for name in [
        "orrery_tokens_generated_total{model=\"metrics-test\"} 5",
        "orrery_prompt_tokens_total{model=\"metrics-test\"}",
        "orrery_time_to_first_token_seconds",
        "orrery_generation_seconds",
        "orrery_generation_tokens_per_second{model=\"metrics-test\"}",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
}
