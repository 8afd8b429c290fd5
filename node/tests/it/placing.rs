//! Placement beyond least load: cache-aware placement on two nodes with the real model (a
//! follow-up turn goes back to the node whose prefix cache holds its conversation, even while
//! that node is the busier one, and a new conversation still goes to the idle node); and queues
//! that move (asks waiting on a full node start on a replica that loads elsewhere).

use crate::cluster::{Mesh, synthetic_with};
use crate::harness::{Client, DEFAULT_MODEL_CONFIG, wait_cluster, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

/// A system prompt of a few hundred tokens: what a hit saves is worth more than one sequence of
/// load.
fn system_prompt() -> String {
    let facts = [
        "Paris is the capital of France.",
        "Berlin is the capital of Germany.",
        "Madrid is the capital of Spain.",
        "Rome is the capital of Italy.",
        "Lisbon is the capital of Portugal.",
        "Vienna is the capital of Austria.",
    ];
    let mut s = String::from("You are a helpful geography assistant. Answer in one sentence. ");
    for round in 0..8 {
        for f in facts {
            s.push_str(&format!("Fact {round}: {f} "));
        }
    }
    s
}

fn msg(role: &str, content: &str) -> Value {
    json!({"role": role, "content": content})
}

/// Sends an ask and returns its request id.
async fn ask(c: &mut Client, messages: Vec<Value>, max_tokens: u32) -> String {
    c.send(
        json!({"type": "ask", "messages": messages, "max_tokens": max_tokens, "temperature": 0.0}),
    )
    .await;
    let (accepted, _) = c.until("accepted").await;
    accepted["request_id"]
        .as_str()
        .expect("request id")
        .to_string()
}

/// Reads frames until the ask's `done` and returns it.
async fn done(c: &mut Client) -> Value {
    let (done, seen) = c.until("done").await;
    assert!(
        !seen
            .iter()
            .any(|f| f["type"] == "failed" || f["type"] == "error"),
        "{seen:?}"
    );
    done
}

/// The node an ask generates on, from its `status` frames.
async fn generating_on(c: &mut Client) -> String {
    loop {
        let f = c.next().await;
        assert!(f["type"] != "failed" && f["type"] != "error", "{f}");
        if f["type"] == "status"
            && f["stage"] == "generating"
            && let Some(node) = f["node"].as_str()
        {
            return node.to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_turn_returns_to_the_node_that_holds_its_conversation() {
    let mesh = Mesh::new(2).await;
    let config = format!("{DEFAULT_MODEL_CONFIG}[autoscaling]\nenabled = false\n");
    let n2 = mesh.node(0, &config).await;
    let _n3 = mesh.node(1, &config).await;
    wait_cluster(&n2, &["n2", "n3"], "up").await;
    wait_for(
        "both nodes to hold the model",
        Duration::from_secs(120),
        || async {
            let view = n2.cluster().await;
            let holding = view
                .iter()
                .filter(|r| r["models"].as_array().is_some_and(|m| !m.is_empty()))
                .count();
            (holding == 2).then_some(())
        },
    )
    .await;

    let system = system_prompt();
    let (mut c, _) = Client::connect(&n2).await;
    let first = vec![
        msg("system", &system),
        msg("user", "What is the capital of France?"),
    ];
    ask(&mut c, first.clone(), 12).await;
    let turn1 = done(&mut c).await;
    let home = turn1["node"].as_str().expect("node").to_string();
    let other = if home == "n2" { "n3" } else { "n2" };

    // Another conversation with the same system prompt keeps `home` busy (its cache holds the
    // system prompt, which is worth more there than one sequence of load).
    let (mut busy, _) = Client::connect(&n2).await;
    ask(
        &mut busy,
        vec![
            msg("system", &system),
            msg(
                "user",
                "Write a long story about a dragon who visits every capital, in ten paragraphs.",
            ),
        ],
        400,
    )
    .await;
    assert_eq!(
        generating_on(&mut busy).await,
        home,
        "the shared system prompt drew it"
    );

    // While `home` is busy: a new conversation goes to the idle node ...
    let (mut fresh, _) = Client::connect(&n2).await;
    ask(&mut fresh, vec![msg("user", "Name a color.")], 8).await;
    let fresh_done = done(&mut fresh).await;
    assert_eq!(fresh_done["node"], other, "a new conversation is balanced");

    // ... and the follow-up turn goes back home though it is the busier node, prefilling only
    // what is new.
    // (The view carries each node's load as last reported: polled, not read once.)
    wait_for(
        &format!("the cluster view to show the story being told at {home}"),
        Duration::from_secs(10),
        || async {
            let view = n2.cluster().await;
            view.iter()
                .find(|r| r["node"] == home.as_str())
                .filter(|r| r["models"][0]["active"].as_u64().unwrap_or(0) >= 1)
                .map(|_| ())
        },
    )
    .await;
    let mut second = first;
    second.push(msg("assistant", turn1["text"].as_str().expect("text")));
    second.push(msg("user", "And of Germany?"));
    ask(&mut c, second, 12).await;
    let turn2 = done(&mut c).await;
    assert_eq!(turn2["node"], home.as_str(), "{turn2}");
    let usage = &turn2["usage"];
    let cached = usage["cached_tokens"].as_u64().expect("cached tokens");
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt tokens");
    assert!(
        cached > prompt / 2,
        "most of the prompt came from the cache: {usage}"
    );
    let busy_done = done(&mut busy).await;
    assert_eq!(busy_done["node"], home.as_str());
}

/// The synthetic answer "w1 … wN", nothing repeated or missing.
fn counts_up(text: &str, n: usize) -> bool {
    let want: Vec<String> = (1..=n).map(|i| format!("w{i}")).collect();
    text.split_whitespace().eq(want.iter().map(String::as_str))
}

#[tokio::test(flavor = "multi_thread")]
async fn asks_waiting_on_a_full_node_move_to_a_replica_that_loads_elsewhere() {
    let mesh = Mesh::new(2).await;
    // One sequence per node, 20 tokens/s: every ask after the first (30 s long) waits on n2.
    let config = format!(
        "{}[autoscaling]\nenabled = false\n",
        synthetic_with(true, 1, 20, 1, 8)
    );
    let n2 = mesh.node(0, &config).await;
    wait_cluster(&n2, &["n2"], "up").await;
    let (mut c, _) = Client::connect(&n2).await;
    let mut ids = Vec::new();
    // Every frame is kept: one ask's status may arrive while the next ask waits for `accepted`.
    let mut frames: Vec<Value> = Vec::new();
    for max_tokens in [600, 20, 20] {
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": max_tokens}))
            .await;
        let (accepted, seen) = c.until("accepted").await;
        frames.extend(seen);
        ids.push(accepted["request_id"].as_str().expect("id").to_string());
        frames.push(accepted);
        if max_tokens == 600 {
            // The long ask holds n2's only sequence before the others are sent (each ask's
            // `generate` reaches the node through its own workflow: sent back to back, a later
            // one could be dispatched first and the long one wait in line instead).
            let (chunk, seen) = c.until("chunk").await;
            frames.extend(seen);
            frames.push(chunk);
        }
    }
    // Both later asks are told they wait on n2 before the replica exists. (The socket's pings
    // keep `next` from timing out, so the loops below carry their own deadlines.)
    let is_queued = |f: &Value| f["type"] == "status" && f["stage"] == "queued";
    let mut queued: std::collections::HashSet<String> = frames
        .iter()
        .filter(|f| is_queued(f))
        .map(|f| f["request_id"].as_str().unwrap_or("").to_string())
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while queued.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both later asks should be told they are queued on n2: {frames:?}"
        );
        let f = c.next().await;
        if is_queued(&f) {
            queued.insert(f["request_id"].as_str().unwrap_or("").to_string());
        }
        frames.push(f);
    }

    // A second node with the model joins: the first ask in line moves there at once.
    let _n3 = mesh.node(1, &config).await;
    let mut done: std::collections::HashMap<String, Value> = Default::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while done.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "all three asks should end within 2 minutes: {frames:?}"
        );
        let f = c.next().await;
        assert!(f["type"] != "failed" && f["type"] != "error", "{f}");
        if f["type"] == "done" {
            done.insert(
                f["request_id"].as_str().unwrap_or("").to_string(),
                f.clone(),
            );
        }
        frames.push(f);
    }
    let (first, second, third) = (&done[&ids[0]], &done[&ids[1]], &done[&ids[2]]);
    assert_eq!(first["node"], "n2", "the running ask stays: {first}");
    assert_eq!(second["node"], "n3", "the first in line moved: {second}");
    assert_eq!(second["attempts"], 2, "moved once: {second}");
    // The third waits for whichever node frees first; every text is whole.
    for (d, n) in [(first, 600), (second, 20), (third, 20)] {
        assert!(counts_up(d["text"].as_str().unwrap_or(""), n), "{d}");
    }
    // The mover was told it generates on n3 after it waited on n2.
    let mover: Vec<&Value> = frames
        .iter()
        .filter(|f| f["request_id"] == ids[1].as_str() && f["type"] == "status")
        .collect();
    let waited = mover.iter().position(|f| f["stage"] == "queued");
    let moved = mover
        .iter()
        .position(|f| f["stage"] == "generating" && f["node"] == "n3");
    assert!(
        matches!((waited, moved), (Some(w), Some(m)) if w < m),
        "{mover:?}"
    );
}
