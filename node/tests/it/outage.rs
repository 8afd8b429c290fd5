//! A Temporal outage longer than the client's own retries: the ask in flight is not reported
//! failed; its user is told the node is reconnecting, and then gets the whole answer, with no
//! text repeated.

use crate::harness::{Client, Sandbox, apply_chunks};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_ask_survives_a_temporal_crash_and_restart() {
    let mut sb = Sandbox::start().await;
    // 4 tokens a second, 40 tokens: the answer outlives the outage.
    let config = "[[models]]\nid = \"synthetic\"\nsource = \"synthetic:4\"\n";
    let node = sb.node("out1", config).await;
    let (mut c, _hello) = Client::connect(&node).await;
    c.send(json!({"type": "ask", "model": "synthetic", "prompt": "count", "max_tokens": 40}))
        .await;
    let (accepted, _) = c.until("accepted").await;
    let id = accepted["request_id"].as_str().unwrap().to_string();
    let (first, _) = c.until("chunk").await;

    // Temporal stays down until the node tells its user it is reconnecting: an outage longer
    // than the client's own retries, which is what used to fail the ask.
    sb.crash_temporal().await;
    let is_end = |f: &serde_json::Value| {
        f["request_id"] == id.as_str()
            && matches!(f["type"].as_str(), Some("done" | "failed" | "cancelled"))
    };
    let mut frames = Vec::new();
    let reconnecting = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let f = c.next().await;
            let seen = f["type"] == "status" && f["stage"] == "reconnecting";
            let ended = is_end(&f);
            frames.push(f);
            if seen || ended {
                return seen;
            }
        }
    })
    .await
    .expect("the node reports the outage within a minute");
    assert!(
        reconnecting,
        "the ask ended during the outage: {:?}",
        frames.last()
    );
    sb.restart_temporal().await;

    // The ask's end, whatever it is (done, failed, cancelled), within a bound.
    let end = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let f = c.next().await;
            if is_end(&f) {
                return f;
            }
            frames.push(f);
        }
    })
    .await
    .expect("the ask ends");
    assert_eq!(end["type"], "done", "{end}");
    let want: Vec<String> = (0..40).map(orrery::engine::synthetic_token).collect();
    assert_eq!(end["text"].as_str().unwrap(), want.concat(), "{end}");
    let mut all = vec![first];
    all.extend(frames);
    let shown = apply_chunks(&all, &id);
    assert!(
        want.concat().starts_with(&shown),
        "no repeated text: {shown:?}"
    );
}

/// The dev server's log is a file beside its database: it used to be a pipe nobody read once the
/// server was up, and 64 KiB of errors (minutes of a loaded server) blocked every server thread
/// that logged, hanging the asks they served.
#[tokio::test(flavor = "multi_thread")]
async fn the_dev_server_logs_to_a_file_so_its_log_cannot_hang_it() {
    let sb = Sandbox::start().await;
    let pid = sb.temporal.pid().expect("the dev server runs");
    let stderr = std::fs::read_link(format!("/proc/{pid}/fd/2")).expect("its stderr");
    assert_eq!(stderr, sb.dir.path().join("temporal.log"));
}
