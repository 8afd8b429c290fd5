//! The live path of an ask: status and chunks published to the Broadcaster of the node where the
//! user is connected — this node or another across the mesh. Best effort by design: Temporal holds
//! the durable answer, and a client that missed an event reconciles from the workflow result.

use crate::actors::broadcaster::BroadcasterMsg;
pub use crate::actors::broadcaster::{LiveEvent, LiveStage};
use crate::ids::{NodeId, RequestId};

/// Sends one live event towards the user of `request_id`.
pub fn publish_now(origin: &NodeId, request_id: &RequestId, event: LiveEvent) {
    if let Some(b) = crate::cluster::broadcaster_of(origin) {
        let _ = b.cast(BroadcasterMsg::Publish {
            request_id: request_id.clone(),
            event,
        });
    }
}

/// The answer as its user has been shown it, if the origin node follows the request. Answered
/// after every event this node published to it before, so it also flushes them.
pub async fn shown(origin: &NodeId, request_id: &RequestId) -> Option<String> {
    let b = crate::cluster::broadcaster_of(origin)?;
    ractor::call_t!(b, BroadcasterMsg::Shown, 2000, request_id.clone())
        .ok()
        .flatten()
}
