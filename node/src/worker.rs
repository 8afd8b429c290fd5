//! The WorkerHost runs this node's Temporal workers: `orrery` (workflows and cluster activities)
//! and `orrery.node.<id>` (activities bound to this node). `Worker::run` is a `!Send` future, so
//! each worker lives on its own OS thread that drives it with the runtime's handle; a worker that
//! exits unexpectedly makes this actor fail, and the supervisor restarts it with fresh workers.

use crate::activities::{
    ClusterActivities, FlowActivities, NodeActivities, NodeScalingActivities, ScalingActivities,
};
use crate::actors::NodeHandle;
use crate::actors::handle::Slot;
use crate::actors::supervisor::ChildSpawner;
use crate::config::Config;
use crate::protocol::{CLUSTER_TASK_QUEUE, actor_names, node_task_queue};
use crate::workflows::{
    AskWorkflow, CodeGenWorkflow, MultiAgentWorkflow, ReportWorkflow, ResourceManagementWorkflow,
    routes_query,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use std::sync::Arc;
use std::thread::JoinHandle;
use temporalio_client::Client;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

#[derive(Clone)]
pub struct WorkerHostArgs {
    pub config: Arc<Config>,
    pub client: Client,
    pub runtime: Arc<Runtime>,
    /// Handed to the activities.
    pub handle: NodeHandle,
    /// The workflow results' database and the users' sessions here (for the flow activities).
    pub store: crate::store::Store,
    pub events: crate::notify::UserEvents,
}

/// How the supervisor starts (and restarts) the worker host; `current` always holds the one
/// running, for the drain at shutdown.
pub fn spawner(args: WorkerHostArgs, current: Arc<Slot<WorkerHostMsg>>) -> ChildSpawner {
    Arc::new(move |sup| {
        let (args, current) = (args.clone(), current.clone());
        Box::pin(async move {
            let name = Some(actor_names::WORKER_HOST.to_string());
            let (host, _) = Actor::spawn_linked(name, WorkerHost, args, sup).await?;
            current.set(Some(host.clone()));
            Ok(host.get_cell())
        })
    })
}

#[derive(RactorMessage)]
pub enum WorkerHostMsg {
    Exited {
        queue: String,
        error: Option<String>,
    },
    /// Stop polling, let running tasks finish (bounded by the workers' grace period), reply.
    Drain(RpcReplyPort<()>),
}

type ShutdownFn = Box<dyn Fn() + Send + Sync>;

struct Running {
    queue: String,
    shutdown: ShutdownFn,
    thread: Option<JoinHandle<()>>,
}

pub struct WorkerHostState {
    workers: Vec<Running>,
    draining: bool,
    handle: NodeHandle,
}

pub struct WorkerHost;

fn options_for(queue: &str, args: &WorkerHostArgs) -> Result<WorkerOptions, String> {
    let (config, handle) = (&args.config, &args.handle);
    let grace = config.limits.shutdown_grace;
    let flows = || FlowActivities::new(config.clone(), args.store.clone(), args.events.clone());
    if queue == CLUSTER_TASK_QUEUE {
        Ok(WorkerOptions::new(queue)
            .register_workflow::<AskWorkflow>()
            .map_err(|e| e.to_string())?
            .register_workflow::<ResourceManagementWorkflow>()
            .map_err(|e| e.to_string())?
            .register_workflow::<ReportWorkflow>()
            .map_err(|e| e.to_string())?
            .register_workflow::<MultiAgentWorkflow>()
            .map_err(|e| e.to_string())?
            .register_workflow::<CodeGenWorkflow>()
            .map_err(|e| e.to_string())?
            .register_activities(flows())
            .register_activities(ClusterActivities::new(
                config.node_id.clone(),
                handle.clone(),
                routes_query(),
            ))
            .register_activities(ScalingActivities::new(config.clone()))
            // A dead node's cached workflows move to another worker after this.
            .sticky_queue_schedule_to_start_timeout(std::time::Duration::from_secs(3))
            .graceful_shutdown_period(grace)
            .build())
    } else {
        Ok(WorkerOptions::new(queue)
            .tuner(fixed_slots(node_activity_slots(&config.models)))
            .register_activities(NodeActivities::new(config.node_id.clone(), handle.clone()))
            .register_activities(NodeScalingActivities::new(handle.clone()))
            .register_activities(flows())
            .graceful_shutdown_period(grace)
            .build())
    }
}

/// The SDK's default number of slots of each kind.
const DEFAULT_SLOTS: usize = 100;

/// Activity slots of this node's queue: a `generate` activity holds one for its whole answer, so
/// the SDK's default of 100 would cap the answers streaming from this node at 100 whatever
/// `max_sequences` says; one per sequence a model may run (64, the largest measured, where it is
/// measured at load), plus the default for everything else.
fn node_activity_slots(models: &[crate::config::ModelConfig]) -> usize {
    let sequences: usize = models.iter().map(|m| m.max_sequences.unwrap_or(64)).sum();
    DEFAULT_SLOTS + sequences
}

fn fixed_slots(activities: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(DEFAULT_SLOTS))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(DEFAULT_SLOTS))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(DEFAULT_SLOTS))
        .build()
}

/// Drives a worker's future on this thread; a panic in it becomes an error (the host then fails
/// and the supervisor restarts it with fresh workers) instead of a thread that dies unheard.
fn run_guarded(
    handle: &tokio::runtime::Handle,
    work: impl std::future::Future<Output = Result<(), String>>,
) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.block_on(work))).unwrap_or_else(
        |panic| {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            Err(format!("the worker thread panicked: {msg}"))
        },
    )
}

async fn start_worker(
    queue: String,
    args: &WorkerHostArgs,
    host: ActorRef<WorkerHostMsg>,
) -> Result<Running, ActorProcessingErr> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<ShutdownFn, String>>();
    let mut tx = Some(tx);
    let (rt, client, worker_args) = (args.runtime.clone(), args.client.clone(), args.clone());
    let q = queue.clone();
    let thread = std::thread::Builder::new()
        .name(format!("worker:{queue}"))
        .spawn(move || {
            let result = run_guarded(&handle, async {
                let opts = options_for(&q, &worker_args)?;
                let mut worker = Worker::new(&rt, client, opts).map_err(|e| e.to_string())?;
                if let Some(tx) = tx.take() {
                    let _ = tx.send(Ok(Box::new(worker.shutdown_handle())));
                }
                worker.run().await.map_err(|e| e.to_string())
            });
            let error = match result {
                Ok(()) => None,
                Err(e) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Err(e.clone()));
                    }
                    Some(e)
                }
            };
            let _ = host.cast(WorkerHostMsg::Exited { queue: q, error });
        })?;
    match rx.await {
        Ok(Ok(shutdown)) => {
            tracing::info!(queue = %queue, "temporal worker started");
            Ok(Running {
                queue,
                shutdown,
                thread: Some(thread),
            })
        }
        Ok(Err(e)) => Err(format!("temporal worker for {queue} did not start: {e}").into()),
        Err(_) => Err(format!("temporal worker thread for {queue} ended at start").into()),
    }
}

async fn stop_all(workers: &mut Vec<Running>) {
    for w in workers.iter() {
        (w.shutdown)();
    }
    for mut w in workers.drain(..) {
        if let Some(t) = w.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        tracing::info!(queue = %w.queue, "temporal worker stopped");
    }
}

impl Actor for WorkerHost {
    type Msg = WorkerHostMsg;
    type State = WorkerHostState;
    type Arguments = WorkerHostArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: WorkerHostArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut workers = Vec::new();
        for queue in [
            CLUSTER_TASK_QUEUE.to_string(),
            node_task_queue(&args.config.node_id),
        ] {
            match start_worker(queue, &args, myself.clone()).await {
                Ok(w) => workers.push(w),
                Err(e) => {
                    stop_all(&mut workers).await;
                    return Err(e);
                }
            }
        }
        args.handle.set_workers_up(true);
        Ok(WorkerHostState {
            workers,
            draining: false,
            handle: args.handle.clone(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        stop_all(&mut state.workers).await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerHostMsg::Exited { queue, error } => {
                state.handle.set_workers_up(false);
                if state.draining {
                    return Ok(());
                }
                // post_stop does not run for a failed actor: stop the other workers here, so the
                // restart never runs two workers on one queue.
                stop_all(&mut state.workers).await;
                Err(format!(
                    "temporal worker for {queue} exited: {}",
                    error.unwrap_or_else(|| "without error".into())
                )
                .into())
            }
            WorkerHostMsg::Drain(reply) => {
                state.draining = true;
                state.handle.set_workers_up(false);
                stop_all(&mut state.workers).await;
                let _ = reply.send(());
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sequence_of_every_model_has_an_activity_slot() {
        let model = |source: &str, max_sequences| crate::config::ModelConfig {
            id: crate::protocol::ModelId::new("m"),
            source: crate::config::parse_source(source).unwrap(),
            load: true,
            max_sequences,
            precision: Default::default(),
            context: None,
            prefix_cache: true,
            min_replicas: 1,
            max_replicas: 8,
            fallback: None,
        };
        // (models, wanted slots)
        let cases = [
            (vec![], 100),
            (vec![model("synthetic:5", Some(1000))], 1100),
            (
                vec![model("synthetic:5", Some(4)), model("path:/m.gguf", None)],
                168,
            ),
        ];
        for (models, want) in cases {
            assert_eq!(node_activity_slots(&models), want, "{models:?}");
        }
    }

    #[test]
    fn a_panicking_worker_is_an_error_not_a_silent_thread() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let handle = rt.handle().clone();
        let result =
            std::thread::spawn(move || run_guarded(&handle, async { panic!("poll loop broke") }))
                .join()
                .expect("the thread itself does not die");
        assert_eq!(
            result,
            Err("the worker thread panicked: poll loop broke".to_string())
        );
    }
}
