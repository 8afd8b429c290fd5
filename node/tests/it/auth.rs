//! Users and quotas over real HTTP: 401 without a valid key on every API (each in its own error
//! shape) and on the WebSocket, 403 on another user's ask, 429 with Retry-After at the limits, and
//! a node that refuses to start open on a non-loopback address.

use crate::harness::{Sandbox, free_port, home};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ALICE: &str = "sk-test-alice-0123456789";
const BOB: &str = "sk-test-bob-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn keys_owners_and_limits_are_enforced() {
    let sb = Sandbox::start().await;
    // Carol's key comes from a keys file that `orrery keygen` wrote (it holds only the hash);
    // Alice's and Bob's from ORRERY_API_KEYS.
    let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["keygen", "--user", "carol", "--tier", "enterprise"])
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let carol = String::from_utf8_lossy(&keygen.stdout).trim().to_string();
    let printed = String::from_utf8_lossy(&keygen.stderr);
    let entry = &printed[printed.find("[[keys]]").expect("a keys-file entry")..];
    assert!(
        !entry.contains(&carol),
        "the file entry holds only the hash"
    );
    let keys_file = sb.dir.path().join("keys.toml");
    std::fs::write(&keys_file, entry).unwrap();
    // Free tier: 1 ask at a time, 3 a minute. A slow synthetic model keeps an ask running.
    let config = format!(
        "[auth]\nkeys_file = \"{}\"\n[auth.tiers.free]\nmax_concurrent = 1\nrequests_per_minute = 3\n\
         [[models]]\nid = \"synthetic\"\nsource = \"synthetic:100\"\nmax_sequences = 4\n",
        keys_file.display()
    );
    let keys = format!("{ALICE}:alice:free,{BOB}:bob:premium");
    let node = sb
        .node_with_env("au1", &config, &[("ORRERY_API_KEYS", &keys)])
        .await;
    assert!(node.log().contains("3 API key(s)"), "{}", node.log());
    let r = reqwest::Client::new()
        .get(format!("{}/v1/models", node.http))
        .bearer_auth(&carol)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "carol's key from the keys file works");
    assert!(!node.log().contains(ALICE), "keys are never logged");
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", node.http);

    // 401 everywhere without a valid key, each API in its own shape.
    // (method, path, body, key, how the error is read)
    type Case<'a> = (&'a str, &'a str, Option<Value>, Option<&'a str>, &'a str);
    let table: &[Case] = &[
        ("GET", "/v1/models", None, None, "/error/code"),
        (
            "GET",
            "/v1/models",
            None,
            Some("sk-wrong-0123456789"),
            "/error/code",
        ),
        (
            "POST",
            "/v1/chat/completions",
            Some(json!({"model": "synthetic", "messages": []})),
            None,
            "/error/code",
        ),
        ("GET", "/api/tags", None, None, "/error"),
        (
            "POST",
            "/api/chat",
            Some(json!({"model": "synthetic", "messages": []})),
            None,
            "/error",
        ),
        (
            "POST",
            "/api/asks",
            Some(json!({"prompt": "hi"})),
            None,
            "/error/code",
        ),
        (
            "GET",
            "/api/asks",
            None,
            Some("sk-wrong-0123456789"),
            "/error/code",
        ),
    ];
    for (method, path, body, key, pointer) in table {
        let mut req = http.request(method.parse().unwrap(), url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        assert!(r.headers().contains_key("www-authenticate"));
        let v: Value = r.json().await.unwrap();
        assert!(
            v.pointer(pointer).is_some_and(Value::is_string),
            "{path}: {v}"
        );
    }
    // Health, readiness and metrics stay open for the infrastructure.
    for p in ["/health", "/ready", "/metrics"] {
        assert_eq!(http.get(url(p)).send().await.unwrap().status(), 200, "{p}");
    }
    // The WebSocket refuses the upgrade without a key, and takes one in the query.
    let ws = url("/ws").replace("http://", "ws://");
    match tokio_tungstenite::connect_async(&ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("a socket without a key: {:?}", other.map(|_| ())),
    }
    let (mut sock, _) = tokio_tungstenite::connect_async(format!("{ws}?api_key={BOB}"))
        .await
        .expect("a key in the query opens the socket");
    let mut hdr = ws.as_str().into_client_request().unwrap();
    hdr.headers_mut()
        .insert("authorization", format!("Bearer {BOB}").parse().unwrap());
    tokio_tungstenite::connect_async(hdr)
        .await
        .expect("a key in the Authorization header opens the socket");

    // Bob asks over the socket; the ask is his.
    sock.send(Message::Text(
        json!({"type": "ask", "prompt": "hi", "max_tokens": 5, "user": "mallory"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let bob_ask = loop {
        let m = sock.next().await.unwrap().unwrap();
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "done" {
                break v["request_id"].as_str().unwrap().to_string();
            }
            assert_ne!(v["type"], "error", "{v}");
        }
    };

    // Alice starts a long ask (free tier: 1 at a time).
    let alice_post = |body: Value| {
        http.post(url("/api/asks"))
            .bearer_auth(ALICE)
            .json(&body)
            .send()
    };
    let r = alice_post(json!({"prompt": "a long one", "max_tokens": 1000}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let alice_ask = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // A second one at once: 429, concurrency, Retry-After.
    let r = alice_post(json!({"prompt": "another", "max_tokens": 5}))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "too_many_requests"
    );
    // The same limit through the OpenAI API, in OpenAI's shape.
    let r = http
        .post(url("/v1/chat/completions"))
        .bearer_auth(ALICE)
        .json(&json!({"model": "synthetic", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");

    // Bob cannot see, cancel or list Alice's asks; Alice cannot see Bob's.
    let bob_get = |path: String| http.get(url(&path)).bearer_auth(BOB).send();
    assert_eq!(
        bob_get(format!("/api/asks/{alice_ask}"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        bob_get(format!("/api/asks/{alice_ask}/result"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        bob_get("/api/asks?user=alice".into())
            .await
            .unwrap()
            .status(),
        403
    );
    let r = http
        .delete(url(&format!("/api/asks/{alice_ask}")))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(url(&format!("/api/asks/{bob_ask}")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = http
        .get(url(&format!("/api/asks/{bob_ask}")))
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    let st: Value = r.json().await.unwrap();
    assert_eq!(
        st["user"], "bob",
        "the key decides the user, not the frame: {st}"
    );

    // Alice cancels her own ask, which frees her slot.
    let r = http
        .delete(url(&format!("/api/asks/{alice_ask}")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = http
        .get(url(&format!("/api/asks/{alice_ask}/result?wait=30")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "cancelled");
    crate::harness::wait_for(
        "alice's slot to be free",
        std::time::Duration::from_secs(10),
        || async {
            let r = http
                .post(url("/v1/chat/completions"))
                .bearer_auth(ALICE)
                .json(&json!({"model": "synthetic", "max_tokens": 3,
                              "messages": [{"role": "user", "content": "x"}]}))
                .send()
                .await
                .unwrap();
            // The slot is free once this is admitted (it is her 2nd ask this minute).
            (r.status() == 200).then_some(())
        },
    )
    .await;
    // Her 3rd ask this minute is admitted, the 4th is over the rate: Retry-After is the wait
    // for the next token of a 3-per-minute bucket.
    let r = alice_post(json!({"prompt": "third", "max_tokens": 3}))
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let third = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http
        .get(url(&format!("/api/asks/{third}/result?wait=30")))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "completed");
    // (Until the third's permit drops, the refusal may still be for concurrency: it costs
    // nothing, so ask again.)
    let (retry, v) = crate::harness::wait_for(
        "a refusal for the rate",
        std::time::Duration::from_secs(10),
        || async {
            let r = alice_post(json!({"prompt": "fourth", "max_tokens": 3}))
                .await
                .unwrap();
            assert_eq!(r.status(), 429);
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let v: Value = r.json().await.unwrap();
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("per minute")
                .then_some((retry, v))
        },
    )
    .await;
    assert!((2..=20).contains(&retry), "retry after {retry} s: {v}");

    // Each sees only their own history.
    let hist: Value = http
        .get(url("/api/asks"))
        .bearer_auth(ALICE)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = hist["asks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&alice_ask.as_str()), "{hist}");
    assert!(!ids.contains(&bob_ask.as_str()), "{hist}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_node_refuses_a_public_address() {
    let out = tokio::task::spawn_blocking(|| {
        std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
            .args(["node", "--config", "/nonexistent/cluster.toml"])
            .args(["--http", &format!("0.0.0.0:{}", free_port())])
            .args(["--temporal", "127.0.0.1:1"])
            .env("ORRERY_HOME", home())
            .env_remove("ORRERY_API_KEYS")
            .env_remove("ORRERY_API_KEYS_FILE")
            .env_remove("ORRERY_ALLOW_ANONYMOUS")
            .output()
            .expect("orrery runs")
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without API keys") && err.contains("allow_anonymous"),
        "{err}"
    );
}
