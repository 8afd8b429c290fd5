//! Payload encryption end to end: with a key configured, an ask still answers (and its running
//! text is still shown, from decrypted heartbeats), while its workflow history, read straight
//! from Temporal with the `temporal` CLI, holds neither the prompt nor the answer in the clear;
//! the same CLI pointed at the node's codec endpoint reads them back. The codec endpoint needs the
//! admin token and answers the Temporal UI's origin (CORS).

use crate::harness::{Client, Node, Sandbox, home, wait_for};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "codec-admin-secret";
const UI: &str = "http://127.0.0.1:18233";
const PROMPT: &str = "Say something about the violet heron of Quillmere 8841.";

fn config() -> String {
    format!(
        "{}\n[[models]]\nid = \"synthetic\"\nsource = \"synthetic:8\"\n\
         [temporal]\nui_url = \"{UI}\"\n",
        crate::harness::DEFAULT_MODEL_CONFIG
    )
}

/// Whether `needle` is anywhere in `v`: in a string, or in a string's base64-decoded bytes (the
/// CLI prints payload data as base64).
fn holds(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => {
            s.contains(needle)
                || STANDARD
                    .decode(s)
                    .is_ok_and(|b| String::from_utf8_lossy(&b).contains(needle))
        }
        Value::Array(a) => a.iter().any(|x| holds(x, needle)),
        Value::Object(o) => o.values().any(|x| holds(x, needle)),
        _ => false,
    }
}

/// The workflow's history as the `temporal` CLI prints it (JSON), through the node's codec
/// endpoint when `codec` is given.
fn history(sb: &Sandbox, id: &str, codec: Option<&Node>) -> Value {
    let cli = orrery::setup::ensure_temporal_cli(&home()).expect("temporal CLI");
    let mut cmd = std::process::Command::new(cli);
    cmd.args(["workflow", "show", "--workflow-id", id, "--output", "json"])
        .args(["--address", &sb.temporal.address]);
    if let Some(node) = codec {
        cmd.args(["--codec-endpoint", &format!("{}/codec", node.http)])
            .args(["--codec-auth", &format!("Bearer {TOKEN}")]);
    }
    let out = cmd.output().expect("temporal workflow show runs");
    assert!(
        out.status.success(),
        "temporal workflow show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the history is JSON")
}

async fn ask(node: &Node) -> (String, String) {
    let (mut c, _) = Client::connect(node).await;
    c.send(json!({"type": "ask", "prompt": PROMPT, "temperature": 0, "max_tokens": 24}))
        .await;
    let (accepted, _) = c.until("accepted").await;
    let id = accepted["request_id"].as_str().unwrap().to_string();
    let (done, _) = c.until("done").await;
    let text = done["text"].as_str().unwrap().trim().to_string();
    assert!(!text.is_empty(), "the ask answers: {done}");
    (id, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn history_holds_no_prompt_or_answer_in_the_clear() {
    let sb = Sandbox::start().await;
    // The key comes from `orrery keygen --payload`, as an operator's would.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args(["keygen", "--payload", "--id", "k-test"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("k-test:"), "{key}");
    let env = [
        ("ORRERY_PAYLOAD_KEYS", key.as_str()),
        ("ORRERY_ADMIN_TOKEN", TOKEN),
    ];
    let node = sb.node_with_env("enc1", &config(), &env).await;
    let (id, answer) = ask(&node).await;

    let raw = history(&sb, &id, None);
    let events = raw["events"].as_array().map(Vec::len).unwrap_or(0);
    assert!(events > 5, "a whole history was read: {raw}");
    for needle in [PROMPT, "violet heron", answer.as_str()] {
        assert!(!holds(&raw, needle), "`{needle}` is in the clear in {raw}");
    }
    assert!(
        raw.to_string()
            .contains(&STANDARD.encode("binary/encrypted")),
        "payloads are marked encrypted: {raw}"
    );
    // Through the node's codec endpoint the same history reads in the clear.
    let decoded = history(&sb, &id, Some(&node));
    assert!(holds(&decoded, "violet heron"), "{decoded}");
    assert!(holds(&decoded, &answer), "`{answer}` in {decoded}");

    // The memo (owner, model) is encrypted too; the node's history reads it back.
    let http = reqwest::Client::new();
    let listed = wait_for(
        "the ask in the user's history",
        Duration::from_secs(30),
        || {
            let (http, url) = (
                http.clone(),
                format!("{}/api/asks?user=anonymous", node.http),
            );
            let id = id.clone();
            async move {
                let h: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                let first = h["asks"].as_array()?.first()?.clone();
                (first["id"] == id.as_str()).then_some(first)
            }
        },
    )
    .await;
    assert_eq!(listed["model"], "smollm2-135m", "{listed}");
    let memo = &raw["events"][0]["workflowExecutionStartedEventAttributes"]["memo"]["fields"];
    assert_eq!(
        memo["user"]["metadata"]["encoding"],
        STANDARD.encode("binary/encrypted"),
        "the memo is encrypted: {memo}"
    );

    // A running ask's text so far comes from the generate activity's heartbeats: they are
    // encrypted too, and the node decrypts them for its status answer.
    let r: Value = http
        .post(format!("{}/api/asks", node.http))
        .json(&json!({"model": "synthetic", "prompt": "count slowly", "max_tokens": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let slow = r["id"].as_str().unwrap().to_string();
    let so_far = wait_for(
        "the running ask's text so far",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), format!("{}/api/asks/{slow}", node.http));
            async move {
                let st: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                st["text_so_far"]
                    .as_str()
                    .filter(|t| t.contains("w3"))
                    .map(String::from)
            }
        },
    )
    .await;
    let raw = history(&sb, &slow, None);
    assert!(
        !holds(&raw, so_far.trim()),
        "`{so_far}` in the clear: {raw}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_codec_endpoint_needs_the_admin_token_and_answers_the_ui_origin() {
    let sb = Sandbox::start().await;
    let key = format!("k1:{}", STANDARD.encode([7u8; 32]));
    let env = [
        ("ORRERY_PAYLOAD_KEYS", key.as_str()),
        ("ORRERY_ADMIN_TOKEN", TOKEN),
    ];
    let node = sb
        .node_with_env("enc2", "[[models]]\nid = \"s\"\nsource = \"synthetic:100\"\n[temporal]\nui_url = \"http://127.0.0.1:18233\"\n", &env)
        .await;
    let http = reqwest::Client::new();
    let plain = json!({"payloads": [{
        "metadata": {"encoding": STANDARD.encode("json/plain")},
        "data": STANDARD.encode("\"the heron\""),
    }]});
    let post = |path: &str, body: &Value, token: Option<&str>, origin: Option<&str>| {
        let mut rb = http.post(format!("{}/codec/{path}", node.http)).json(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb.send()
    };

    // Without the token, or with a wrong one: 401 with a JSON error.
    for token in [None, Some("wrong")] {
        let r = post("encode", &plain, token, None).await.unwrap();
        assert_eq!(r.status(), 401);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }

    // Encode, then decode: the round trip gives the payload back; the encoded one is sealed.
    let r = post("encode", &plain, Some(TOKEN), Some(UI)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], UI);
    let sealed: Value = r.json().await.unwrap();
    let p = &sealed["payloads"][0];
    assert_eq!(
        p["metadata"]["encoding"],
        STANDARD.encode("binary/encrypted")
    );
    assert_eq!(p["metadata"]["encryption-key-id"], STANDARD.encode("k1"));
    assert!(!holds(&sealed, "heron"), "{sealed}");
    let r = post("decode", &sealed, Some(TOKEN), None).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), plain);

    // Bad bodies are 400s with a JSON error, never a crash.
    for bad in [
        json!({"nope": 1}),
        json!({"payloads": [{"data": "!!not base64"}]}),
        json!({"payloads": [{"metadata": {"encoding": STANDARD.encode("binary/encrypted"),
                                          "encryption-key-id": STANDARD.encode("k9")},
                             "data": STANDARD.encode("xx")}]}),
    ] {
        let r = post("decode", &bad, Some(TOKEN), None).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }

    // The UI's preflight is answered; another origin gets neither CORS nor the route.
    let preflight = |origin: &'static str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/codec/decode", node.http),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
    };
    let r = preflight(UI).await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], UI);
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("authorization"), "{allowed}");
    let r = preflight("https://evil.example").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = post("decode", &sealed, Some(TOKEN), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
