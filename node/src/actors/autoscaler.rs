//! The Autoscaler carries out scaling directives on this node — load or unload a model — within
//! the node's memory budget. The supervisor owns the ModelHolders; this actor decides whether a
//! directive can be carried out and asks the supervisor to do it.

use super::supervisor::SupervisorMsg;
use crate::config::{Config, ModelSource};
use crate::ids::{ModelId, actor_names};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use std::sync::Arc;

#[derive(RactorMessage)]
pub enum AutoscalerMsg {
    Load(ModelId, RpcReplyPort<Result<(), String>>),
    Unload(ModelId, RpcReplyPort<Result<(), String>>),
}

pub struct Autoscaler;

pub struct AutoscalerState {
    config: Arc<Config>,
}

/// Estimated resident bytes of a model: its file plus room for KV caches and scratch space.
pub fn estimate_bytes(config: &Config, model: &ModelId) -> u64 {
    let file_bytes = config
        .model(model)
        .and_then(|m| match &m.source {
            ModelSource::Path(p) => std::fs::metadata(p).ok().map(|md| md.len()),
            ModelSource::Package { package, file } => {
                std::fs::metadata(crate::setup::package_dir(&config.home, package).join(file))
                    .ok()
                    .map(|md| md.len())
            }
            ModelSource::Synthetic { .. } | ModelSource::Remote { .. } => Some(0),
            // Not known before the download; the loaded replica reports its real size.
            ModelSource::HuggingFace { .. } => Some(0),
        })
        .unwrap_or(0);
    file_bytes + file_bytes / 2 + 64 * 1024 * 1024
}

impl Actor for Autoscaler {
    type Msg = AutoscalerMsg;
    type State = AutoscalerState;
    type Arguments = Arc<Config>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        config: Arc<Config>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(AutoscalerState { config })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(sup) = super::lookup::<SupervisorMsg>(actor_names::SUPERVISOR) else {
            return Err("the node supervisor is gone".into());
        };
        match msg {
            AutoscalerMsg::Load(model, reply) => {
                let Some(spec) = state.config.model(&model).cloned() else {
                    let _ = reply.send(Err(format!("model `{model}` is not configured")));
                    return Ok(());
                };
                let mut sys = sysinfo::System::new();
                sys.refresh_memory();
                let need = estimate_bytes(&state.config, &model);
                if need > sys.available_memory() {
                    let _ = reply.send(Err(format!(
                        "model `{model}` needs about {} MiB, {} MiB available",
                        need >> 20,
                        sys.available_memory() >> 20
                    )));
                    return Ok(());
                }
                // The load itself can take seconds: let the supervisor answer the caller.
                let _ = sup.cast(SupervisorMsg::StartModel(spec, Some(reply)));
            }
            AutoscalerMsg::Unload(model, reply) => {
                let _ = sup.cast(SupervisorMsg::StopModel(model, Some(reply)));
            }
        }
        Ok(())
    }
}
