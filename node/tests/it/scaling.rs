//! The resource-management workflow against a real Temporal and real nodes: scale-up under a
//! burst, idle unload, admin overrides, and a loop that outlives the node running it.

use crate::cluster::{Mesh, synthetic_with};
use crate::harness::{Client, Node, wait_for};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "admin-secret";

async fn admin_get(node: &Node, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", node.http))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn admin_send(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}{path}", node.http))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Waits until the decision log has an entry matching `pred`, and returns it.
async fn wait_decision(node: &Node, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, Duration::from_secs(60), || async {
        let log = admin_get(node, "/admin/decisions").await;
        log["decisions"]
            .as_array()?
            .iter()
            .find(|d| pred(d))
            .cloned()
    })
    .await
}

fn is_action(d: &Value, action: &str, node: &str) -> bool {
    d["directive"]["action"] == action && d["directive"]["node"] == node
}

/// Fast ticks and a twitchy policy, so a test sees decisions in seconds.
const FAST: &str = "[autoscaling]\ntick_secs = 1\n[autoscaling.policy]\nscale_up_queue_per_replica = 1.0\nscale_up_ticks = 1\nidle_keepalive_ms = 3000\ncooldown_ms = 1000\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_loads_a_second_replica_which_serves_and_is_unloaded_when_idle() {
    let mesh = Mesh::new(2).await;
    let n2 = mesh
        .node(0, &format!("{}{FAST}", synthetic_with(true, 1, 20, 1, 2)))
        .await;
    let _n3 = mesh
        .node(1, &format!("{}{FAST}", synthetic_with(false, 1, 20, 1, 2)))
        .await;
    crate::harness::wait_cluster(&n2, &["n2", "n3"], "up").await;

    // A burst on the one replica: one runs, the rest wait.
    let (mut c, _) = Client::connect(&n2).await;
    for _ in 0..5 {
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 30}))
            .await;
        c.until("accepted").await;
    }
    let load = wait_decision(&n2, "a scale-up onto n3", |d| is_action(d, "load", "n3")).await;
    let reason = load["reason"].as_str().unwrap();
    assert!(
        reason.contains("replica"),
        "the reason names the numbers: {reason}"
    );

    // The new replica serves the asks that come after it.
    let mut served_by = Vec::new();
    for _ in 0..3 {
        c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 5}))
            .await;
    }
    while served_by.len() < 8 {
        let (done, _) = c.until("done").await;
        served_by.push(done["node"].as_str().unwrap().to_string());
    }
    assert!(
        served_by.iter().any(|n| n == "n3"),
        "the extra replica served: {served_by:?}"
    );

    // Idle past the keep-alive, the extra replica goes (never below min_replicas = 1).
    wait_decision(&n2, "an idle unload", |d| {
        d["directive"]["action"] == "unload"
    })
    .await;
    let view = admin_get(&n2, "/admin/cluster").await;
    assert!(view["scaling"]["ticks"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_overrides_show_in_the_next_decisions() {
    let mesh = Mesh::new(2).await;
    let n2 = mesh
        .node(0, &format!("{}{FAST}", synthetic_with(true, 4, 200, 1, 4)))
        .await;
    let n3 = mesh
        .node(1, &format!("{}{FAST}", synthetic_with(false, 4, 200, 1, 4)))
        .await;
    crate::harness::wait_cluster(&n2, &["n2", "n3"], "up").await;

    // Bad input and no token are refused with a JSON error.
    let no_token = reqwest::Client::new()
        .get(format!("{}/admin/decisions", n2.http))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), 401);
    let body: Value = no_token.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let bad = admin_send(
        &n2,
        reqwest::Method::PUT,
        "/admin/policy",
        json!({"scale_up_ticks": "many"}),
    )
    .await;
    assert_eq!(bad.status(), 400);

    // Two fixed replicas: the loop loads the model on n3 and says why.
    let r = admin_send(
        &n2,
        reqwest::Method::POST,
        "/admin/models/syn/replicas",
        json!({"replicas": 2}),
    )
    .await;
    assert!(r.status().is_success());
    wait_decision(&n2, "the override noted", |d| {
        d["reason"].as_str().unwrap_or("").contains("fixed at 2")
    })
    .await;
    wait_decision(&n2, "a load onto n3 for the override", |d| {
        is_action(d, "load", "n3")
    })
    .await;

    let p = admin_send(
        &n2,
        reqwest::Method::POST,
        "/admin/autoscaling/pause",
        json!({}),
    )
    .await;
    assert!(p.status().is_success());
    wait_decision(&n2, "the pause noted", |d| {
        d["reason"] == "admin: autoscaling paused"
    })
    .await;
    let status = admin_get(&n2, "/admin/cluster").await;
    assert_eq!(status["scaling"]["overrides"]["paused"], true);
    assert_eq!(status["scaling"]["overrides"]["replicas"]["syn"], 2);
    drop(n3);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_loop_goes_on_when_the_node_running_it_dies() {
    let mesh = Mesh::new(3).await;
    let config = format!("{}{FAST}", synthetic_with(true, 4, 200, 1, 3));
    let mut nodes = vec![
        mesh.node(0, &config).await,
        mesh.node(1, &config).await,
        mesh.node(2, &config).await,
    ];
    crate::harness::wait_cluster(&nodes[0], &["n2", "n3", "n4"], "up").await;
    let ticks = |v: &Value| v["scaling"]["ticks"].as_u64().unwrap_or(0);
    wait_for("the loop to tick", Duration::from_secs(30), || async {
        (ticks(&admin_get(&nodes[0], "/admin/cluster").await) > 2).then_some(())
    })
    .await;

    // The node whose worker ran the last workflow task is the one to kill.
    let history =
        crate::websocket::history_events_debug(&mesh.sb, orrery::workflows::RESOURCE_WORKFLOW_ID)
            .await;
    let runner = history
        .iter()
        .rev()
        .find(|e| e.contains("WorkflowTaskStarted"))
        .and_then(|e| {
            ["n2", "n3", "n4"]
                .into_iter()
                .find(|n| e.contains(&format!("orrery/{n}")))
        })
        .expect("a worker identity in the history");
    let i = nodes.iter().position(|n| n.id == runner).unwrap();
    let mut dead = nodes.remove(i);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();

    let before = ticks(&admin_get(&nodes[0], "/admin/cluster").await);
    wait_for(
        "the loop to tick on another node",
        Duration::from_secs(60),
        || async {
            (ticks(&admin_get(&nodes[0], "/admin/cluster").await) > before + 3).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_capacity_exhausted_asks_go_to_the_fallback_backend_and_come_back() {
    // The "cloud": a second Orrery instance, reached through its OpenAI-compatible API.
    let cloud_sb = crate::harness::Sandbox::start().await;
    let cloud = cloud_sb
        .node("cloud", &synthetic_with(true, 8, 400, 1, 1))
        .await;

    let mesh = Mesh::new(1).await;
    let config = format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:20\"\ndefault = true\nmax_sequences = 1\nmin_replicas = 1\nmax_replicas = 1\nfallback = \"cloud\"\n\n\
         [[models]]\nid = \"cloud\"\nsource = \"openai:{http}\"\nremote_model = \"syn\"\nmax_sequences = 8\n\n\
         [[models]]\nid = \"cloud-ollama\"\nsource = \"ollama:{http}\"\nremote_model = \"syn\"\n\n\
         {FAST}fallback_wait_ms = 500\nfallback_clear_ticks = 2\n",
        http = cloud.http
    );
    let n2 = mesh
        .node(
            0,
            &format!("{config}[limits]\nheartbeat_timeout_secs = 2\n"),
        )
        .await;

    // One local slot, a burst: the wait grows past the bound and nothing can be added.
    let (mut c, _) = Client::connect(&n2).await;
    for _ in 0..4 {
        c.send(json!({"type": "ask", "model": "syn", "prompt": "count", "max_tokens": 40}))
            .await;
        c.until("accepted").await;
    }
    wait_decision(&n2, "a route to the fallback", |d| {
        d["directive"]["action"] == "set_route" && d["directive"]["route"]["kind"] == "fallback"
    })
    .await;
    c.send(json!({"type": "ask", "model": "syn", "prompt": "count", "max_tokens": 5}))
        .await;
    let mut answered_by = Vec::new();
    while answered_by.len() < 5 {
        let (done, _) = c.until("done").await;
        answered_by.push(done["model"].as_str().unwrap().to_string());
    }
    assert!(
        answered_by.iter().any(|m| m == "cloud"),
        "the backend answered: {answered_by:?}"
    );

    // Load gone, the route comes back, and asks are answered locally again.
    wait_decision(&n2, "the route back to local", |d| {
        d["directive"]["action"] == "set_route" && d["directive"]["route"]["kind"] == "local"
    })
    .await;
    c.send(json!({"type": "ask", "model": "syn", "prompt": "count", "max_tokens": 3}))
        .await;
    let (done, _) = c.until("done").await;
    assert_eq!(done["model"], "syn");

    // The same backend through Ollama's native API, as an ordinary model.
    c.send(json!({"type": "ask", "model": "cloud-ollama", "prompt": "count", "max_tokens": 3}))
        .await;
    let (done, _) = c.until("done").await;
    assert_eq!(done["model"], "cloud-ollama");
    assert_eq!(
        done["text"]
            .as_str()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["w1", "w2", "w3"]
    );
}
