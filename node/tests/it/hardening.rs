//! What a hostile page, a careless client and a slow one can do to a node, and what it cannot:
//! one user cannot hold more sockets than the cap, a socket that answers no ping is closed as
//! idle, a cross-site page cannot open `/ws` or post an ask, a DNS-rebinding page (a foreign `Host`)
//! gets nothing from a loopback node, the cluster view needs a key and hides mesh addresses, an
//! ask with too many messages is refused before any workflow starts, a connection that never
//! sends a request is closed, and a model that cannot load is not retried for every ask.

use crate::harness::Sandbox;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const KEY: &str = "sk-test-harden-0123456789";

/// The status line and body of a raw HTTP/1.1 request with the given Host.
async fn raw_get(addr: &str, path: &str, host: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_pages_and_careless_clients_are_refused() {
    let sb = Sandbox::start().await;
    let config = "[limits]\nmax_messages = 4\n\
                  [http]\nheader_read_timeout_secs = 2\nmax_ws_per_user = 2\nws_idle_secs = 2\n\
                  [[models]]\nid = \"synthetic\"\nsource = \"synthetic:200\"\n\
                  [[models]]\nid = \"broken\"\nsource = \"path:/nonexistent/broken.gguf\"\nload = false\n";
    let keys = format!("{KEY}:harden:premium");
    let node = sb
        .node_with_env("hd1", config, &[("ORRERY_API_KEYS", &keys)])
        .await;
    let addr = node.http.trim_start_matches("http://").to_string();
    // No pooled connections: the node closes idle keep-alive connections after the (here 2 s)
    // header-read timeout, and a request racing that close would fail on the client's side.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    // Cross-site WebSocket hijacking: a page elsewhere cannot open the socket, even with a key;
    // the node's own page can.
    let ws = |origin: &str| {
        let mut req = format!("{}?api_key={KEY}", node.ws_url())
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    // One user may hold two sockets here; a third is refused before the upgrade.
    let (mut s1, _) = ws(&node.http).await.unwrap();
    let (mut s2, _) = ws(&node.http).await.unwrap();
    match ws(&node.http).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 429),
        other => panic!("a third socket must be refused: {:?}", other.map(|_| ())),
    }
    // Sockets that never answer the node's pings are closed as idle. (The client answers pings
    // only while it reads, so it stays silent, not reading, until the node's own gauge says it
    // holds no session any more.)
    let metrics = format!("{}/metrics", node.http);
    crate::harness::wait_for(
        "the idle sessions to close",
        Duration::from_secs(15),
        || {
            let get = http.get(&metrics).send();
            async move {
                let text = get.await.ok()?.text().await.ok()?;
                text.lines()
                    .any(|l| l.trim() == "orrery_websocket_sessions 0")
                    .then_some(())
            }
        },
    )
    .await;
    for s in [&mut s1, &mut s2] {
        // The node's close frame ("idle"), or the closed connection when the client's queued
        // pong hits it first: either way the node ended the socket.
        let ended = tokio::time::timeout(Duration::from_secs(15), async {
            while let Some(m) = s.next().await {
                match m {
                    Ok(tokio_tungstenite::tungstenite::Message::Close(f)) => {
                        return f.map(|f| f.reason.to_string()).unwrap_or_default();
                    }
                    Ok(_) => {}
                    Err(e) => return format!("closed: {e}"),
                }
            }
            "closed".to_string()
        })
        .await;
        let how = ended.expect("the idle socket must be closed by the node");
        assert!(how == "idle" || how.starts_with("closed"), "{how}");
    }

    match ws("http://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!(
            "a cross-site socket must be refused: {:?}",
            other.map(|_| ())
        ),
    }
    // The node's own page may open /ws (once the idle sessions' places are back).
    crate::harness::wait_for(
        "a socket from the node's own page",
        Duration::from_secs(10),
        || {
            let attempt = ws(&node.http);
            async move { attempt.await.ok().map(|_| ()) }
        },
    )
    .await;

    // CSRF: a cross-site POST is refused before it is read; the same POST without Origin (a
    // program, not a page) is taken.
    let ask = json!({"model": "synthetic", "messages": [{"role": "user", "content": "hi"}],
                     "max_tokens": 2});
    let r = http
        .post(format!("{}/v1/chat/completions", node.http))
        .bearer_auth(KEY)
        .header("origin", "http://evil.example")
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden_origin", "{body}");

    // Too many messages: refused at admission, before a workflow starts.
    let many: Vec<Value> = (0..5)
        .map(|i| json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": "x"}))
        .collect();
    let r = http
        .post(format!("{}/v1/chat/completions", node.http))
        .bearer_auth(KEY)
        .json(&json!({"model": "synthetic", "messages": many, "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("at most 4"), "{body}");

    // A prompt longer than the model's context: refused at admission, in the API's error shape.
    let long = "w ".repeat(5000);
    let r = http
        .post(format!("{}/v1/chat/completions", node.http))
        .bearer_auth(KEY)
        .json(&json!({"model": "synthetic", "messages": [{"role": "user", "content": long}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(message.contains("tokens after the chat template"), "{body}");

    // DNS rebinding: a loopback node answers only to loopback names.
    let foreign = raw_get(&addr, "/api/cluster", "evil.example").await;
    assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
    assert!(foreign.contains("forbidden_host"), "{foreign}");
    let own = raw_get(&addr, "/api/cluster", &addr).await;
    assert!(own.starts_with("HTTP/1.1 200"), "{own}");

    // The cluster view needs a key, and shows no mesh addresses.
    let r = http
        .get(format!("{}/api/cluster", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = http
        .get(format!("{}/api/cluster", node.http))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for n in v["nodes"].as_array().into_iter().flatten() {
        assert!(n["addr"].is_null(), "{n}");
    }

    // A connection that never sends a request head is closed after the header-read timeout.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let opened = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), idle.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(_)) | Ok(Err(_))),
        "the idle connection must be closed by the node"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(1),
        "closed too early"
    );
    // A model that cannot load fails each ask with its reason, and is not reloaded for each.
    for _ in 0..3 {
        let r = http
            .post(format!("{}/v1/chat/completions", node.http))
            .bearer_auth(KEY)
            .json(&json!({"model": "broken", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_server_error(), "{}", r.status());
        let body: Value = r.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("broken.gguf"), "{body}");
    }
    let log = node.log();
    assert_eq!(log.matches("model failed to load").count(), 1, "{log}");

    // The node still answers everyone else.
    let r = http
        .get(format!("{}/v1/models", node.http))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
