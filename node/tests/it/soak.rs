//! The short soak (issue 12): the driver of `scripts/soak` at a size the test suite affords. Three
//! nodes with the synthetic engine, 100 WebSocket users and 20 OpenAI-API streams asking for a
//! minute, one node killed -9 and restarted, the Temporal server killed -9 and restarted on its
//! database; every promise of the full soak asserted.

#[path = "../../../bench/soak/driver/mod.rs"]
mod driver;

use driver::SoakOptions;
use driver::asks::{Broken, End, Expect, failed, judge_done};
use driver::chaos::{Chaos, schedule};
use driver::rss::{Sample, runs, slope};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_short_soak_keeps_every_promise_through_a_node_kill_and_a_temporal_crash() {
    let s = Duration::from_secs;
    let options = SoakOptions {
        nodes: 3,
        websocket_users: 100,
        openai_streams: 20,
        duration: s(60),
        rate: 20,
        tokens: (8, 24),
        // About 4 asks/s: what a 2-core machine running another test beside this one serves.
        think: (s(20), s(40)),
        // One node kill at 30 s, one Temporal kill at 40 s.
        node_kill_every: Some(s(30)),
        temporal_kill_every: Some(s(25)),
        temporal_down: s(3),
        ask_deadline: s(90),
        rss_every: s(1),
        max_failed_ratio: 0.02,
        // A slope needs minutes to mean anything: no process here lives long enough after the
        // warm-up to be judged (scripts/soak judges them); the ceiling holds.
        rss_warmup: s(30),
        rss_min_span: s(60),
        rss_max_slope_mib_per_min: 8.0,
        rss_max_mib: 256.0,
        // Lines from the soak's own tasks would escape the test's captured output.
        progress: false,
    };
    let report = driver::run(options).await.expect("the soak runs");
    let table = report.table();
    eprintln!("{table}");
    assert!(report.kept(), "a promise was broken:\n{table}");
    assert_eq!((report.kills(false), report.kills(true)), (1, 1), "{table}");
    assert!(report.done() >= 100, "too few asks answered:\n{table}");
}

// The soak's pure parts.

#[test]
fn the_schedule_spaces_kills_and_stops_before_the_end() {
    let s = |x: u64| Duration::from_secs(x);
    // (duration, node every, temporal every) and the plan wanted.
    type Case = ((u64, Option<u64>, Option<u64>), Vec<(u64, Chaos)>);
    let node = Chaos::KillNode;
    let temporal = Chaos::KillTemporal;
    let table: Vec<Case> = vec![
        (
            (70, Some(20), None),
            vec![(20, node), (40, node), (60, node)],
        ),
        (
            (60, Some(20), Some(25)),
            vec![(20, node), (35, temporal), (40, node)],
        ),
        ((60, None, Some(60)), vec![]),
        ((10, Some(0), None), vec![]),
    ];
    for ((duration, node_every, temporal_every), want) in table {
        let got = schedule(s(duration), node_every.map(s), temporal_every.map(s));
        let want: Vec<(Duration, Chaos)> = want.into_iter().map(|(t, c)| (s(t), c)).collect();
        assert_eq!(
            got, want,
            "{duration} s, node {node_every:?}, temporal {temporal_every:?}"
        );
    }
}

#[test]
fn expected_text_carries_the_seed_and_judging_is_exact() {
    let e = Expect::new(5, 3);
    assert_eq!(e.text, "w1:5 w2:5 w3:5");
    // (final text, streamed text, wanted verdict)
    let table: &[(&str, &str, Option<Broken>)] = &[
        ("w1:5 w2:5 w3:5", "w1:5 w2:5 w3:5", None),
        (
            "w1:5 w2:5 w2:5 w3:5",
            "w1:5 w2:5 w2:5 w3:5",
            Some(Broken::WrongText),
        ),
        ("w1:5 w2:5", "w1:5 w2:5", Some(Broken::WrongText)),
        ("w1:6 w2:6 w3:6", "w1:6 w2:6 w3:6", Some(Broken::WrongText)),
        ("w1:5 w2:5 w3:5", "w1:5 w3:5", Some(Broken::WrongText)),
    ];
    for (text, shown, want) in table {
        let got = match judge_done(&e, text, shown, End::Done) {
            End::Broken(b, _) => Some(b),
            _ => None,
        };
        assert_eq!(got, *want, "{text:?} / {shown:?}");
    }
    assert_eq!(failed("", ""), End::Broken(Broken::NoReason, String::new()));
}

#[test]
fn slopes_and_runs() {
    assert_eq!(slope(&[(0.0, 5.0), (1.0, 7.0), (2.0, 9.0)]), 2.0);
    assert_eq!(slope(&[(0.0, 5.0), (1.0, 5.0)]), 0.0);
    assert_eq!(slope(&[(1.0, 5.0)]), 0.0);
    let s = |incarnation, age_s, mib| Sample {
        node: 0,
        incarnation,
        age_s,
        mib,
    };
    // A first process that grows 1 MiB a minute after a jump in its warm-up; a second too
    // short to judge.
    let samples = [
        s(1, 0.0, 10.0),
        s(1, 30.0, 40.0),
        s(1, 60.0, 41.0),
        s(1, 120.0, 42.0),
        s(2, 0.0, 10.0),
        s(2, 40.0, 30.0),
    ];
    let r = runs(&samples, Duration::from_secs(30), Duration::from_secs(60));
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].min_mib, r[0].max_mib, r[0].span_s),
        (10.0, 42.0, 90.0)
    );
    let k = r[0].slope_mib_per_min.expect("judged");
    assert!((k - 1.0).abs() < 0.35, "{k}");
    assert_eq!(r[1].slope_mib_per_min, None);
}
