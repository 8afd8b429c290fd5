//! Wires a node together and owns the order of start-up and shutdown; no other logic lives here.

use crate::actors::NodeHandle;
use crate::actors::broadcaster::Followers;
use crate::actors::handle::Slot;
use crate::actors::membership::MembershipMsg;
use crate::actors::mesh;
use crate::actors::resource_manager::ResourceManagerMsg;
use crate::actors::supervisor::{NodeSupervisor, SupervisorArgs, SupervisorMsg};
use crate::asks::AskService;
use crate::asks::records::{UserSearch, ensure_user_attribute};
use crate::config::Config;
use crate::http::auth::Auth;
use crate::http::{AppState, router};
use crate::protocol::{NodeRow, actor_names};
use crate::temporal::{self, EmbeddedTemporal};
use crate::worker::{WorkerHostArgs, WorkerHostMsg};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ractor::{Actor, ActorRef};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Installs the Prometheus recorder (once per process).
fn install_metrics() -> Option<PrometheusHandle> {
    const SECONDS: &[f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ];
    match PrometheusBuilder::new()
        .set_buckets(SECONDS)
        .and_then(|b| b.install_recorder())
    {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Runs a node until it is asked to stop. With an embedded Temporal (from `orrery up`), starts
/// the dev server first and stops it last.
pub async fn run(config: Config) -> Result<(), BoxError> {
    let config = Arc::new(config);
    // Keys first: a node that must not start should say so before anything else happens.
    let auth = Arc::new(Auth::load(&config)?);
    let metrics = install_metrics();
    crate::http::observe::describe_metrics();
    let embedded: Option<EmbeddedTemporal> =
        temporal::start_embedded_if_configured(&config).await?;
    let ui = embedded
        .as_ref()
        .map(|e| e.ui_url.clone())
        .unwrap_or_else(|| config.temporal_ui_url());
    let result = run_node(config.clone(), metrics, ui, embedded.is_some(), auth).await;
    if let Some(server) = embedded {
        tracing::info!("stopping the embedded temporal server");
        server.stop().await;
    }
    result
}

/// What a running node holds until it stops.
struct Running {
    config: Arc<Config>,
    handle: NodeHandle,
    worker_host: Arc<Slot<WorkerHostMsg>>,
    supervisor: ActorRef<SupervisorMsg>,
    supervisor_done: JoinHandle<()>,
    ready: Arc<AtomicBool>,
    /// Cancelled at the end of the grace period: sessions close, the cluster watch stops.
    shutdown: CancellationToken,
    /// Cancelled when shutdown begins: no new connections.
    stop_accepting: CancellationToken,
    tasks: TaskTracker,
    cluster_watch: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
}

async fn run_node(
    config: Arc<Config>,
    metrics: Option<PrometheusHandle>,
    temporal_ui: Option<String>,
    embedded: bool,
    auth: Arc<Auth>,
) -> Result<(), BoxError> {
    let node = config.node_id.clone();
    let client =
        temporal::connect(&config, &format!("orrery/{node}"), Duration::from_secs(60)).await?;
    tracing::info!(node.id = %node, temporal = %config.temporal_address(), "connected to temporal");
    let user_search = UserSearch::default();
    match ensure_user_attribute(&client, &config.temporal.namespace).await {
        Ok(()) => user_search.set(true),
        Err(e) => tracing::warn!(error = %e,
            "no OrreryUser search attribute: ask history is filtered from workflow memos instead"),
    }
    let auth_line = auth.describe();
    tracing::info!(auth = %auth_line, "api keys");

    let followers = Followers::default();
    let handle = NodeHandle::default();
    let worker_host = Arc::new(Slot::<WorkerHostMsg>::default());
    let store = crate::store::Store::new(config.storage.database_url.clone());
    let user_events = crate::notify::UserEvents::default();
    let flow_deps = (store.clone(), user_events.clone());
    let (supervisor, supervisor_done) = start_actors(
        &config,
        &client,
        &handle,
        &followers,
        &worker_host,
        flow_deps,
    )
    .await?;
    if config.autoscaling.enabled {
        ensure_scaling_loop(&client, &config).await;
    }
    // Present from the start, so dashboards see zero rather than nothing.
    for m in &config.models {
        for name in [
            "orrery_fallback_requests_total",
            "orrery_queue_moves_total",
            "orrery_placement_cache_affinity_total",
        ] {
            metrics::counter!(name, "model" => m.id.to_string()).absolute(0);
        }
        crate::engine::GenMetrics::new(m.id.as_str()).register();
    }
    metrics::counter!("orrery_route_queries_total").absolute(0);
    for kind in ["report", "multi-agent", "codegen"] {
        metrics::counter!("orrery_workflows_started_total", "kind" => kind).absolute(0);
    }

    let shutdown = CancellationToken::new();
    let (cluster, cluster_watch) = watch_cluster(handle.clone(), shutdown.clone());
    // Ends with the shutdown token.
    crate::actors::queues::spawn(node.clone(), handle.clone(), shutdown.clone());
    let asks = AskService {
        config: config.clone(),
        client,
        temporal_ui: temporal_ui.clone(),
        followers,
        user_search,
    };
    let state = AppState {
        node: handle.clone(),
        flows: crate::flows::FlowService {
            asks: asks.clone(),
            store,
        },
        user_events,
        asks,
        metrics,
        ready: Arc::new(AtomicBool::new(false)),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
        cluster,
        auth,
        ws_sessions: Default::default(),
    };
    let stop_accepting = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(config.http).await?;
    let http_addr = listener.local_addr()?;
    let running = Running {
        config: config.clone(),
        handle,
        worker_host,
        supervisor,
        supervisor_done,
        ready: state.ready.clone(),
        shutdown,
        stop_accepting: stop_accepting.clone(),
        tasks: state.tasks.clone(),
        cluster_watch,
        server: tokio::spawn(crate::http::server::serve(
            listener,
            router(state),
            config.http_server.clone(),
            stop_accepting,
        )),
    };

    wait_until_loaded(&running.handle).await?;
    running.ready.store(true, Ordering::SeqCst);
    print_banner(
        &config,
        http_addr,
        &auth_line,
        temporal_ui.as_deref(),
        embedded,
    );
    running.until_stopped().await;
    Ok(())
}

/// Starts the node's supervision tree, the Temporal workers under it (public for the tests that
/// drive the tree in process).
pub async fn start_actors(
    config: &Arc<Config>,
    client: &temporalio_client::Client,
    handle: &NodeHandle,
    followers: &Followers,
    worker_host: &Arc<Slot<WorkerHostMsg>>,
    (store, events): (crate::store::Store, crate::notify::UserEvents),
) -> Result<(ActorRef<SupervisorMsg>, JoinHandle<()>), BoxError> {
    let runtime = Arc::new(temporalio_sdk::Runtime::from_current_tokio(
        Default::default(),
    )?);
    let workers = crate::worker::spawner(
        WorkerHostArgs {
            config: config.clone(),
            client: client.clone(),
            runtime,
            handle: handle.clone(),
            store,
            events,
        },
        worker_host.clone(),
    );
    let (supervisor, done) = Actor::spawn(
        Some(actor_names::SUPERVISOR.to_string()),
        NodeSupervisor,
        SupervisorArgs {
            config: config.clone(),
            handle: handle.clone(),
            followers: followers.clone(),
            workers: Some(workers),
        },
    )
    .await?;
    Ok((supervisor, done))
}

/// The cluster view, refreshed every second while `stop` is not cancelled.
fn watch_cluster(
    handle: NodeHandle,
    stop: CancellationToken,
) -> (tokio::sync::watch::Receiver<Vec<NodeRow>>, JoinHandle<()>) {
    let (tx, rx) = tokio::sync::watch::channel(Vec::new());
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(1000)) => {
                    let view = mesh::view(handle.membership()).await;
                    tx.send_if_modified(|cur| {
                        let changed = *cur != view;
                        *cur = view;
                        changed
                    });
                }
            }
        }
    });
    (rx, task)
}

/// Waits until every model configured to load at start has loaded (or failed for good).
async fn wait_until_loaded(handle: &NodeHandle) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(s) = handle.models_status().await
            && s.loading.is_empty()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("models did not load within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_banner(
    config: &Config,
    http_addr: std::net::SocketAddr,
    auth_line: &str,
    temporal_ui: Option<&str>,
    embedded: bool,
) {
    let host = if http_addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", http_addr.port())
    } else {
        http_addr.to_string()
    };
    // Whoever reads stdout may stop (`orrery up | head`): a closed pipe must not stop the node.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "orrery node {} ready", config.node_id);
    let _ = writeln!(out, "  web UI:       http://{host}/");
    let _ = writeln!(out, "  temporal:     {}", config.temporal_address());
    let _ = writeln!(out, "  api keys:     {auth_line}");
    if let Some(ui) = temporal_ui {
        let _ = writeln!(out, "  temporal UI:  {ui}");
    }
    if embedded {
        let _ = writeln!(
            out,
            "  ask it:       orrery ask --url http://{host} \"What is the capital of France?\""
        );
    }
}

impl Running {
    /// Runs until a stop signal (or the supervisor's end), then shuts down in order.
    async fn until_stopped(mut self) {
        let mut supervisor_gone = false;
        tokio::select! {
            _ = stop_signal() => tracing::info!("stop requested"),
            _ = &mut self.supervisor_done => {
                supervisor_gone = true;
                tracing::error!("the node supervisor stopped");
            }
        }
        self.drain().await;
        tracing::info!("shutdown: stopping temporal workers");
        if let Some(host) = self.worker_host.get() {
            let _ = ractor::call_t!(host, WorkerHostMsg::Drain, 60_000);
        }
        if let Some(m) = self.handle.membership() {
            tracing::info!("shutdown: leaving the cluster");
            let _ = ractor::call_t!(m, MembershipMsg::Leave, 5000);
        }
        tracing::info!("shutdown: stopping actors");
        if !supervisor_gone {
            self.supervisor.stop(Some("shutdown".into()));
            let _ = self.supervisor_done.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
        tracing::info!("shutdown: done");
    }

    /// Not ready, no new placements or connections; in-flight answers get the grace period.
    async fn drain(&mut self) {
        tracing::info!("shutdown: not ready, draining: no new placements here, no new connections");
        self.ready.store(false, Ordering::SeqCst);
        if let Some(rm) = self.handle.resource_manager() {
            let _ = rm.cast(ResourceManagerMsg::SetDraining(true));
        }
        self.stop_accepting.cancel();
        self.tasks.close();
        let grace = self.config.limits.shutdown_grace;
        tracing::info!(
            followed_asks = self.tasks.len(),
            grace_secs = grace.as_secs(),
            "shutdown: letting in-flight answers finish"
        );
        let drained = async {
            self.tasks.wait().await;
            wait_for_local_generations(&self.handle).await;
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                left = self.tasks.len(),
                "shutdown: grace period over; unfinished answers move to other nodes"
            );
        }
        self.shutdown.cancel();
        let _ = (&mut self.cluster_watch).await;
    }
}

/// Resolves once no generation runs or waits on this node.
async fn wait_for_local_generations(handle: &NodeHandle) {
    loop {
        let busy = match handle.snapshot().await {
            Some(s) => s.models.iter().map(|m| m.active + m.queued).sum::<u32>(),
            None => 0,
        };
        if busy == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts the cluster's scaling workflow unless it already runs (every node tries; one runs).
async fn ensure_scaling_loop(client: &temporalio_client::Client, config: &crate::config::Config) {
    use crate::workflows::{RESOURCE_WORKFLOW_ID, ResourceManagementWorkflow, ScalingState};
    let input = ScalingState {
        tick_secs: config.autoscaling.tick.as_secs(),
        policy: config.autoscaling.policy.clone(),
        ..Default::default()
    };
    let opts = temporalio_client::WorkflowStartOptions::new(
        crate::protocol::CLUSTER_TASK_QUEUE,
        RESOURCE_WORKFLOW_ID,
    )
    .id_conflict_policy(temporalio_client::WorkflowIdConflictPolicy::UseExisting)
    .build();
    match client
        .start_workflow(ResourceManagementWorkflow::run, input, opts)
        .await
    {
        Ok(_) => tracing::info!(workflow.id = RESOURCE_WORKFLOW_ID, "scaling loop running"),
        Err(e) => tracing::warn!(error = %e, "could not start the scaling loop; another node may"),
    }
}
