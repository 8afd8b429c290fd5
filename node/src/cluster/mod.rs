//! The node mesh: ractor_cluster membership (cookie-authenticated, seeds from the config) and the
//! process groups through which nodes see each other's ResourceManager and Broadcaster.

pub mod membership;

use crate::actors::broadcaster::BroadcasterMsg;
use crate::actors::resource_manager::{NodeSnapshot, ResourceManagerMsg};
use crate::ids::NodeId;
use ractor::{ActorRef, pg};
use std::time::Duration;

/// Every node's ResourceManager.
pub const RESOURCES_GROUP: &str = "orrery.resources";

/// The ResourceManager of one node.
pub fn resources_group(node: &NodeId) -> String {
    format!("orrery.resources.{node}")
}

/// The Broadcaster of one node (where its users' live events go).
pub fn broadcast_group(node: &NodeId) -> String {
    format!("orrery.broadcast.{node}")
}

/// The one actor of a per-node group, local or across the mesh.
fn member<M: ractor::Message>(group: &str) -> Option<ActorRef<M>> {
    pg::get_members(&group.to_string())
        .into_iter()
        .next()
        .map(ActorRef::from)
}

pub fn broadcaster_of(node: &NodeId) -> Option<ActorRef<BroadcasterMsg>> {
    member(&broadcast_group(node))
}

pub fn resource_manager_of(node: &NodeId) -> Option<ActorRef<ResourceManagerMsg>> {
    member(&resources_group(node))
}

/// Snapshots of every node that answers within `timeout`.
pub async fn snapshots(timeout: Duration) -> Vec<NodeSnapshot> {
    let members = pg::get_members(&RESOURCES_GROUP.to_string());
    let calls =
        members.into_iter().map(|cell| {
            let rm: ActorRef<ResourceManagerMsg> = cell.into();
            async move {
                ractor::call_t!(rm, ResourceManagerMsg::Snapshot, timeout.as_millis() as u64).ok()
            }
        });
    let mut snaps: Vec<NodeSnapshot> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    snaps.sort_by(|a, b| a.node.cmp(&b.node));
    snaps
}

/// One row of the cluster view: a node that answers, or one that was seen and went away.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeRow {
    pub node: String,
    /// up | draining | joining | down
    pub state: String,
    pub addr: Option<String>,
    pub cpu_percent: Option<f32>,
    pub memory_available_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub models: Vec<crate::actors::resource_manager::ModelLoad>,
}

/// The cluster as this node sees it: every node that answers, plus peers that joined and left.
pub async fn view() -> Vec<NodeRow> {
    use membership::{MembershipMsg, PeerState};
    let peers = match crate::actors::lookup::<MembershipMsg>(crate::ids::actor_names::MEMBERSHIP) {
        Some(m) => ractor::call_t!(m, MembershipMsg::Peers, 1000).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut rows: Vec<NodeRow> = snapshots(Duration::from_millis(800))
        .await
        .into_iter()
        .map(|s| NodeRow {
            node: s.node.to_string(),
            state: if s.draining { "draining" } else { "up" }.into(),
            addr: peers
                .iter()
                .find(|p| p.node == s.node.as_str())
                .map(|p| p.addr.clone()),
            cpu_percent: Some(s.cpu_percent),
            memory_available_bytes: Some(s.memory_available_bytes),
            memory_total_bytes: Some(s.memory_total_bytes),
            models: s.models,
        })
        .collect();
    for p in peers {
        if rows.iter().any(|r| r.node == p.node) {
            continue;
        }
        rows.push(NodeRow {
            node: p.node,
            state: match p.state {
                PeerState::Down => "down",
                PeerState::Joining | PeerState::Up => "joining",
            }
            .into(),
            addr: Some(p.addr),
            cpu_percent: None,
            memory_available_bytes: None,
            memory_total_bytes: None,
            models: Vec::new(),
        });
    }
    rows.sort_by(|a, b| a.node.cmp(&b.node));
    rows
}
