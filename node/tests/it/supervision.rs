//! The supervision tree in-process: a crashed child is restarted, and the node keeps answering.

use crate::harness::{Sandbox, wait_for};
use orrery::actors::broadcaster::BroadcasterMsg;
use orrery::actors::model_holder::ModelHolderMsg;
use orrery::actors::supervisor::{NodeSupervisor, SupervisorArgs, SupervisorMsg};
use orrery::actors::worker_host::WorkerHostArgs;
use orrery::config::{Config, Overrides};
use orrery::ids::{ModelId, actor_names};
use ractor::Actor;
use std::sync::Arc;
use std::time::Duration;

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
    let (sup, handle) = Actor::spawn(
        Some(actor_names::SUPERVISOR.to_string()),
        NodeSupervisor,
        SupervisorArgs {
            config: config.clone(),
            workers: WorkerHostArgs {
                config: config.clone(),
                client,
                runtime,
            },
            followers: Default::default(),
        },
    )
    .await
    .unwrap();
    let model_name = actor_names::model_holder(&ModelId::new("synthetic"));
    wait_for(
        "the synthetic model to load",
        Duration::from_secs(30),
        || {
            let n = model_name.clone();
            async move { ractor::registry::where_is(n).map(|_| ()) }
        },
    )
    .await;

    for name in [
        actor_names::BROADCASTER.to_string(),
        actor_names::RESOURCE_MANAGER.to_string(),
        model_name.clone(),
    ] {
        let before = ractor::registry::where_is(name.clone()).expect("child running");
        before.kill();
        let after = wait_for(
            &format!("{name} to be restarted"),
            Duration::from_secs(10),
            || {
                let n = name.clone();
                let old = before.get_id();
                async move { ractor::registry::where_is(n).filter(|c| c.get_id() != old) }
            },
        )
        .await;
        assert_ne!(after.get_id(), before.get_id());
    }
    // The restarted actors answer.
    let b = orrery::actors::lookup::<BroadcasterMsg>(actor_names::BROADCASTER).unwrap();
    assert_eq!(ractor::call_t!(b, BroadcasterMsg::Count, 1000).unwrap(), 0);
    let m = orrery::actors::lookup::<ModelHolderMsg>(&model_name).unwrap();
    let stats = ractor::call_t!(m, ModelHolderMsg::Stats, 1000).unwrap();
    assert_eq!(stats.model.as_str(), "synthetic");
    let status = ractor::call_t!(sup, SupervisorMsg::Status, 1000).unwrap();
    assert_eq!(status.models_loaded, vec![ModelId::new("synthetic")]);

    sup.stop(None);
    handle.await.unwrap();
}
