//! Per-user limits hold across the cluster: a user's counters live on one node (rendezvous
//! hashing of the user id over the live nodes), so asks sent to different nodes count together,
//! and when that node leaves, the asks still in flight are counted on the next one.

use crate::cluster::{Mesh, synthetic_with};
use crate::harness::{Node, wait_cluster, wait_for};
use orrery::protocol::NodeId;
use orrery::users::UserId;
use orrery::users::owner::owner;
use serde_json::{Value, json};
use std::time::Duration;

/// Anonymous callers have the premium tier: two asks in flight at once.
fn config() -> String {
    format!(
        "{}[autoscaling]\nenabled = false\n[auth.tiers.premium]\nmax_concurrent = 2\nrequests_per_minute = 600\n",
        synthetic_with(true, 8, 4, 1, 8)
    )
}

/// Starts a long ask on `node` (REST): 202 and its id, or the refusal's status and body.
async fn start(http: &reqwest::Client, node: &Node) -> Result<String, (u16, Value)> {
    let r = http
        .post(format!("{}/api/asks", node.http))
        .json(&json!({"prompt": "count", "max_tokens": 400}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match status {
        202 => Ok(body["id"].as_str().unwrap().to_string()),
        _ => Err((status, body)),
    }
}

fn assert_refused(got: Result<String, (u16, Value)>, on: &Node) {
    let (status, body) = got.expect_err(&format!("a third ask on {} is refused", on.id));
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 2"),
        "{body}"
    );
}

/// The leases a node's keeper counts, from its metrics.
async fn kept(http: &reqwest::Client, node: &Node) -> Option<u64> {
    let text = http
        .get(format!("{}/metrics", node.http))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("orrery_user_leases_kept "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_concurrency_limit_holds_across_nodes_and_moves_with_membership() {
    let mesh = Mesh::new(3).await;
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(mesh.node(i, &config()).await);
    }
    let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    for n in &nodes {
        wait_cluster(n, &ids, "up").await;
    }
    // The node that keeps the anonymous user's counters, and the two others.
    let all: Vec<NodeId> = ids.iter().map(|i| NodeId::new(*i)).collect();
    let keeper_id = owner(&UserId::anonymous(), &all).unwrap().clone();
    let keeper = nodes
        .iter()
        .position(|n| n.id == keeper_id.as_str())
        .unwrap();
    let others: Vec<usize> = (0..3).filter(|i| *i != keeper).collect();
    let (a, b) = (&nodes[others[0]], &nodes[others[1]]);
    let http = reqwest::Client::new();

    // Two asks on two nodes that do not keep the counters: the limit is reached cluster-wide.
    let first = start(&http, a).await.expect("the first ask starts");
    start(&http, b).await.expect("the second ask starts");
    assert_refused(start(&http, &nodes[keeper]).await, &nodes[keeper]);
    assert_refused(start(&http, a).await, a);

    // When one ends, the user may ask again.
    let r = http
        .delete(format!("{}/api/asks/{first}", a.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    wait_for(
        "a new ask once the first has ended",
        Duration::from_secs(30),
        || {
            let http = http.clone();
            async move { start(&http, a).await.ok() }
        },
    )
    .await;
    assert_refused(start(&http, b).await, b);

    // The keeper leaves (kill -9): the asks in flight, admitted on the other two nodes, move
    // to the next keeper, and the limit still holds there.
    let mut nodes = nodes;
    let mut dead = nodes.remove(keeper);
    dead.child.kill().unwrap();
    let left: Vec<NodeId> = all.iter().filter(|n| **n != keeper_id).cloned().collect();
    let next_id = owner(&UserId::anonymous(), &left).unwrap().clone();
    let next = nodes.iter().find(|n| n.id == next_id.as_str()).unwrap();
    let other = nodes.iter().find(|n| n.id != next_id.as_str()).unwrap();
    wait_for(
        "the next keeper to count the two asks in flight",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            async move { (kept(&http, next).await == Some(2)).then_some(()) }
        },
    )
    .await;
    assert_refused(start(&http, other).await, other);
    assert_refused(start(&http, next).await, next);
}
