//! The live path of an ask: status and chunks published to the Broadcaster of the node where the
//! user is connected. Best effort by design: Temporal holds the durable answer, and a client that
//! missed an event reconciles from the workflow result.

use crate::actors::broadcaster::BroadcasterMsg;
pub use crate::actors::broadcaster::{LiveEvent, LiveStage};
use crate::ids::{NodeId, RequestId, actor_names};

fn broadcaster_of(origin: &NodeId) -> Option<ractor::ActorRef<BroadcasterMsg>> {
    // Only this node's Broadcaster is reachable until nodes form a mesh.
    let _ = origin;
    crate::actors::lookup::<BroadcasterMsg>(actor_names::BROADCASTER)
}

/// Sends one live event towards the user of `request_id`.
pub async fn publish(origin: &NodeId, request_id: &RequestId, event: LiveEvent) {
    if let Some(b) = broadcaster_of(origin) {
        let _ = b.cast(BroadcasterMsg::Publish {
            request_id: request_id.clone(),
            event,
        });
    }
}

/// The answer as its user has been shown it, if the origin node follows the request.
pub async fn shown(origin: &NodeId, request_id: &RequestId) -> Option<String> {
    let b = broadcaster_of(origin)?;
    ractor::call_t!(b, BroadcasterMsg::Shown, 1000, request_id.clone())
        .ok()
        .flatten()
}
