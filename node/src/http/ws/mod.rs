//! `/ws`: the JSON WebSocket protocol of docs/websocket.md. One socket carries many asks; a bad
//! frame is answered with an error frame and changes nothing else.

mod flows;
mod frames;
mod sessions;

pub use frames::{CLIENT_TYPES, ClientFrame, ServerFrame};
pub use sessions::{SessionPermit, Sessions};

use super::error::ApiError;
use super::{AppState, follow};
use crate::actors::mesh;
use crate::asks::AskFields;
use crate::protocol::{LiveEvent, LiveStage, NodeRow, RequestId};
use crate::users::Caller;
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use frames::{ErrorBody, FrameLimits, ModelEntry};
use futures::{SinkExt, StreamExt};
use std::collections::HashSet;
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// Asks one socket may have in flight at once.
const MAX_IN_FLIGHT_PER_SOCKET: usize = 16;

/// Authenticates before upgrading (`Authorization: Bearer …` or `?api_key=`): a refused socket
/// never opens.
/// A client over its session caps is refused with 429 before the upgrade.
pub async fn upgrade(
    State(state): State<AppState>,
    caller: Caller,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    ws: WebSocketUpgrade,
) -> Response {
    let limits = &state.asks.config.http_server;
    let ip = peer.map(|Extension(ConnectInfo(a))| a.ip());
    let user = caller.user.to_string();
    let permit =
        match state
            .ws_sessions
            .open(&user, ip, limits.max_ws_per_user, limits.max_ws_per_ip)
        {
            Ok(p) => p,
            Err(why) => return ApiError::new("too_many_sessions", why).into_response(),
        };
    ws.max_message_size(1 << 20)
        .on_upgrade(move |socket| session(socket, state, caller, permit))
}

/// The cluster view without mesh addresses.
fn public(rows: &[NodeRow]) -> Vec<NodeRow> {
    rows.iter().cloned().map(NodeRow::public).collect()
}

async fn models(state: &AppState) -> Vec<ModelEntry> {
    let status = state.node.models_status().await.unwrap_or_default();
    state
        .asks
        .config
        .models
        .iter()
        .map(|m| ModelEntry {
            id: m.id.clone(),
            loaded: status.loaded.contains(&m.id),
            kind: match m.source {
                crate::config::ModelSource::Synthetic { .. } => "synthetic",
                crate::config::ModelSource::Remote { .. } => "remote",
                _ => "gguf",
            },
        })
        .collect()
}

async fn session(socket: WebSocket, state: AppState, caller: Caller, _permit: SessionPermit) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ServerFrame>();
    let (live_tx, mut live_rx) = mpsc::unbounded_channel::<(RequestId, LiveEvent)>();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<RequestId>();
    let mut mine: HashSet<RequestId> = HashSet::new();
    let mut cluster = state.cluster.clone();
    cluster.mark_unchanged();
    // Workflow notifications of this user (from the notify activity on this node).
    let (_events, mut events_rx) = state.user_events.subscribe(caller.user.as_str());
    metrics::gauge!("orrery_websocket_sessions").increment(1.0);

    let config = &state.asks.config;
    let _ = out_tx.send(ServerFrame::Hello {
        node: config.node_id.clone(),
        models: models(&state).await,
        default_model: config.default_model.clone(),
        temporal_ui: state.asks.temporal_ui.clone(),
        cluster: public(&state.cluster.borrow()),
        limits: FrameLimits {
            max_prompt_chars: config.limits.max_prompt_chars,
            max_tokens: config.limits.max_tokens,
        },
    });

    // The node pings; a socket silent for `ws_idle` (no frame, no pong) is closed.
    let idle = state.asks.config.http_server.ws_idle;
    let mut ping = tokio::time::interval(idle / 3);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        // A frame to send, or the text of one the client sent.
        let frame: Result<ServerFrame, String> = tokio::select! {
            // Live events first: a chunk already queued goes out before the end of its ask.
            biased;
            _ = state.shutdown.cancelled() => break,
            _ = ping.tick() => {
                if heard.elapsed() >= idle {
                    let close = CloseFrame { code: close_code::AWAY, reason: "idle".into() };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
            Some((id, ev)) = live_rx.recv() => Ok(ServerFrame::live(&id, ev)),
            Some(f) = out_rx.recv() => Ok(f),
            Some(id) = ended_rx.recv() => { mine.remove(&id); continue; }
            Some(ev) = events_rx.recv() => Ok(ServerFrame::event(ev)),
            Ok(()) = cluster.changed() => Ok(ServerFrame::Cluster { nodes: public(&cluster.borrow_and_update()) }),
            incoming = stream.next() => {
                heard = tokio::time::Instant::now();
                let text = match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        let e = ApiError::new("binary_frame", "frames must be JSON text, not binary");
                        let _ = out_tx.send(ServerFrame::error(&e, None, None));
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                Err(text)
            }
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(text) => {
                let mut socket = Socket {
                    state: &state,
                    caller: &caller,
                    out: &out_tx,
                    live_tx: &live_tx,
                    ended_tx: &ended_tx,
                    mine: &mut mine,
                };
                // Handling a frame may wait on Temporal (an ask's start); the socket's other
                // answers keep streaming meanwhile.
                let handling = socket.handle(&text);
                if !forward_while(handling, &mut live_rx, &mut out_rx, &mut sink).await {
                    break;
                }
                continue;
            }
        };
        if !send_frame(&mut sink, &frame).await {
            break;
        }
    }
    // The asks go on in Temporal; only this socket's following of them ends.
    for id in &mine {
        state.asks.unfollow(id);
    }
    metrics::gauge!("orrery_websocket_sessions").decrement(1.0);
    let _ = sink.close().await;
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;

/// Sends one frame; false once the socket is gone.
async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> bool {
    let Ok(text) = serde_json::to_string(frame) else {
        return true; // Every frame is plain data; serialising it cannot fail.
    };
    sink.send(Message::Text(text.into())).await.is_ok()
}

/// Runs `handling` while still sending the socket's live events and frames, in the session
/// loop's order (live events first, so an answer's chunks precede its end). False once the socket
/// is gone (the handling still runs to its end: an ask it started goes on in Temporal).
async fn forward_while(
    handling: impl std::future::Future<Output = ()>,
    live_rx: &mut mpsc::UnboundedReceiver<(RequestId, LiveEvent)>,
    out_rx: &mut mpsc::UnboundedReceiver<ServerFrame>,
    sink: &mut Sink,
) -> bool {
    tokio::pin!(handling);
    let mut open = true;
    loop {
        let frame = tokio::select! {
            biased;
            () = &mut handling => return open,
            Some((id, ev)) = live_rx.recv(), if open => ServerFrame::live(&id, ev),
            Some(f) = out_rx.recv(), if open => f,
        };
        open = send_frame(sink, &frame).await;
    }
}

/// The channels and asks of one socket.
struct Socket<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    out: &'a mpsc::UnboundedSender<ServerFrame>,
    live_tx: &'a mpsc::UnboundedSender<(RequestId, LiveEvent)>,
    ended_tx: &'a mpsc::UnboundedSender<RequestId>,
    /// This socket's asks in flight.
    mine: &'a mut HashSet<RequestId>,
}

impl Socket<'_> {
    fn send(&self, frame: ServerFrame) {
        let _ = self.out.send(frame);
    }

    async fn handle(&mut self, text: &str) {
        let frame = match ClientFrame::parse(text) {
            Ok(f) => f,
            Err((e, client_id)) => {
                return self.send(ServerFrame::error(&e, client_id.as_deref(), None));
            }
        };
        match frame {
            ClientFrame::Ping => self.send(ServerFrame::Pong),
            ClientFrame::Models => self.send(ServerFrame::Models {
                models: models(self.state).await,
                default_model: self.state.asks.config.default_model.clone(),
            }),
            ClientFrame::Cancel { request_id } => self.cancel(request_id).await,
            ClientFrame::Ask(fields) => self.ask(fields).await,
            ClientFrame::RunWorkflow(fields) => self.run_workflow(fields).await,
            ClientFrame::CancelWorkflow { workflow_id } => self.cancel_workflow(workflow_id).await,
        }
    }

    async fn cancel(&mut self, id: Option<RequestId>) {
        let Some(id) = id else {
            let e = ApiError::new("missing_field", "cancel needs `request_id`");
            return self.send(ServerFrame::error(&e, None, None));
        };
        if !self.mine.contains(&id) {
            let e = ApiError::new(
                "unknown_request",
                format!("no ask {id} in flight on this connection"),
            );
            return self.send(ServerFrame::error(&e, None, Some(&id)));
        }
        if let Err(e) = self.state.asks.cancel(&id).await {
            self.send(ServerFrame::error(&e.into(), None, Some(&id)));
        }
    }

    async fn ask(&mut self, fields: AskFields) {
        let client_id = fields.client_id.clone();
        let cid = client_id.as_deref();
        if self.mine.len() >= MAX_IN_FLIGHT_PER_SOCKET {
            let e = ApiError::new(
                "too_many_requests",
                format!("at most {MAX_IN_FLIGHT_PER_SOCKET} asks in flight per connection"),
            );
            return self.send(ServerFrame::error(&e, cid, None));
        }
        let req = match fields.into_request() {
            Ok(r) => r,
            Err(e) => return self.send(ServerFrame::error(&e.into(), cid, None)),
        };
        let (state, out) = (self.state, self.out);
        let mut accepted = None;
        // Follow before starting, so no chunk can come before the subscription.
        let started = follow::admit_and_start(state, self.caller, req, "ws", |id| {
            state.asks.follow(id, self.live_tx.clone());
            let _ = out.send(ServerFrame::Accepted {
                request_id: id.clone(),
                workflow_id: id.clone(),
                workflow_url: state.asks.workflow_url(id),
                client_id: client_id.clone(),
            });
            let _ = out.send(ServerFrame::live(
                id,
                LiveEvent::Status(LiveStage::Planning),
            ));
            accepted = Some(id.clone());
        })
        .await;
        let (started, permit, origin) = match (started, accepted) {
            (Ok(s), _) => s,
            // Accepted, then the control plane refused it: the ask ends here.
            (Err(e), Some(id)) => {
                let error = ErrorBody {
                    code: e.code,
                    message: e.message,
                };
                return self.send(ServerFrame::Failed {
                    request_id: id,
                    error,
                });
            }
            (Err(e), None) => return self.send(ServerFrame::error(&e, cid, None)),
        };
        let id = started.id;
        self.mine.insert(id.clone());
        let (asks, out, ended) = (state.asks.clone(), out.clone(), self.ended_tx.clone());
        state.tasks.spawn(async move {
            let _permit = permit;
            let end = asks.wait(&id).await;
            let elapsed_ms = started.accepted_at.elapsed().as_millis() as u64;
            // The Broadcaster answers after forwarding every chunk published before: the end
            // frame cannot overtake them.
            let shown = mesh::shown(&origin, &id).await;
            asks.unfollow(&id);
            let _ = out.send(ServerFrame::end(&id, end, shown, elapsed_ms));
            let _ = ended.send(id);
        });
    }
}
