//! The LimitKeeper: per-user limits that hold across the cluster. Each user's counters live on
//! one node, chosen by rendezvous hashing of the user id over the nodes whose keepers the mesh
//! knows now (`users::owner`); every node admits its asks there. For the asks admitted on this
//! node it records which keeper holds each lease, and moves leases when membership changes the
//! keeper (adopted by the new one, released at the old one); a keeper drops the leases of nodes
//! that left. A keeper that cannot be reached admits on this node's own keeper instead (the lease
//! moves to the right keeper at the next rebalance): limits fail open for a moment, asks do not
//! fail. A user's rate bucket starts full again on a new keeper.

use crate::protocol::{NodeId, groups};
use crate::users::owner::owner;
use crate::users::{Limiter, Permit, Refusal, TierLimit, UserId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, pg};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REBALANCE_EVERY: Duration = Duration::from_secs(1);
const ACQUIRE_TIMEOUT_MS: u64 = 2000;

/// One ask's claim on its user's limits. The lease id starts with the admitting node's id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub user: UserId,
    pub limit: TierLimit,
    pub lease: String,
}

impl LeaseRequest {
    fn holder(&self) -> &str {
        holder_of(&self.lease)
    }
}

fn holder_of(lease: &str) -> &str {
    lease.split('/').next().unwrap_or("")
}

/// Messages that may come from any node of the mesh.
#[derive(RactorClusterMessage)]
pub enum LimitsMsg {
    #[rpc]
    Acquire(LeaseRequest, RpcReplyPort<Result<(), Refusal>>),
    /// Count a lease admitted by this user's previous keeper.
    Adopt(LeaseRequest),
    Release(LeaseRequest),
    Rebalance,
}

/// The leases of asks admitted on this node, and the keeper each is counted on.
#[derive(Clone, Debug, Default)]
pub struct Leases(Arc<Mutex<HashMap<String, (LeaseRequest, NodeId)>>>);

impl Leases {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (LeaseRequest, NodeId)>> {
        // A poisoned lock only means another thread panicked mid-insert of a plain map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, req: LeaseRequest, keeper: NodeId) {
        self.map().insert(req.lease.clone(), (req, keeper));
    }

    fn remove(&self, lease: &str) -> Option<(LeaseRequest, NodeId)> {
        self.map().remove(lease)
    }

    /// Leases whose keeper is no longer the user's owner among `live`: (lease, from, to), each
    /// recorded as moved.
    fn moves(&self, live: &[NodeId]) -> Vec<(LeaseRequest, NodeId, NodeId)> {
        let mut out = Vec::new();
        for (req, keeper) in self.map().values_mut() {
            if let Some(to) = owner(&req.user, live)
                && to != keeper
            {
                out.push((req.clone(), keeper.clone(), to.clone()));
                *keeper = to.clone();
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The LimitKeeper of `node`, local or across the mesh.
pub fn keeper_of(node: &NodeId) -> Option<ActorRef<LimitsMsg>> {
    pg::get_members(&groups::limits(node))
        .into_iter()
        .next()
        .map(ActorRef::from)
}

/// The nodes whose keepers the mesh knows now, sorted.
pub fn live_keepers() -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = pg::which_groups()
        .into_iter()
        .filter_map(|g| {
            let node = groups::node_of_limits(&g)?;
            (!pg::get_members(&g).is_empty()).then_some(node)
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// An admitted ask's hold on its user's limits, released when dropped.
#[derive(Debug)]
pub struct Lease(LeaseKind);

#[derive(Debug)]
enum LeaseKind {
    /// Counted on this node alone (no keeper was running); released when the permit drops.
    Local {
        _permit: Permit,
    },
    Cluster {
        lease: String,
        leases: Leases,
    },
}

impl Lease {
    pub fn local(permit: Permit) -> Self {
        Lease(LeaseKind::Local { _permit: permit })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let LeaseKind::Cluster { lease, leases } = &self.0
            && let Some((req, keeper)) = leases.remove(lease)
            && let Some(k) = keeper_of(&keeper)
        {
            let _ = k.cast(LimitsMsg::Release(req));
        }
    }
}

/// Admits one ask of `user` on the user's keeper (this node's own if that one does not answer).
/// None when no keeper runs at all (the caller then counts on this node alone).
pub async fn acquire(
    leases: &Leases,
    me: &NodeId,
    user: &UserId,
    limit: TierLimit,
) -> Option<Result<Lease, Refusal>> {
    let req = LeaseRequest {
        user: user.clone(),
        limit,
        lease: format!("{me}/{}", uuid::Uuid::new_v4().simple()),
    };
    let live = live_keepers();
    let mut candidates: Vec<NodeId> = owner(user, &live).into_iter().cloned().collect();
    if candidates.first() != Some(me) {
        candidates.push(me.clone());
    }
    for node in candidates {
        let Some(keeper) = keeper_of(&node) else {
            continue;
        };
        match ractor::call_t!(keeper, LimitsMsg::Acquire, ACQUIRE_TIMEOUT_MS, req.clone()) {
            Ok(Ok(())) => {
                let lease = req.lease.clone();
                leases.insert(req, node);
                return Some(Ok(Lease(LeaseKind::Cluster {
                    lease,
                    leases: leases.clone(),
                })));
            }
            Ok(Err(refusal)) => return Some(Err(refusal)),
            Err(e) => {
                tracing::warn!(node.id = %node, error = %e, "the user's limit keeper did not answer")
            }
        }
    }
    None
}

pub struct LimitKeeper;

pub struct LimitKeeperArgs {
    pub node: NodeId,
    /// The leases of asks admitted on this node (shared with the HTTP layer through NodeHandle).
    pub leases: Leases,
}

pub struct LimitKeeperState {
    node: NodeId,
    /// Counters of the users this node keeps.
    kept: Limiter,
    leases: Leases,
}

impl Actor for LimitKeeper {
    type Msg = LimitsMsg;
    type State = LimitKeeperState;
    type Arguments = LimitKeeperArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: LimitKeeperArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(REBALANCE_EVERY, || LimitsMsg::Rebalance);
        pg::join(groups::limits(&args.node), vec![myself.get_cell()]);
        Ok(LimitKeeperState {
            node: args.node,
            kept: Limiter::default(),
            leases: args.leases,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LimitsMsg::Acquire(req, reply) => {
                let got = state
                    .kept
                    .acquire(&req.user, req.limit, &req.lease, Instant::now());
                let _ = reply.send(got);
            }
            LimitsMsg::Adopt(req) => {
                state
                    .kept
                    .adopt(&req.user, req.limit, &req.lease, Instant::now())
            }
            LimitsMsg::Release(req) => state.kept.release(&req.user, &req.lease),
            LimitsMsg::Rebalance => rebalance(state),
        }
        Ok(())
    }
}

/// Moves this node's leases to their users' keepers now, and drops the kept leases of nodes
/// that left.
fn rebalance(state: &mut LimitKeeperState) {
    let live = live_keepers();
    metrics::gauge!("orrery_user_leases_kept").set(state.kept.leases() as f64);
    if live.is_empty() {
        return;
    }
    let dropped = state.kept.retain_leases(|lease| {
        let holder = holder_of(lease);
        live.iter().any(|n| n.as_str() == holder)
    });
    if dropped > 0 {
        tracing::info!(node.id = %state.node, leases = dropped, "dropped the leases of nodes that left");
    }
    for (req, from, to) in state.leases.moves(&live) {
        tracing::debug!(user = %req.user, from = %from, to = %to, holder = req.holder(),
            "a user's limits moved to another keeper");
        if let Some(k) = keeper_of(&to) {
            let _ = k.cast(LimitsMsg::Adopt(req.clone()));
        }
        if let Some(k) = keeper_of(&from) {
            let _ = k.cast(LimitsMsg::Release(req));
        }
    }
}
