//! The Broadcaster: the live sessions (WebSocket, API streams) of this node, by request. Generation
//! activities publish status and text chunks here; it forwards them to whoever asked, and keeps the
//! answer as the user has been shown it, which is the best point to resume from after a failover.

use crate::protocol::{LiveEvent, NodeId, RequestId, groups};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

pub type Subscriber = UnboundedSender<(RequestId, LiveEvent)>;

/// Messages that may come from any node of the mesh.
#[derive(RactorClusterMessage)]
pub enum BroadcasterMsg {
    Publish {
        request_id: RequestId,
        event: LiveEvent,
    },
    /// The answer as shown so far, if anyone here follows this request. Also a barrier: it is
    /// answered after every event published before it by the same sender.
    #[rpc]
    Shown(RequestId, RpcReplyPort<Option<String>>),
    #[rpc]
    Count(RpcReplyPort<u64>),
}

struct Follower {
    tx: Subscriber,
    shown: String,
    shown_chars: usize,
}

/// The sessions of this node that follow asks, by request. Sessions add and remove themselves
/// directly; the Broadcaster delivers to them. It outlives a restart of the Broadcaster.
#[derive(Clone, Default)]
pub struct Followers(Arc<Mutex<HashMap<RequestId, Follower>>>);

impl Followers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RequestId, Follower>> {
        // A panic while holding this lock leaves a map that is still consistent (every
        // operation is a single insert, remove or append), so a poisoned lock is safe to use.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn follow(&self, request_id: RequestId, tx: Subscriber) {
        self.lock().insert(
            request_id,
            Follower {
                tx,
                shown: String::new(),
                shown_chars: 0,
            },
        );
    }

    pub fn unfollow(&self, request_id: &RequestId) {
        self.lock().remove(request_id);
    }

    pub fn shown(&self, request_id: &RequestId) -> Option<String> {
        self.lock().get(request_id).map(|f| f.shown.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands an event to the session following `request_id` on this node, if any.
    pub fn deliver(&self, request_id: RequestId, event: LiveEvent) {
        let mut map = self.lock();
        let Some(f) = map.get_mut(&request_id) else {
            return;
        };
        if let LiveEvent::Chunk { offset, text, .. } = &event
            && !apply_chunk(&mut f.shown, &mut f.shown_chars, *offset, text)
        {
            return;
        }
        if f.tx.send((request_id.clone(), event)).is_err() {
            // The session is gone; its answer still completes in Temporal.
            map.remove(&request_id);
        }
    }
}

/// The Broadcaster of `node`, local or across the mesh.
pub fn broadcaster_of(node: &NodeId) -> Option<ActorRef<BroadcasterMsg>> {
    ractor::pg::get_members(&groups::broadcast(node))
        .into_iter()
        .next()
        .map(ActorRef::from)
}

/// Sends one live event towards the user of `request_id`, on the node they are connected to.
/// Best effort by design: Temporal holds the durable answer, and a client that missed an event
/// reconciles from the workflow result.
pub fn publish(origin: &NodeId, request_id: &RequestId, event: LiveEvent) {
    if let Some(b) = broadcaster_of(origin) {
        let _ = b.cast(BroadcasterMsg::Publish {
            request_id: request_id.clone(),
            event,
        });
    }
}

/// The answer as its user has been shown it, if the origin node follows the request. Answered
/// after every event this node published to it before, so it also flushes them.
pub async fn shown(origin: &NodeId, request_id: &RequestId) -> Option<String> {
    let b = broadcaster_of(origin)?;
    ractor::call_t!(b, BroadcasterMsg::Shown, 2000, request_id.clone())
        .ok()
        .flatten()
}

pub struct Broadcaster;

/// Applies a chunk at `offset` to the text shown so far: a replayed chunk is a no-op, a chunk at a
/// lower offset replaces the tail, a chunk past the end is appended (the gap is the sender's bug,
/// and the final answer from the workflow repairs it). Returns false when the chunk changed
/// nothing.
pub fn apply_chunk(shown: &mut String, shown_chars: &mut usize, offset: usize, text: &str) -> bool {
    let chunk_chars = text.chars().count();
    if offset + chunk_chars <= *shown_chars {
        let existing: String = shown.chars().skip(offset).take(chunk_chars).collect();
        if existing == text {
            return false;
        }
    }
    if offset < *shown_chars {
        let byte = shown
            .char_indices()
            .nth(offset)
            .map(|(i, _)| i)
            .unwrap_or(shown.len());
        shown.truncate(byte);
        *shown_chars = offset;
    }
    shown.push_str(text);
    *shown_chars += chunk_chars;
    true
}

impl Actor for Broadcaster {
    type Msg = BroadcasterMsg;
    type State = Followers;
    type Arguments = (NodeId, Followers);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (node, followers): (NodeId, Followers),
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join(groups::broadcast(&node), vec![myself.get_cell()]);
        Ok(followers)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        followers: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BroadcasterMsg::Publish { request_id, event } => followers.deliver(request_id, event),
            BroadcasterMsg::Shown(id, reply) => {
                let _ = reply.send(followers.shown(&id));
            }
            BroadcasterMsg::Count(reply) => {
                let _ = reply.send(followers.len() as u64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_apply_by_offset() {
        // (chunks in arrival order, expected text)
        let table: &[(&[(usize, &str)], &str)] = &[
            (&[(0, "ab"), (2, "cd")], "abcd"),
            (&[(0, "ab"), (2, "cd"), (2, "cd")], "abcd"),
            (&[(0, "ab"), (2, "cd"), (1, "XY")], "aXY"),
            (&[(0, "é"), (1, "ü"), (1, "ü")], "éü"),
            (&[(0, "日本"), (1, "本語")], "日本語"),
        ];
        for (chunks, want) in table {
            let (mut s, mut n) = (String::new(), 0);
            for (off, t) in *chunks {
                apply_chunk(&mut s, &mut n, *off, t);
            }
            assert_eq!(&s, want);
            assert_eq!(n, want.chars().count());
        }
    }
}
