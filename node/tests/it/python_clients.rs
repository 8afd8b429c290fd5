//! The official Python client libraries, unchanged, against a running node with API keys: the
//! `openai` client lists the models and gets streamed and non-streamed answers; so does the
//! `ollama` client through the Ollama-compatible endpoints.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox};
use crate::pytools;
use serde_json::Value;

const KEY: &str = "sk-python-client-0123456789";

fn last_json(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("one JSON line")
}

#[tokio::test(flavor = "multi_thread")]
async fn official_python_clients_work_unchanged() {
    let (openai, ollama) = tokio::task::spawn_blocking(|| {
        (
            pytools::ensure(pytools::OPENAI),
            pytools::ensure(pytools::OLLAMA),
        )
    })
    .await
    .unwrap();
    let sb = Sandbox::start().await;
    let keys = format!("{KEY}:pat:premium");
    let node = sb
        .node_with_env("py1", DEFAULT_MODEL_CONFIG, &[("ORRERY_API_KEYS", &keys)])
        .await;

    let base = node.http.clone();
    let out = tokio::task::spawn_blocking(move || {
        pytools::run_script("openai_client.py", &[&base, KEY], &[&openai])
    })
    .await
    .unwrap();
    let v = last_json(&out);
    assert!(
        v["text"].as_str().unwrap().contains("Paris"),
        "{v}\n{}",
        node.log()
    );
    assert_eq!(v["text"], v["streamed"]);
    assert_eq!(v["errors"]["unknown_model"][0], 404, "{v}");
    assert_eq!(v["errors"]["bad_temperature"][0], 400, "{v}");
    assert_eq!(v["errors"]["wrong_key"][0], 401, "{v}");

    let base = node.http.clone();
    let out = tokio::task::spawn_blocking(move || {
        pytools::run_script("ollama_client.py", &[&base, KEY], &[&ollama])
    })
    .await
    .unwrap();
    let v = last_json(&out);
    assert!(v["text"].as_str().unwrap().contains("Paris"), "{v}");
    assert!(v["generate"].as_str().unwrap().contains("Paris"), "{v}");
    assert_eq!(v["loaded"][0], "smollm2-135m:latest", "{v}");
    assert_eq!(v["unknown_model_status"], 404, "{v}");
}
