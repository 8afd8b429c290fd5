//! Wires a node together and owns the order of start-up and shutdown; no other logic lives here.

use crate::actors::NodeHandle;
use crate::actors::broadcaster::Followers;
use crate::actors::handle::Slot;
use crate::actors::membership::MembershipMsg;
use crate::actors::mesh;
use crate::actors::resource_manager::ResourceManagerMsg;
use crate::actors::supervisor::{NodeSupervisor, SupervisorArgs};
use crate::asks::AskService;
use crate::asks::records::{UserSearch, ensure_user_attribute};
use crate::config::Config;
use crate::http::auth::Auth;
use crate::http::{AppState, router};
use crate::protocol::actor_names;
use crate::temporal::{self, EmbeddedTemporal};
use crate::worker::{WorkerHostArgs, WorkerHostMsg};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use ractor::Actor;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
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
    let runtime = Arc::new(temporalio_sdk::Runtime::from_current_tokio(
        Default::default(),
    )?);

    let followers = Followers::default();
    let handle = NodeHandle::default();
    let worker_host = Arc::new(Slot::<WorkerHostMsg>::default());
    let workers = crate::worker::spawner(
        WorkerHostArgs {
            config: config.clone(),
            client: client.clone(),
            runtime,
            handle: handle.clone(),
        },
        worker_host.clone(),
    );
    let (supervisor, mut supervisor_handle) = Actor::spawn(
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

    if config.autoscaling.enabled {
        ensure_scaling_loop(&client, &config).await;
    }
    // Present from the start, so dashboards see zero rather than nothing.
    for m in &config.models {
        metrics::counter!("orrery_fallback_requests_total", "model" => m.id.to_string())
            .absolute(0);
    }

    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = CancellationToken::new();
    let stop_accepting = CancellationToken::new();
    let tasks = TaskTracker::new();
    let (cluster_tx, cluster_rx) = tokio::sync::watch::channel(Vec::new());
    let cluster_watch = {
        let stop = shutdown.clone();
        let node = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(1000)) => {
                        let view = mesh::view(node.membership()).await;
                        cluster_tx.send_if_modified(|cur| {
                            let changed = *cur != view;
                            *cur = view;
                            changed
                        });
                    }
                }
            }
        })
    };
    let state = AppState {
        node: handle.clone(),
        asks: AskService {
            config: config.clone(),
            client,
            temporal_ui: temporal_ui.clone(),
            followers,
            user_search,
        },
        metrics,
        ready: ready.clone(),
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
        cluster: cluster_rx,
        auth,
    };
    let listener = tokio::net::TcpListener::bind(config.http).await?;
    let http_addr = listener.local_addr()?;
    let server = {
        let stop = stop_accepting.clone();
        tokio::spawn(async move {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        })
    };

    // Ready once every model configured to load at start has loaded (or failed for good).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        if let Some(s) = handle.models_status().await
            && s.loading.is_empty()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("models did not load within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready.store(true, Ordering::SeqCst);
    let host = if http_addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", http_addr.port())
    } else {
        http_addr.to_string()
    };
    println!("orrery node {node} ready");
    println!("  web UI:       http://{host}/");
    println!("  temporal:     {}", config.temporal_address());
    println!("  api keys:     {auth_line}");
    if let Some(ui) = &temporal_ui {
        println!("  temporal UI:  {ui}");
    }
    if embedded {
        println!(
            "  ask it:       orrery ask --url http://{host} \"What is the capital of France?\""
        );
    }

    let mut supervisor_gone = false;
    tokio::select! {
        _ = stop_signal() => tracing::info!("stop requested"),
        _ = &mut supervisor_handle => {
            supervisor_gone = true;
            tracing::error!("the node supervisor stopped");
        }
    }

    tracing::info!("shutdown: not ready, draining: no new placements here, no new connections");
    ready.store(false, Ordering::SeqCst);
    if let Some(rm) = handle.resource_manager() {
        let _ = rm.cast(ResourceManagerMsg::SetDraining(true));
    }
    stop_accepting.cancel();
    tasks.close();
    tracing::info!(
        followed_asks = tasks.len(),
        grace_secs = config.limits.shutdown_grace.as_secs(),
        "shutdown: letting in-flight answers finish"
    );
    let drained = async {
        tasks.wait().await;
        wait_for_local_generations(&handle).await;
    };
    if tokio::time::timeout(config.limits.shutdown_grace, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            left = tasks.len(),
            "shutdown: grace period over; unfinished answers move to other nodes"
        );
    }
    shutdown.cancel();
    let _ = cluster_watch.await;
    tracing::info!("shutdown: stopping temporal workers");
    if let Some(host) = worker_host.get() {
        let _ = ractor::call_t!(host, WorkerHostMsg::Drain, 60_000);
    }
    if let Some(m) = handle.membership() {
        tracing::info!("shutdown: leaving the cluster");
        let _ = ractor::call_t!(m, MembershipMsg::Leave, 5000);
    }
    tracing::info!("shutdown: stopping actors");
    if !supervisor_gone {
        supervisor.stop(Some("shutdown".into()));
        let _ = supervisor_handle.await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("shutdown: done");
    Ok(())
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
