//! The OpenAI-compatible API over real HTTP, against a real node: the real model's answers
//! (streamed and not), and every documented error in OpenAI's shape.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox};
use serde_json::{Value, json};

pub const PARIS: &str = "What is the capital of France?";

/// A node serving a synthetic model, for tests that check the API rather than the answers.
pub const SYNTHETIC_CONFIG: &str = r#"
[[models]]
id = "synthetic"
source = "synthetic:400"
default = true
max_sequences = 4
"#;

/// The `data:` payloads of a server-sent-events body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(|d| d.trim().to_string())
        .collect()
}

fn chat(model: &str, max_tokens: u32) -> Value {
    json!({"model": model, "temperature": 0, "max_tokens": max_tokens,
           "messages": [{"role": "system", "content": "You are a helpful assistant."},
                        {"role": "user", "content": PARIS}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_api_answers_streamed_and_not() {
    let sb = Sandbox::start().await;
    let node = sb.node("oa1", DEFAULT_MODEL_CONFIG).await;
    let http = reqwest::Client::new();

    let models: Value = http
        .get(format!("{}/v1/models", node.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "smollm2-135m");
    assert_eq!(models["data"][0]["object"], "model");
    let one: Value = http
        .get(format!("{}/v1/models/smollm2-135m", node.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "smollm2-135m");

    // Not streamed: one chat.completion object.
    let url = format!("{}/v1/chat/completions", node.http);
    let resp = http
        .post(&url)
        .json(&chat("smollm2-135m", 20))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["id"], request_id.as_str());
    assert_eq!(v["model"], "smollm2-135m");
    let answer = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(answer.contains("Paris"), "answer: {answer}\n{}", node.log());
    let finish = v["choices"][0]["finish_reason"].as_str().unwrap();
    assert!(matches!(finish, "stop" | "length"), "{v}");
    let u = &v["usage"];
    assert!(u["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(u["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );

    // Streamed, with usage: chunks, a finish chunk, a usage chunk, then [DONE].
    let mut req = chat("smollm2-135m", 20);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = http.post(&url).json(&req).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/event-stream"), "{ctype}");
    let body = resp.text().await.unwrap();
    let data = sse_data(&body);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{body}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, answer, "greedy answers agree streamed and not");
    assert!(
        chunks.len() > 4,
        "the answer came in pieces: {} chunks",
        chunks.len()
    );
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter(|c| !c["choices"][0]["finish_reason"].is_null())
        .collect();
    assert_eq!(finishes.len(), 1, "{body}");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(last["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );

    // Each call is an AskWorkflow, visible through the REST API.
    let st: Value = http
        .get(format!("{}/api/asks/{request_id}", node.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(st["status"], "completed", "{st}");
    assert_eq!(st["user"], "anonymous");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_errors_have_openai_shape_and_status() {
    let sb = Sandbox::start().await;
    let node = sb.node("oa2", SYNTHETIC_CONFIG).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", node.http);
    let user = |c: &str| json!([{"role": "user", "content": c}]);
    let long = "x".repeat(20_000);
    // (body, wanted status, wanted code, wanted param)
    let table: Vec<(String, u16, &str, Option<&str>)> = vec![
        ("{not json".into(), 400, "invalid_json", None),
        (
            json!({"messages": user("hi")}).to_string(),
            400,
            "missing_required_parameter",
            Some("model"),
        ),
        (
            json!({"model": "synthetic"}).to_string(),
            400,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            json!({"model": "gpt-9", "messages": user("hi")}).to_string(),
            404,
            "model_not_found",
            Some("model"),
        ),
        (
            json!({"model": "synthetic", "messages": []}).to_string(),
            400,
            "empty_prompt",
            Some("messages"),
        ),
        (
            json!({"model": "synthetic", "messages": user(&long)}).to_string(),
            400,
            "context_length_exceeded",
            Some("messages"),
        ),
        (
            json!({"model": "synthetic", "messages": user("hi"), "temperature": 5}).to_string(),
            400,
            "invalid_params",
            None,
        ),
        (
            json!({"model": "synthetic", "messages": user("hi"), "max_tokens": 0}).to_string(),
            400,
            "invalid_params",
            None,
        ),
        (
            json!({"model": "synthetic", "messages": user("hi"), "max_completion_tokens": 100000})
                .to_string(),
            400,
            "invalid_params",
            None,
        ),
        (
            json!({"model": "synthetic", "messages": [{"role": "assistant", "content": "hi"}]})
                .to_string(),
            400,
            "invalid_params",
            None,
        ),
        (
            json!({"model": "synthetic", "messages": user("hi"), "n": 99}).to_string(),
            400,
            "invalid_value",
            Some("n"),
        ),
        (
            json!({"model": "synthetic", "messages": [{"role": "tool", "content": "x"}]})
                .to_string(),
            400,
            "missing_required_parameter",
            Some("messages"),
        ),
        (
            json!({"model": "synthetic", "messages": user("hi"), "stop": 7}).to_string(),
            400,
            "invalid_type",
            None,
        ),
    ];
    for (body, status, code, param) in table {
        let resp = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let v: Value = resp.json().await.unwrap();
        let e = &v["error"];
        assert_eq!(e["code"], code, "{body}: {v}");
        assert_eq!(e["param"].as_str(), param, "{body}: {v}");
        assert!(!e["message"].as_str().unwrap().is_empty(), "{v}");
        assert!(e["type"].is_string(), "{v}");
    }
    let resp = http
        .get(format!("{}/v1/models/gpt-9", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    // After all that, an ask still works.
    let resp = http
        .post(&url)
        .json(&json!({"model": "synthetic", "messages": user("hi"), "max_tokens": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 5, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}
