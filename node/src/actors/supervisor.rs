//! The NodeSupervisor: the root of a node's supervision tree. It starts the node's actors, puts
//! each in the node's [`NodeHandle`], and restarts a child that crashes, with backoff and a limit.
//! It never loads a model itself: the Models actor does that in the background.

use super::broadcaster::{Broadcaster, Followers};
use super::handle::NodeHandle;
use super::limits::{LimitKeeper, LimitKeeperArgs};
use super::membership::{Membership, MembershipArgs};
use super::models::{Models, ModelsArgs};
use super::resource_manager::{ResourceManager, ResourceManagerArgs};
use super::restarts::{self, MAX_RESTARTS, Restarts};
use crate::config::Config;
use crate::protocol::actor_names;
use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::RactorMessage;
use std::sync::Arc;
use std::time::Duration;

/// Starts a child the actors module does not know the type of (the Temporal worker host, which
/// depends on the activities, which depend on the actors), linked to the given supervisor.
pub type ChildSpawner = Arc<
    dyn Fn(ActorCell) -> BoxFuture<'static, Result<ActorCell, ActorProcessingErr>> + Send + Sync,
>;

#[derive(RactorMessage)]
pub enum SupervisorMsg {
    /// Restart the named child (sent to itself after a backoff).
    Restart(String),
}

pub struct NodeSupervisor;

pub struct SupervisorArgs {
    pub config: Arc<Config>,
    pub handle: NodeHandle,
    pub followers: Followers,
    /// Starts the Temporal workers; None runs the node's actors without them (tests).
    pub workers: Option<ChildSpawner>,
}

pub struct SupervisorState {
    args: SupervisorArgs,
    restarts: Restarts<String>,
}

async fn spawn_child(
    name: &str,
    sup: ActorCell,
    args: &SupervisorArgs,
) -> Result<ActorCell, ActorProcessingErr> {
    let (config, slots) = (&args.config, args.handle.slots());
    let n = Some(name.to_string());
    let cell = match name {
        actor_names::RESOURCE_MANAGER => {
            let rm_args = ResourceManagerArgs {
                node: config.node_id.clone(),
                memory_budget: config.memory_budget_bytes,
                holders: args.handle.holders().clone(),
                workers_up: args.handle.workers_up_flag(),
                routes: args.handle.routes().clone(),
            };
            let (rm, _) = Actor::spawn_linked(n, ResourceManager, rm_args, sup).await?;
            slots.resource_manager.set(Some(rm.clone()));
            rm.get_cell()
        }
        actor_names::BROADCASTER => {
            let b_args = (config.node_id.clone(), args.followers.clone());
            let (b, _) = Actor::spawn_linked(n, Broadcaster, b_args, sup).await?;
            slots.broadcaster.set(Some(b.clone()));
            b.get_cell()
        }
        actor_names::MODELS => {
            let m_args = ModelsArgs {
                config: config.clone(),
                holders: args.handle.holders().clone(),
            };
            let (m, _) = Actor::spawn_linked(n, Models, m_args, sup).await?;
            slots.models.set(Some(m.clone()));
            m.get_cell()
        }
        actor_names::LIMIT_KEEPER => {
            let l_args = LimitKeeperArgs {
                node: config.node_id.clone(),
                leases: args.handle.leases().clone(),
            };
            let (l, _) = Actor::spawn_linked(n, LimitKeeper, l_args, sup).await?;
            slots.limit_keeper.set(Some(l.clone()));
            l.get_cell()
        }
        actor_names::MEMBERSHIP => {
            let c = &config.cluster;
            let (Some(listen), Some(cookie)) = (c.listen, c.cookie.clone()) else {
                return Err("the cluster mesh is not configured".into());
            };
            let m_args = MembershipArgs {
                node: config.node_id.clone(),
                listen,
                seeds: c.seeds.clone(),
                cookie,
                tls: c.tls.clone(),
            };
            let (m, _) = Actor::spawn_linked(n, Membership, m_args, sup).await?;
            slots.membership.set(Some(m.clone()));
            m.get_cell()
        }
        actor_names::WORKER_HOST => match &args.workers {
            Some(spawn) => spawn(sup).await?,
            None => return Err("this node runs without temporal workers".into()),
        },
        other => return Err(format!("unknown child {other}").into()),
    };
    Ok(cell)
}

impl NodeSupervisor {
    fn child_exited(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        cell: &ActorCell,
        why: String,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(name) = cell.get_name() else {
            return Ok(());
        };
        let slots = state.args.handle.slots();
        match name.as_str() {
            actor_names::RESOURCE_MANAGER => slots.resource_manager.set(None),
            actor_names::BROADCASTER => slots.broadcaster.set(None),
            actor_names::MODELS => slots.models.set(None),
            actor_names::MEMBERSHIP => slots.membership.set(None),
            actor_names::LIMIT_KEEPER => slots.limit_keeper.set(None),
            _ => {}
        }
        match state.restarts.next_delay(&name) {
            Some(delay) => {
                tracing::warn!(actor = %name, reason = %why, delay_ms = delay.as_millis() as u64, "child exited; restarting");
                myself.send_after(delay, move || SupervisorMsg::Restart(name));
                Ok(())
            }
            None => Err(format!("{name} failed {MAX_RESTARTS} times in a minute: {why}").into()),
        }
    }
}

impl Actor for NodeSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut children = vec![
            actor_names::RESOURCE_MANAGER,
            actor_names::BROADCASTER,
            actor_names::MODELS,
            actor_names::LIMIT_KEEPER,
        ];
        if args.config.cluster.listen.is_some() {
            children.push(actor_names::MEMBERSHIP);
        }
        if args.workers.is_some() {
            children.push(actor_names::WORKER_HOST);
        }
        for name in children {
            spawn_child(name, myself.get_cell(), &args).await?;
        }
        Ok(SupervisorState {
            args,
            restarts: Restarts::default(),
        })
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("node stopping".into()), Some(Duration::from_secs(30)))
            .await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Restart(name) = msg;
        if let Err(e) = spawn_child(&name, myself.get_cell(), &state.args).await {
            // Count the failed start as another crash, so the limit still applies.
            let why = e.to_string();
            match state.restarts.next_delay(&name) {
                Some(delay) => {
                    tracing::warn!(actor = %name, error = %why, "restart failed; retrying");
                    myself.send_after(delay, move || SupervisorMsg::Restart(name));
                }
                None => return Err(format!("{name} cannot be restarted: {why}").into()),
            }
        } else {
            tracing::info!(actor = %name, "child restarted");
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match restarts::exited(evt) {
            Some((cell, why)) => self.child_exited(&myself, &cell, why, state),
            None => Ok(()),
        }
    }
}
