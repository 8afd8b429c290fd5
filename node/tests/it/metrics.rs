//! `/metrics` after real asks: the Prometheus text parses, and carries every metric the README's
//! "Metrics" table documents (the table is read from the README, so the two cannot drift apart).

use crate::harness::{Client, Sandbox, workspace_root};
use crate::openai::SYNTHETIC_CONFIG;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// The `orrery_*` names in the README's "### Metrics" section.
fn documented_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme
        .find("### Metrics")
        .expect("a Metrics section in the README");
    let section = &readme[start + 3..];
    let section = &section[..section.find("\n#").unwrap_or(section.len())];
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("orrery_"))
        .map(String::from)
        .collect()
}

/// Metric families by name with their `# TYPE`, and every sample line checked for shape.
fn parse_prometheus(text: &str) -> BTreeMap<String, String> {
    let mut families = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            families.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            assert!(
                value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                "bad sample value: {line}"
            );
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name: {line}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "bad labels: {line}"
                );
            }
        }
    }
    families
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_carry_every_documented_name_after_real_asks() {
    let documented = documented_metrics();
    assert!(documented.len() >= 20, "{documented:?}");
    let sb = Sandbox::start().await;
    let node = sb
        .node_with_env(
            "m1",
            &format!("{SYNTHETIC_CONFIG}\n[auth.tiers.free]\nmax_concurrent = 1\n"),
            &[("ORRERY_API_KEYS", "sk-metrics-0123456789:mia:free")],
        )
        .await;
    let http = reqwest::Client::new();
    let key = "sk-metrics-0123456789";
    // A WebSocket ask, an OpenAI stream, an Ollama chat, a REST ask, a refused key and a refused
    // second ask: every path that counts something.
    let ws = format!("{}?api_key={key}", node.ws_url());
    let (sock, _) = tokio_tungstenite::connect_async(ws).await.unwrap();
    let mut c = Client { ws: sock };
    let _hello = c.next().await;
    c.send(json!({"type": "ask", "prompt": "hi", "max_tokens": 8}))
        .await;
    c.until("done").await;
    let r = http
        .post(format!("{}/v1/chat/completions", node.http))
        .bearer_auth(key)
        .json(
            &json!({"model": "synthetic", "stream": true, "max_tokens": 8,
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("[DONE]"));
    let r = http
        .post(format!("{}/api/chat", node.http))
        .bearer_auth(key)
        .json(
            &json!({"model": "synthetic", "stream": false, "options": {"num_predict": 8},
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{}/api/asks", node.http))
        .bearer_auth(key)
        .json(&json!({"prompt": "a long one", "max_tokens": 1000}))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = http
        .post(format!("{}/api/asks", node.http))
        .bearer_auth(key)
        .json(&json!({"prompt": "another"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let unauthorized = http
        .get(format!("{}/v1/models", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let res: Value = http
        .get(format!("{}/api/asks/{id}/result?wait=60", node.http))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["status"], "completed", "{res}");

    // The node's resource sampler sets queue depth and active sequences on its next tick.
    let families = crate::harness::wait_for(
        "every documented metric in /metrics",
        std::time::Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), format!("{}/metrics", node.http));
            let documented = documented.clone();
            async move {
                let r = http.get(url).send().await.ok()?;
                let ctype = r.headers()["content-type"].to_str().ok()?.to_string();
                assert!(ctype.starts_with("text/plain"), "{ctype}");
                let families = parse_prometheus(&r.text().await.ok()?);
                let missing: Vec<&String> = documented
                    .iter()
                    .filter(|m| !families.contains_key(*m))
                    .collect();
                if !missing.is_empty() {
                    eprintln!("not in /metrics yet: {missing:?}");
                }
                missing.is_empty().then_some(families)
            }
        },
    )
    .await;
    let undocumented: Vec<&String> = families
        .keys()
        .filter(|m| m.starts_with("orrery_") && !documented.contains(*m))
        .collect();
    assert!(
        undocumented.is_empty(),
        "metrics missing from the README: {undocumented:?}"
    );
    assert_eq!(families["orrery_http_requests_total"], "counter");
    assert_eq!(families["orrery_time_to_first_token_seconds"], "histogram");
    let text = http
        .get(format!("{}/metrics", node.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        r#"orrery_http_requests_total{route="/v1/chat/completions",status="200"}"#,
        r#"orrery_http_requests_total{route="/api/asks",status="429"}"#,
        r#"orrery_http_requests_total{route="/v1/models",status="401"}"#,
        r#"orrery_requests_total{outcome="done"}"#,
        r#"orrery_rate_limited_total{reason="concurrency"}"#,
        r#"orrery_api_asks_total{api="openai"}"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}
