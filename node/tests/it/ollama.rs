//! The Ollama-compatible endpoints over real HTTP, against a real node and the real model:
//! NDJSON streams and single answers, the model lists, and errors in Ollama's shape.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox};
use crate::openai::PARIS;
use serde_json::{Value, json};

fn ndjson(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_api_chats_generates_and_lists_models() {
    let sb = Sandbox::start().await;
    let node = sb.node("ol1", DEFAULT_MODEL_CONFIG).await;
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{}{path}", node.http));
        async move {
            let r = http.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let tags = get("/api/tags").await;
    assert_eq!(tags["models"][0]["name"], "smollm2-135m:latest", "{tags}");
    assert_eq!(tags["models"][0]["details"]["format"], "gguf");
    let ps = get("/api/ps").await;
    assert_eq!(ps["models"][0]["model"], "smollm2-135m:latest", "{ps}");
    assert!(ps["models"][0]["size"].as_u64().unwrap() > 0, "{ps}");
    assert!(get("/api/version").await["version"].is_string());

    let options = json!({"temperature": 0, "num_predict": 20});
    let messages = json!([{"role": "system", "content": "You are a helpful assistant."},
                          {"role": "user", "content": PARIS}]);
    // /api/chat, not streamed.
    let r = http
        .post(format!("{}/api/chat", node.http))
        .json(&json!({"model": "smollm2-135m", "messages": messages, "stream": false, "options": options}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let answer = v["message"]["content"].as_str().unwrap().to_string();
    assert!(answer.contains("Paris"), "{v}\n{}", node.log());
    assert_eq!(v["done"], true);
    assert!(v["eval_count"].as_u64().unwrap() > 0);
    assert!(v["prompt_eval_count"].as_u64().unwrap() > 0);
    assert!(v["total_duration"].as_u64().unwrap() > 0);
    assert!(matches!(v["done_reason"].as_str(), Some("stop" | "length")));

    // /api/chat streamed (the default): NDJSON pieces, then the done line.
    let r = http
        .post(format!("{}/api/chat", node.http))
        .json(&json!({"model": "smollm2-135m:latest", "messages": messages, "options": options}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let lines = ndjson(&r.text().await.unwrap());
    assert!(lines.len() > 3, "{lines:?}");
    let (last, pieces) = lines.split_last().unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["model"], "smollm2-135m:latest");
    assert!(pieces.iter().all(|p| p["done"] == false));
    let streamed: String = pieces
        .iter()
        .map(|p| p["message"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, answer);

    // /api/generate, streamed and not.
    let gen_body = json!({"model": "smollm2-135m", "prompt": PARIS,
                          "system": "You are a helpful assistant.", "options": options});
    let r = http
        .post(format!("{}/api/generate", node.http))
        .json(&gen_body)
        .send()
        .await
        .unwrap();
    let lines = ndjson(&r.text().await.unwrap());
    let streamed: String = lines
        .iter()
        .map(|p| p["response"].as_str().unwrap())
        .collect();
    assert!(streamed.contains("Paris"), "{lines:?}");
    assert_eq!(lines.last().unwrap()["done"], true);
    let mut once = gen_body.clone();
    once["stream"] = json!(false);
    let v: Value = http
        .post(format!("{}/api/generate", node.http))
        .json(&once)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["response"].as_str().unwrap(), streamed);
    // An empty prompt only loads the model, as in Ollama.
    let v: Value = http
        .post(format!("{}/api/generate", node.http))
        .json(&json!({"model": "smollm2-135m"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["done_reason"], "load");

    // Errors: {"error": "..."} with Ollama's statuses.
    // (path, body, wanted status)
    let table: &[(&str, &str, u16)] = &[
        (
            "/api/chat",
            r#"{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}"#,
            404,
        ),
        ("/api/generate", r#"{"model": "nope", "prompt": "hi"}"#, 404),
        ("/api/chat", "{oops", 400),
        ("/api/chat", r#"{"messages": []}"#, 400),
        (
            "/api/chat",
            r#"{"model": "smollm2-135m", "messages": [{"role": "wizard", "content": "x"}]}"#,
            400,
        ),
        (
            "/api/chat",
            r#"{"model": "smollm2-135m", "messages": []}"#,
            400,
        ),
        (
            "/api/chat",
            r#"{"model": "smollm2-135m", "messages": [{"role": "user", "content": "hi"}], "options": {"temperature": 9}}"#,
            400,
        ),
    ];
    for (path, body, status) in table {
        let r = http
            .post(format!("{}{path}", node.http))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), *status, "{path} {body}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path} {body}: {v}"
        );
    }
}
