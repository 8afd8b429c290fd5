//! Reaching other nodes' actors across the mesh: the one place that finds actors by name, through
//! the process groups each node's ResourceManager and Broadcaster join (see
//! `protocol::names::groups`). Local actors are reached through `NodeHandle` instead.

pub use super::broadcaster::{broadcaster_of, publish, shown};
pub use super::limits::{keeper_of, live_keepers};
use super::membership::{MembershipMsg, PeerState};
use super::resource_manager::ResourceManagerMsg;
use crate::protocol::{ModelLoad, NodeId, NodeRow, NodeSnapshot, groups};
use ractor::{ActorRef, pg};
use std::time::Duration;

/// The one actor of a per-node group, local or across the mesh.
fn member<M: ractor::Message>(group: &str) -> Option<ActorRef<M>> {
    pg::get_members(&group.to_string())
        .into_iter()
        .next()
        .map(ActorRef::from)
}

pub fn resource_manager_of(node: &NodeId) -> Option<ActorRef<ResourceManagerMsg>> {
    member(&groups::resources(node))
}

/// Every node's ResourceManager that the mesh knows now.
pub fn resource_managers() -> Vec<ActorRef<ResourceManagerMsg>> {
    pg::get_members(&groups::RESOURCES.to_string())
        .into_iter()
        .map(ActorRef::from)
        .collect()
}

/// Tells every node of the mesh the scaling loop's routes (fire and forget: a node that misses
/// them reads them from the loop once what it has grows old).
pub fn push_routes(routes: &super::resource_manager::Fallbacks) {
    for rm in resource_managers() {
        let _ = rm.cast(ResourceManagerMsg::SetRoutes(routes.clone()));
    }
}

/// Snapshots of every node that answers within `timeout`.
pub async fn snapshots(timeout: Duration) -> Vec<NodeSnapshot> {
    let calls = resource_managers().into_iter().map(|rm| async move {
        ractor::call_t!(rm, ResourceManagerMsg::Snapshot, timeout.as_millis() as u64).ok()
    });
    let mut snaps: Vec<NodeSnapshot> = futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .collect();
    snaps.sort_by(|a, b| a.node.cmp(&b.node));
    snaps
}

/// The cluster as this node sees it: every node that answers, plus peers that joined and left
/// (known to this node's Membership, when it is in a mesh).
pub async fn view(membership: Option<ActorRef<MembershipMsg>>) -> Vec<NodeRow> {
    let peers = match membership {
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
            // The cache's marks are placement's business, not the view's.
            models: s
                .models
                .into_iter()
                .map(|m| ModelLoad {
                    cached_marks: Vec::new(),
                    ..m
                })
                .collect(),
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
