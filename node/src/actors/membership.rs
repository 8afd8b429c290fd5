//! Membership: this node's ractor_cluster `NodeServer`, the dialling of seeds (and re-dialling
//! after a peer goes away), and the record of peers — joined, joining, left — with every refusal
//! logged. A wrong cookie is silent for the dialler (`client_connect` succeeds), so a session that
//! closes before it authenticates is reported as a refusal on both sides.

use super::mesh_tls::{self, MeshTls};
use crate::config::{MeshTlsConfig, Secret};
use crate::protocol::NodeId;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use ractor_cluster::node::NodeServerSessionInformation;
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, RactorMessage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TICK: Duration = Duration::from_millis(500);
/// A dial that has not authenticated by then is given up and tried again.
const DIAL_PATIENCE: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct MembershipArgs {
    pub node: NodeId,
    pub listen: SocketAddr,
    pub seeds: Vec<String>,
    pub cookie: Secret,
    /// Mutual TLS on the mesh; None: in clear.
    pub tls: Option<MeshTlsConfig>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    Joining,
    Up,
    Down,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub node: String,
    pub addr: String,
    pub state: PeerState,
    /// When the peer entered this state (unix ms).
    pub since_ms: u64,
}

#[derive(Debug)]
pub enum SessionEvent {
    Opened,
    Authenticated,
    Ready,
    Disconnected,
}

#[derive(RactorMessage)]
pub enum MembershipMsg {
    Event(SessionEvent, NodeServerSessionInformation),
    Tick,
    Peers(RpcReplyPort<Vec<PeerInfo>>),
    /// Closes every session and stops listening (graceful leave).
    Leave(RpcReplyPort<()>),
}

struct Forward(ActorRef<MembershipMsg>);

impl NodeEventSubscription for Forward {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(MembershipMsg::Event(SessionEvent::Opened, ses));
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(MembershipMsg::Event(SessionEvent::Disconnected, ses));
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        let _ = self
            .0
            .cast(MembershipMsg::Event(SessionEvent::Authenticated, ses));
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(MembershipMsg::Event(SessionEvent::Ready, ses));
    }
}

struct Session {
    addr: String,
    is_server: bool,
    authenticated: bool,
}

pub struct MembershipState {
    args: MembershipArgs,
    server: ActorRef<NodeServerMessage>,
    sessions: HashMap<u64, Session>,
    peers: BTreeMap<String, PeerInfo>,
    dialing: HashMap<String, Instant>,
    leaving: bool,
    tls: Option<MeshTls>,
}

pub struct Membership;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `name@host` (ractor_cluster's node name) → our node id.
fn peer_identity(ses: &NodeServerSessionInformation) -> Option<(String, String)> {
    ses.peer_name.as_ref().map(|p| {
        let name = p.name.split('@').next().unwrap_or(&p.name).to_string();
        (name, p.connection_string.clone())
    })
}

impl Membership {
    fn set_peer(state: &mut MembershipState, node: String, addr: String, to: PeerState) {
        let entry = state.peers.entry(node.clone()).or_insert(PeerInfo {
            node,
            addr: addr.clone(),
            state: to,
            since_ms: now_ms(),
        });
        if entry.state != to {
            entry.state = to;
            entry.since_ms = now_ms();
        }
        entry.addr = addr;
    }
}

impl Membership {
    /// Dials every seed not connected yet (each at most once per `DIAL_PATIENCE`).
    async fn dial_seeds(state: &mut MembershipState) {
        if state.leaving {
            return;
        }
        let own = state.args.listen.to_string();
        let connected: Vec<String> = state
            .peers
            .values()
            .filter(|p| p.state != PeerState::Down)
            .map(|p| p.addr.clone())
            .collect();
        for seed in state.args.seeds.clone() {
            if seed == own || connected.contains(&seed) {
                continue;
            }
            if state
                .dialing
                .get(&seed)
                .is_some_and(|t| t.elapsed() < DIAL_PATIENCE)
            {
                continue;
            }
            state.dialing.insert(seed.clone(), Instant::now());
            let dialed = match &state.tls {
                Some(t) => {
                    ractor_cluster::client_connect_enc(
                        &state.server,
                        seed.as_str(),
                        t.connector.clone(),
                        t.server_name.clone(),
                    )
                    .await
                }
                None => ractor_cluster::client_connect(&state.server, seed.as_str()).await,
            };
            if let Err(ractor_cluster::ClientConnectErr::Encryption(e)) = &dialed {
                // Another CA, an expired certificate, a peer in clear: say so at once.
                tracing::warn!(seed = %seed, error = %e, "mesh TLS handshake failed");
            } else if let Err(e) = dialed {
                tracing::debug!(seed = %seed, error = %e, "seed not reachable yet");
            }
        }
    }

    /// A mesh session opened, authenticated, became ready or went away.
    fn session_event(
        state: &mut MembershipState,
        ev: SessionEvent,
        ses: NodeServerSessionInformation,
    ) {
        let key = ses.node_id;
        match ev {
            SessionEvent::Opened => {
                let session = Session {
                    addr: ses.peer_addr.clone(),
                    is_server: ses.is_server,
                    authenticated: false,
                };
                state.sessions.insert(key, session);
            }
            SessionEvent::Authenticated => {
                if let Some(s) = state.sessions.get_mut(&key) {
                    s.authenticated = true;
                }
                if let Some((node, addr)) = peer_identity(&ses) {
                    state.dialing.remove(&addr);
                    Self::set_peer(state, node, addr, PeerState::Joining);
                }
            }
            SessionEvent::Ready => {
                if let Some((node, addr)) = peer_identity(&ses) {
                    tracing::info!(peer = %node, addr = %addr, "node joined the cluster");
                    Self::set_peer(state, node, addr, PeerState::Up);
                }
            }
            SessionEvent::Disconnected => {
                let session = state.sessions.remove(&key);
                match (session, peer_identity(&ses)) {
                    (Some(s), _) if !s.authenticated => {
                        if s.is_server {
                            tracing::warn!(from = %s.addr, "refused a node: it did not authenticate (different cluster cookie?)");
                        } else {
                            tracing::error!(peer = %s.addr, "the node refused us: authentication failed (is ORRERY_CLUSTER_COOKIE the same on every node?)");
                        }
                    }
                    (_, Some((node, addr))) => {
                        if !state.leaving {
                            tracing::warn!(peer = %node, addr = %addr, "node left the cluster");
                        }
                        Self::set_peer(state, node, addr, PeerState::Down);
                    }
                    _ => {}
                }
            }
        }
    }
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = MembershipState;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: MembershipArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let tls = args.tls.as_ref().map(mesh_tls::load).transpose()?;
        // With TLS every node dials its seeds itself: ractor_cluster's transitive connections
        // would dial in clear.
        let (encryption, connection) = match &tls {
            Some(t) => (
                Some(ractor_cluster::IncomingEncryptionMode::Tls(
                    t.acceptor.clone(),
                )),
                ractor_cluster::node::NodeConnectionMode::Isolated,
            ),
            None => (None, ractor_cluster::node::NodeConnectionMode::Transitive),
        };
        let server = NodeServer::new(
            args.listen.port(),
            args.cookie.expose().to_string(),
            args.node.to_string(),
            args.listen.ip().to_string(),
            encryption,
            Some(connection),
        )
        .with_listen_addr(args.listen.ip());
        let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell()).await?;
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "orrery.membership".into(),
            subscription: Box::new(Forward(myself.clone())),
        })?;
        myself.send_interval(TICK, || MembershipMsg::Tick);
        tracing::info!(node.id = %args.node, listen = %args.listen, seeds = ?args.seeds,
            tls = tls.is_some(), "cluster mesh listening");
        Ok(MembershipState {
            args,
            server,
            sessions: HashMap::new(),
            peers: BTreeMap::new(),
            dialing: HashMap::new(),
            leaving: false,
            tls,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            MembershipMsg::Tick => Self::dial_seeds(state).await,
            MembershipMsg::Event(ev, ses) => Self::session_event(state, ev, ses),
            MembershipMsg::Peers(reply) => {
                let _ = reply.send(state.peers.values().cloned().collect());
            }
            MembershipMsg::Leave(reply) => {
                state.leaving = true;
                tracing::info!("leaving the cluster");
                state.server.stop(Some("leaving".into()));
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(..) | SupervisionEvent::ActorFailed(..)
                if !state.leaving =>
            {
                Err("the cluster node server stopped".into())
            }
            _ => Ok(()),
        }
    }
}
