//! Structured output end to end against one node: the official `openai` and `ollama` Python
//! clients ask for JSON (json_object, json_schema as a dict and as a pydantic model, Ollama's
//! `format`), and every answer parses and validates against its schema (`jsonschema`); an
//! unsupported schema is a 400 that names the keyword.

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
