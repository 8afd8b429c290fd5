//! `orrery ask`: a terminal client that streams an answer over the same WebSocket path as the page.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::Write;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {source}")]
    Connect {
        url: String,
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("connection lost: {0}")]
    Lost(String),
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    #[error("cancelled")]
    Cancelled,
}

/// What to ask.
#[derive(Clone, Debug, Default)]
pub struct AskArgs {
    pub url: String,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    /// Sent as `Authorization: Bearer …` when the node needs a key.
    pub api_key: Option<String>,
    pub prompt: String,
}

/// `http://host:port` (or `ws://…`, with or without `/ws`) → the node's WebSocket URL.
pub fn ws_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if base.starts_with("ws://") || base.starts_with("wss://") {
        base.to_string()
    } else {
        format!("ws://{base}")
    };
    if base.ends_with("/ws") {
        base
    } else {
        format!("{base}/ws")
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the node's WebSocket, with the API key when there is one.
async fn connect(args: &AskArgs) -> Result<Socket, ClientError> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = ws_url(&args.url);
    let connect_error = |source| ClientError::Connect {
        url: url.clone(),
        source,
    };
    let mut request = url.as_str().into_client_request().map_err(connect_error)?;
    if let Some(key) = &args.api_key
        && let Ok(v) = format!("Bearer {key}").parse()
    {
        request.headers_mut().insert("authorization", v);
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(connect_error)?;
    Ok(ws)
}

fn ask_frame(args: &AskArgs) -> Value {
    let mut frame = json!({"type": "ask", "prompt": args.prompt, "client_id": "cli"});
    if let Some(m) = &args.model {
        frame["model"] = json!(m);
    }
    if let Some(n) = args.max_tokens {
        frame["max_tokens"] = json!(n);
    }
    if let Some(t) = args.temperature {
        frame["temperature"] = json!(t);
    }
    if let Some(s) = args.seed {
        frame["seed"] = json!(s);
    }
    frame
}

/// One ask's frames, printed to a terminal as they come.
#[derive(Default)]
struct Printer {
    request_id: Option<String>,
    /// Chars of the answer printed so far.
    printed: usize,
}

impl Printer {
    /// Handles one frame; returns the ask's end once it comes.
    fn frame(&mut self, v: &Value, out: &mut impl Write) -> Option<Result<Value, ClientError>> {
        let server_error = |e: &Value| ClientError::Server {
            code: e["code"].as_str().unwrap_or("internal").into(),
            message: e["message"].as_str().unwrap_or("").into(),
        };
        match v["type"].as_str().unwrap_or("") {
            "accepted" => self.request_id = v["request_id"].as_str().map(String::from),
            "chunk" => {
                let offset = v["offset"].as_u64().unwrap_or(0) as usize;
                let t = v["text"].as_str().unwrap_or("");
                // A terminal cannot take text back: print only what extends the answer.
                let n = t.chars().count();
                if offset + n > self.printed {
                    let skip = self.printed.saturating_sub(offset);
                    let new: String = t.chars().skip(skip).collect();
                    let _ = write!(out, "{new}");
                    let _ = out.flush();
                    self.printed = offset + n;
                }
            }
            "done" => {
                let text = v["text"].as_str().unwrap_or("");
                let rest: String = text.chars().skip(self.printed).collect();
                // The answer ends its line: whatever the caller prints next starts a new one.
                let _ = writeln!(out, "{rest}");
                return Some(Ok(v.clone()));
            }
            "failed" => return Some(Err(server_error(&v["error"]))),
            "cancelled" => return Some(Err(ClientError::Cancelled)),
            "error"
                if v["client_id"] == "cli"
                    || v["request_id"].as_str() == self.request_id.as_deref() =>
            {
                return Some(Err(server_error(v)));
            }
            _ => {}
        }
        None
    }
}

/// Streams the answer to `out` as it arrives; returns the final `done` frame. Ctrl-C cancels
/// the ask (the node confirms with a `cancelled` frame).
pub async fn ask(args: &AskArgs, out: &mut impl Write) -> Result<Value, ClientError> {
    let mut ws = connect(args).await?;
    ws.send(Message::Text(ask_frame(args).to_string().into()))
        .await
        .map_err(|e| ClientError::Lost(e.to_string()))?;
    let mut printer = Printer::default();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut cancelling = false;
    loop {
        let msg = tokio::select! {
            _ = &mut ctrl_c, if !cancelling && printer.request_id.is_some() => {
                cancelling = true;
                let cancel = json!({"type": "cancel", "request_id": printer.request_id});
                let _ = ws.send(Message::Text(cancel.to_string().into())).await;
                continue;
            }
            m = ws.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(ClientError::Lost(e.to_string())),
            None => return Err(ClientError::Lost("the node closed the connection".into())),
        };
        let v: Value = serde_json::from_str(&text).map_err(|e| ClientError::Lost(e.to_string()))?;
        if let Some(end) = printer.frame(&v, out) {
            return end;
        }
    }
}

/// `http://host:port` without a trailing slash (a ws:// URL is turned back into http://).
fn http_base(url: &str) -> String {
    let u = url.trim_end_matches('/').trim_end_matches("/ws");
    if let Some(r) = u.strip_prefix("ws://") {
        format!("http://{r}")
    } else if let Some(r) = u.strip_prefix("wss://") {
        format!("https://{r}")
    } else if u.starts_with("http://") || u.starts_with("https://") {
        u.to_string()
    } else {
        format!("http://{u}")
    }
}

/// The cluster view of the node at `url`.
pub async fn cluster(
    url: &str,
    api_key: Option<&str>,
) -> anyhow::Result<Vec<crate::protocol::NodeRow>> {
    let mut req = reqwest::Client::new().get(format!("{}/api/cluster", http_base(url)));
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    let v: Value = req.send().await?.error_for_status()?.json().await?;
    Ok(serde_json::from_value(v["nodes"].clone())?)
}

/// A table of the cluster for people.
pub fn cluster_table(rows: &[crate::protocol::NodeRow]) -> String {
    let mut out = format!(
        "{:<16} {:<9} {:<22} {:>6} {:>6} {:>5} {:>9}  {}\n",
        "NODE", "STATE", "ADDRESS", "ACTIVE", "QUEUED", "CPU%", "FREE MiB", "MODELS"
    );
    for r in rows {
        let active: u32 = r.models.iter().map(|m| m.active).sum();
        let queued: u32 = r.models.iter().map(|m| m.queued).sum();
        let models: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
        out.push_str(&format!(
            "{:<16} {:<9} {:<22} {:>6} {:>6} {:>5} {:>9}  {}\n",
            r.node,
            r.state,
            r.addr.as_deref().unwrap_or("-"),
            active,
            queued,
            r.cpu_percent
                .map(|c| format!("{c:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.memory_available_bytes
                .map(|b| (b >> 20).to_string())
                .unwrap_or_else(|| "-".into()),
            models.join(",")
        ));
    }
    out
}

/// Calls an admin route with the bearer token; returns the JSON answer or the API's error.
pub async fn admin_call(
    url: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut rb = reqwest::Client::new()
        .request(method, format!("{}{path}", http_base(url)))
        .bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            v["error"]["message"].as_str().unwrap_or("no details")
        );
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_websocket_urls() {
        for (given, want) in [
            ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"),
            ("http://h:1/", "ws://h:1/ws"),
            ("https://h", "wss://h/ws"),
            ("ws://h:1/ws", "ws://h:1/ws"),
            ("h:1", "ws://h:1/ws"),
        ] {
            assert_eq!(ws_url(given), want);
        }
    }
}
