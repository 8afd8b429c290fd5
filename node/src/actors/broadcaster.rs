//! The Broadcaster: the live sessions (WebSocket, API streams) of this node, by request. Generation
//! activities publish status and text chunks here; it forwards them to whoever asked, and keeps the
//! answer as the user has been shown it, which is the best point to resume from after a failover.

use crate::ids::{NodeId, RequestId};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tokio::sync::mpsc::UnboundedSender;

/// The stages of an ask that are shown to its user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum LiveStage {
    Queued { position: u32 },
    Planning,
    Generating { node: NodeId },
}

/// One live event about one ask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LiveEvent {
    Status(LiveStage),
    /// `offset` counts the chars of the answer before `text`.
    Chunk {
        offset: usize,
        text: String,
    },
}

pub type Subscriber = UnboundedSender<(RequestId, LiveEvent)>;

#[derive(RactorMessage)]
pub enum BroadcasterMsg {
    Subscribe {
        request_id: RequestId,
        tx: Subscriber,
    },
    Unsubscribe(RequestId),
    Publish {
        request_id: RequestId,
        event: LiveEvent,
    },
    /// The answer as shown so far, if anyone here follows this request.
    Shown(RequestId, RpcReplyPort<Option<String>>),
    Count(RpcReplyPort<usize>),
}

pub struct Broadcaster;

struct Follower {
    tx: Subscriber,
    shown: String,
    shown_chars: usize,
}

#[derive(Default)]
pub struct BroadcasterState {
    followers: HashMap<RequestId, Follower>,
}

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
    type State = BroadcasterState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(BroadcasterState::default())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BroadcasterMsg::Subscribe { request_id, tx } => {
                state.followers.insert(
                    request_id,
                    Follower {
                        tx,
                        shown: String::new(),
                        shown_chars: 0,
                    },
                );
            }
            BroadcasterMsg::Unsubscribe(id) => {
                state.followers.remove(&id);
            }
            BroadcasterMsg::Publish { request_id, event } => {
                let Some(f) = state.followers.get_mut(&request_id) else {
                    return Ok(());
                };
                if let LiveEvent::Chunk { offset, text } = &event
                    && !apply_chunk(&mut f.shown, &mut f.shown_chars, *offset, text)
                {
                    return Ok(());
                }
                if f.tx.send((request_id.clone(), event)).is_err() {
                    // The session is gone; its answer still completes in Temporal.
                    state.followers.remove(&request_id);
                }
            }
            BroadcasterMsg::Shown(id, reply) => {
                let _ = reply.send(state.followers.get(&id).map(|f| f.shown.clone()));
            }
            BroadcasterMsg::Count(reply) => {
                let _ = reply.send(state.followers.len());
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
