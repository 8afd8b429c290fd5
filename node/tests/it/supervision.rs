//! The supervision tree in-process: a crashed child is restarted, and the node keeps answering.

use crate::harness::{Sandbox, wait_for};
use orrery::actors::NodeHandle;
use orrery::actors::broadcaster::BroadcasterMsg;
use orrery::actors::handle::Slot;
use orrery::actors::model_holder::ModelHolderMsg;
use orrery::actors::supervisor::{NodeSupervisor, SupervisorArgs};
use orrery::config::{Config, Overrides};
use orrery::protocol::{ModelId, actor_names};
use orrery::worker::{WorkerHostArgs, WorkerHostMsg};
use ractor::{Actor, ActorCell};
use std::sync::Arc;
use std::time::Duration;

/// Finds the running instance of one child.
type Current<'a> = Box<dyn Fn() -> Option<ActorCell> + 'a>;

#[tokio::test(flavor = "multi_thread")]
async fn crashed_children_are_restarted_by_the_supervisor() {
    let sb = Sandbox::start().await;
    let file = "[[models]]\nid = \"synthetic\"\nsource = \"synthetic:200\"\n";
    let overrides = Overrides {
        temporal_address: Some(sb.temporal.address.clone()),
        embedded: Some(false),
        node_id: Some("sup-test".into()),
        ..Default::default()
    };
    let config = Arc::new(Config::resolve(Some(file), &Default::default(), &overrides).unwrap());
    let client = orrery::temporal::connect(&config, "test", Duration::from_secs(30))
        .await
        .unwrap();
    let runtime =
        Arc::new(temporalio_sdk::Runtime::from_current_tokio(Default::default()).unwrap());
    let node = NodeHandle::default();
    let worker_host = Arc::new(Slot::<WorkerHostMsg>::default());
    let workers = orrery::worker::spawner(
        WorkerHostArgs {
            config: config.clone(),
            client,
            runtime,
            handle: node.clone(),
            store: orrery::store::Store::new(config.storage.database_url.clone()),
            events: Default::default(),
        },
        worker_host.clone(),
    );
    let (sup, handle) = Actor::spawn(
        Some(actor_names::SUPERVISOR.to_string()),
        NodeSupervisor,
        SupervisorArgs {
            config: config.clone(),
            handle: node.clone(),
            followers: Default::default(),
            workers: Some(workers),
        },
    )
    .await
    .unwrap();
    let model = ModelId::new("synthetic");
    wait_for(
        "the synthetic model to load",
        Duration::from_secs(30),
        || {
            let h = node.holder(&model);
            async move { h.map(|_| ()) }
        },
    )
    .await;

    // Each child is killed; the handle then names a new, running actor.
    // (The worker host is not killed here: a killed actor skips the clean-up that stops its
    // Temporal workers, and a new one cannot poll the same queues beside them.)
    let children: [(&str, Current); 4] = [
        (
            "broadcaster",
            Box::new(|| node.broadcaster().map(|a| a.get_cell())),
        ),
        (
            "resource manager",
            Box::new(|| node.resource_manager().map(|a| a.get_cell())),
        ),
        ("models", Box::new(|| node.models().map(|a| a.get_cell()))),
        (
            "model holder",
            Box::new(|| node.holder(&model).map(|a| a.get_cell())),
        ),
    ];
    for (name, current) in &children {
        // (Killing the Models actor took its holders down; they come back with it.)
        let before = wait_for(
            &format!("the {name} to run"),
            Duration::from_secs(30),
            || {
                let now = current();
                async move { now }
            },
        )
        .await;
        before.kill();
        let old = before.get_id();
        let after = wait_for(
            &format!("the {name} to be restarted"),
            Duration::from_secs(30),
            || {
                let now = current().filter(|c| c.get_id() != old);
                async move { now }
            },
        )
        .await;
        assert_ne!(after.get_id(), before.get_id());
    }
    // The restarted actors answer, and the model is loaded again (the Models actor restarted).
    let b = node.broadcaster().unwrap();
    assert_eq!(ractor::call_t!(b, BroadcasterMsg::Count, 1000).unwrap(), 0);
    let m = wait_for("the model to load again", Duration::from_secs(30), || {
        let h = node.holder(&model);
        async move { h }
    })
    .await;
    let stats = ractor::call_t!(m, ModelHolderMsg::Stats, 1000).unwrap();
    assert_eq!(stats.model.as_str(), "synthetic");
    let status = node.models_status().await.unwrap();
    assert_eq!(status.loaded, vec![model.clone()]);

    sup.stop(None);
    handle.await.unwrap();
}
