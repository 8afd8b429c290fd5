//! Several nodes on distinct loopback addresses (127.0.0.2–4), one Temporal: the mesh, placement
//! across nodes, failover in the middle of an answer, drain, and the queue.

use crate::harness::{
    Client, Node, NodeOpts, Sandbox, apply_chunks, free_port_on, wait_cluster, wait_for,
};
use serde_json::{Value, json};
use std::time::Duration;

const COOKIE: &str = "test-cookie-0123456789abcdef01234";

/// A synthetic model (fixed token rate; text "w1 w2 w3 …") for orchestration tests. The scaling
/// loop is off: these tests are about the mesh.
fn synthetic(load: bool, max_sequences: u32, rate: u32) -> String {
    format!(
        "{}[autoscaling]\nenabled = false\n",
        synthetic_with(load, max_sequences, rate, 1, 8)
    )
}

/// A synthetic model with replica bounds, for tests of the scaling loop.
pub fn synthetic_with(load: bool, max_sequences: u32, rate: u32, min: u32, max: u32) -> String {
    format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:{rate}\"\ndefault = true\nload = {load}\nmax_sequences = {max_sequences}\nmin_replicas = {min}\nmax_replicas = {max}\n[limits]\nheartbeat_timeout_secs = 2\nshutdown_grace_secs = 30\n"
    )
}

pub struct Mesh {
    pub sb: Sandbox,
    addrs: Vec<String>,
}

impl Mesh {
    pub async fn new(n: usize) -> Mesh {
        let sb = Sandbox::start().await;
        let addrs = (0..n)
            .map(|i| {
                let ip = format!("127.0.0.{}", i + 2);
                format!("{ip}:{}", free_port_on(&ip))
            })
            .collect();
        Mesh { sb, addrs }
    }

    fn opts(&self, i: usize) -> NodeOpts {
        NodeOpts {
            ip: format!("127.0.0.{}", i + 2),
            cluster: Some(self.addrs[i].clone()),
            seeds: self.addrs.clone(),
            cookie: Some(COOKIE.into()),
            env: vec![("ORRERY_ADMIN_TOKEN".into(), "admin-secret".into())],
        }
    }

    pub async fn node(&self, i: usize, config: &str) -> Node {
        self.sb
            .node_with(&format!("n{}", i + 2), config, self.opts(i))
            .await
    }
}

/// Asks on `c` and returns (request id, node it generates on) once the first chunk arrived.
async fn ask_until_generating(c: &mut Client, max_tokens: u32) -> (String, String, Vec<Value>) {
    c.send(json!({"type": "ask", "prompt": "count", "max_tokens": max_tokens}))
        .await;
    let (accepted, _) = c.until("accepted").await;
    let id = accepted["request_id"].as_str().unwrap().to_string();
    let mut frames = Vec::new();
    let mut node = None;
    loop {
        let f = c.next().await;
        if f["type"] == "status" && f["stage"] == "generating" {
            node = f["node"].as_str().map(String::from);
        }
        let is_chunk = f["type"] == "chunk";
        assert!(f["type"] != "failed" && f["type"] != "error", "{f}");
        frames.push(f);
        if is_chunk && let Some(node) = &node {
            return (id, node.clone(), frames);
        }
    }
}

/// The synthetic answer "w1 … wN" with nothing repeated and nothing missing.
fn assert_counts_up(text: &str, n: usize) {
    let want: Vec<String> = (1..=n).map(|i| format!("w{i}")).collect();
    let got: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(got, want, "answer: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_form_one_cluster_and_answers_stream_across_it() {
    let mesh = Mesh::new(3).await;
    // n2 holds no model: every ask made there runs on n3 or n4 and streams back over the mesh.
    let n2 = mesh.node(0, &synthetic(false, 4, 200)).await;
    let n3 = mesh.node(1, &synthetic(true, 4, 200)).await;
    let n4 = mesh.node(2, &synthetic(true, 4, 200)).await;
    wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;

    let (mut c, _) = Client::connect(&n2).await;
    for _ in 0..4 {
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 30}))
            .await;
        let (accepted, _) = c.until("accepted").await;
        let id = accepted["request_id"].as_str().unwrap().to_string();
        let (done, frames) = c.until("done").await;
        assert_ne!(done["node"], "n2", "placed on a node that holds the model");
        assert_eq!(apply_chunks(&frames, &id), done["text"].as_str().unwrap());
        assert_counts_up(done["text"].as_str().unwrap(), 30);
    }

    // `orrery status --json` shows the same cluster.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["status", "--json", "--url", &n2.http])
        .output()
        .await
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).expect("status --json");
    let up: Vec<&str> = rows
        .iter()
        .filter(|r| r["state"] == "up")
        .filter_map(|r| r["node"].as_str())
        .collect();
    assert_eq!(up, ["n2", "n3", "n4"]);

    // A node that stops shows as gone.
    drop(n4);
    wait_cluster(&n2, &["n4"], "down").await;
    drop(n3);
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_generating_node_mid_answer_resumes_on_another_without_repeats() {
    let mesh = Mesh::new(3).await;
    let n2 = mesh.node(0, &synthetic(false, 4, 20)).await;
    let n3 = mesh.node(1, &synthetic(true, 4, 20)).await;
    let n4 = mesh.node(2, &synthetic(true, 4, 20)).await;
    wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;
    let mut nodes = vec![n3, n4];

    let (mut c, _) = Client::connect(&n2).await;
    let (id, generating, mut frames) = ask_until_generating(&mut c, 80).await;
    // Let a few words arrive, then kill -9 the node that generates them.
    while frames.iter().filter(|f| f["type"] == "chunk").count() < 10 {
        frames.push(c.next().await);
    }
    let victim = nodes
        .iter()
        .position(|n| n.id == generating)
        .expect("generating node");
    let mut dead = nodes.remove(victim);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();

    let (done, rest) = c.until("done").await;
    frames.extend(rest);
    let text = done["text"].as_str().unwrap();
    assert_eq!(
        apply_chunks(&frames, &id),
        text,
        "the stream continues where it stopped"
    );
    assert_counts_up(text, 80);
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["node"], nodes[0].id.as_str());

    // The history records the failed attempt and the re-plan.
    let history = crate::websocket::history_events(&mesh.sb, &id).await;
    assert!(
        history.iter().any(|e| e.contains("ActivityTaskTimedOut")),
        "{history:?}"
    );
    // Two placements: each a plan (a local activity, recorded as a marker, after the marker of
    // the plan-local-activity patch) and a generate activity.
    let count = |kind: &str| history.iter().filter(|e| e.contains(kind)).count();
    assert!(count("ActivityTaskScheduled") >= 2, "{history:?}");
    assert!(count("MarkerRecorded") >= 3, "{history:?}");

    // Restarted, the node rejoins and takes work again.
    let back = mesh.node(victim + 1, &synthetic(true, 4, 20)).await;
    wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;
    let admin = reqwest::Client::new();
    let drain = admin
        .post(format!("{}/admin/nodes/{}/drain", n2.http, nodes[0].id))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert!(drain.status().is_success());
    wait_cluster(&n2, &[nodes[0].id.as_str()], "draining").await;
    c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 5}))
        .await;
    let (done, _) = c.until("done").await;
    assert_eq!(done["node"], back.id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_with_the_wrong_cookie_is_refused_and_both_sides_say_so() {
    let mesh = Mesh::new(2).await;
    let n2 = mesh.node(0, &synthetic(true, 4, 200)).await;
    let mut opts = mesh.opts(1);
    opts.cookie = Some("not-the-cookie-0123456789abcdef0123".into());
    let n3 = mesh
        .sb
        .node_with("n3", &synthetic(true, 4, 200), opts)
        .await;
    wait_for(
        "the refusal in both logs",
        Duration::from_secs(30),
        || async {
            (n2.log().contains("refused a node") && n3.log().contains("refused us")).then_some(())
        },
    )
    .await;
    let view = n2.cluster().await;
    assert!(!view.iter().any(|r| r["node"] == "n3"), "{view:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn drain_lets_in_flight_answers_finish_then_takes_no_work() {
    let mesh = Mesh::new(3).await;
    let n2 = mesh.node(0, &synthetic(false, 4, 20)).await;
    let n3 = mesh.node(1, &synthetic(true, 4, 20)).await;
    let n4 = mesh.node(2, &synthetic(true, 4, 20)).await;
    wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;
    let (mut c, _) = Client::connect(&n2).await;
    let (id, generating, frames) = ask_until_generating(&mut c, 40).await;
    let other = if generating == n3.id { &n4.id } else { &n3.id };

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["admin", "--url", &n2.http, "drain", &generating])
        .env("ORRERY_ADMIN_TOKEN", "admin-secret")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_cluster(&n2, &[generating.as_str()], "draining").await;

    let (done, rest) = c.until("done").await;
    assert_eq!(
        done["node"],
        generating.as_str(),
        "the in-flight answer finished where it was"
    );
    assert_eq!(done["attempts"], 1);
    let mut all = frames;
    all.extend(rest);
    assert_eq!(apply_chunks(&all, &id), done["text"].as_str().unwrap());
    for _ in 0..3 {
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 3}))
            .await;
        let (done, _) = c.until("done").await;
        assert_eq!(
            &done["node"],
            other.as_str(),
            "a drained node takes no new work"
        );
    }

    // SIGTERM drains too: the in-flight answer finishes, then the node leaves and exits.
    let (id, generating, frames) = ask_until_generating(&mut c, 40).await;
    assert_eq!(&generating, other);
    let mut leaving = if n3.id == generating { n3 } else { n4 };
    leaving.terminate();
    let (done, rest) = c.until("done").await;
    assert_eq!(done["node"], generating.as_str());
    assert_eq!(done["attempts"], 1);
    let mut all = frames;
    all.extend(rest);
    assert_eq!(apply_chunks(&all, &id), done["text"].as_str().unwrap());
    let status = tokio::task::spawn_blocking(move || leaving.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "a drained node exits cleanly: {status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_asks_see_their_queue_position_in_priority_order() {
    let sb = Sandbox::start().await;
    // One slot, so every other ask waits.
    // An enterprise key may ask for any priority (a tier caps what its asks may request).
    let node = sb
        .node_with_env(
            "q1",
            &synthetic(true, 1, 20),
            &[("ORRERY_API_KEYS", "k-ent-0123456789:ops:enterprise")],
        )
        .await;
    let (mut c, _) =
        Client::connect_url(&format!("{}?api_key=k-ent-0123456789", node.ws_url())).await;
    let asks = [
        ("a", "normal"),
        ("b", "normal"),
        ("c", "low"),
        ("d", "high"),
    ];
    let mut client_of = std::collections::HashMap::new();
    for (i, (cid, priority)) in asks.into_iter().enumerate() {
        // The first ask is long and holds the one slot while the others arrive.
        let max_tokens = if i == 0 { 80 } else { 10 };
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": max_tokens, "client_id": cid, "priority": priority}))
            .await;
        let (accepted, _) = c.until("accepted").await;
        client_of.insert(accepted["request_id"].as_str().unwrap().to_string(), cid);
        if i == 0 {
            c.until("chunk").await;
        }
    }
    let mut done_order = Vec::new();
    let mut positions: std::collections::HashMap<&str, Vec<u64>> = Default::default();
    while done_order.len() < asks.len() {
        let f = c.next().await;
        let Some(cid) = f["request_id"]
            .as_str()
            .and_then(|id| client_of.get(id))
            .copied()
        else {
            continue;
        };
        if f["type"] == "status" && f["stage"] == "queued" {
            assert!(f["estimated_wait_ms"].as_u64().is_some(), "{f}");
            positions
                .entry(cid)
                .or_default()
                .push(f["queue_position"].as_u64().unwrap());
        }
        if f["type"] == "done" {
            done_order.push(cid);
        }
    }
    // The first ask runs at once; the high-priority one overtakes; the low one goes last.
    assert_eq!(done_order, ["a", "d", "b", "c"]);
    assert!(!positions.contains_key("a"), "the first ask never waited");
    for cid in ["b", "c", "d"] {
        let seen = &positions[cid];
        assert_eq!(
            seen.last(),
            Some(&1),
            "{cid} reached the head of the queue: {seen:?}"
        );
    }
}
