//! A Temporal worker thread that panics: the node reports itself not ready and draining (so
//! placement skips it) while its workers are down, and the supervisor starts fresh workers, after
//! which it is ready again. The node's tree runs in process, against a real Temporal dev server.

use crate::harness::{Sandbox, home};
use orrery::actors::NodeHandle;
use orrery::actors::broadcaster::Followers;
use orrery::actors::handle::Slot;
use orrery::config::{Config, Overrides};
use orrery::protocol::CLUSTER_TASK_QUEUE;
use orrery::worker::WorkerHostMsg;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_worker_makes_the_node_unready_until_fresh_workers_run() {
    let sb = Sandbox::start().await;
    let env: HashMap<String, String> = [
        ("ORRERY_TEMPORAL_ADDRESS", sb.temporal.address.clone()),
        ("ORRERY_HOME", home().display().to_string()),
        (
            "ORRERY_DATA_DIR",
            sb.dir.path().join("wp1").display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let overrides = Overrides {
        node_id: Some("wp1".into()),
        ..Default::default()
    };
    let file =
        "[[models]]\nid = \"s\"\nsource = \"synthetic:100\"\n[autoscaling]\nenabled = false\n";
    let config = Arc::new(Config::resolve(Some(file), &env, &overrides).unwrap());
    let client = orrery::temporal::connect(&config, "orrery/wp1", Duration::from_secs(30))
        .await
        .unwrap();
    let handle = NodeHandle::default();
    let worker_host = Arc::new(Slot::<WorkerHostMsg>::default());
    let (supervisor, _done) = orrery::app::start_actors(
        &config,
        &client,
        &handle,
        &Followers::default(),
        &worker_host,
        (
            orrery::store::Store::new(config.storage.database_url.clone()),
            orrery::notify::UserEvents::default(),
        ),
    )
    .await
    .unwrap();
    assert!(handle.workers_up(), "the workers run once the tree started");
    let first = worker_host.get().expect("a worker host").get_id();

    // What a worker thread's panic becomes (run_guarded catches it and the thread reports it).
    worker_host
        .get()
        .unwrap()
        .cast(WorkerHostMsg::Exited {
            queue: CLUSTER_TASK_QUEUE.into(),
            error: Some("the worker thread panicked: injected by the test".into()),
        })
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.workers_up() {
        assert!(
            Instant::now() < deadline,
            "the node never noticed the panic"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Not ready, and placement sees it draining, while the workers are down.
    let snap = handle.snapshot().await.expect("a snapshot");
    // (The restart waits out a backoff of 100 ms and starts two workers: it comes later.)
    assert!(
        snap.draining,
        "a node without workers takes no placements: {snap:?}"
    );

    // Fresh workers, from a new worker host: ready again, and placeable.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let restarted = worker_host.get().is_some_and(|h| h.get_id() != first);
        if restarted && handle.workers_up() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the worker host was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let snap = handle.snapshot().await.expect("a snapshot");
    assert!(!snap.draining, "{snap:?}");
    supervisor.stop(None);
}
