//! The REST workflow API end to end, as docs/rest.md shows it with curl: start, status, result,
//! history, cancel, and the errors on the way.

use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox, wait_for};
use crate::openai::PARIS;
use serde_json::{Value, json};
use std::time::Duration;

pub async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_lifecycle_start_status_result_history_cancel() {
    let sb = Sandbox::start().await;
    let node = sb.node("r1", DEFAULT_MODEL_CONFIG).await;
    let http = reqwest::Client::new();
    let base = format!("{}/api/asks", node.http);

    // Start: 202, an id, a Location.
    let r = http
        .post(&base)
        .json(&json!({"prompt": PARIS, "temperature": 0, "max_tokens": 20}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let started: Value = r.json().await.unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ask-"), "{started}");
    assert_eq!(location, format!("/api/asks/{id}"));
    assert_eq!(started["status"], "running");

    // Status answers at once while it runs or after.
    let (code, st) = get_json(&http, &format!("{base}/{id}")).await;
    assert_eq!(code, 200, "{st}");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["user"], "anonymous");
    assert_eq!(st["model"], "smollm2-135m");
    assert!(
        ["running", "completed"].contains(&st["status"].as_str().unwrap()),
        "{st}"
    );

    // The result, waiting for the end.
    let (code, res) = get_json(&http, &format!("{base}/{id}/result?wait=60")).await;
    assert_eq!(code, 200, "{res}");
    assert_eq!(res["status"], "completed", "{res}");
    assert!(
        res["text"].as_str().unwrap().contains("Paris"),
        "{res}\n{}",
        node.log()
    );
    assert_eq!(res["node"], "r1");
    assert!(res["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let (_, st) = get_json(&http, &format!("{base}/{id}")).await;
    assert_eq!(st["status"], "completed");
    assert_eq!(st["stage"], "done");
    assert_eq!(st["node"], "r1");
    assert!(st["closed_at"].is_string(), "{st}");

    // A long answer: it is seen generating, then cancelled.
    let r = http
        .post(&base)
        .json(
            &json!({"prompt": "Write a very long story about a dragon and a knight.",
                      "temperature": 0, "max_tokens": 1000}),
        )
        .send()
        .await
        .unwrap();
    let long_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, running) = get_json(&http, &format!("{base}/{long_id}/result")).await;
    assert_eq!(code, 202, "a running ask's result is not ready: {running}");
    let st = wait_for(
        "the long ask to show its text so far",
        Duration::from_secs(60),
        || {
            let (http, url) = (http.clone(), format!("{base}/{long_id}"));
            async move {
                let (_, st) = get_json(&http, &url).await;
                (st["stage"] == "generating"
                    && st["text_so_far"].as_str().is_some_and(|t| !t.is_empty()))
                .then_some(st)
            }
        },
    )
    .await;
    assert_eq!(st["node"], "r1");
    assert_eq!(st["status"], "running");
    let r = http
        .delete(format!("{base}/{long_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let (_, res) = get_json(&http, &format!("{base}/{long_id}/result?wait=30")).await;
    assert_eq!(res["status"], "cancelled", "{res}");
    let (_, st) = get_json(&http, &format!("{base}/{long_id}")).await;
    assert_eq!(st["status"], "cancelled");
    // Cancelling what has ended is a conflict.
    let r = http
        .delete(format!("{base}/{long_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "already_finished"
    );

    // History, from Temporal visibility: both asks, newest first.
    let hist = wait_for("both asks in the history", Duration::from_secs(30), || {
        let (http, url) = (http.clone(), format!("{base}?user=anonymous"));
        async move {
            let (_, h) = get_json(&http, &url).await;
            (h["asks"].as_array().map(Vec::len) == Some(2)).then_some(h)
        }
    })
    .await;
    assert_eq!(hist["asks"][0]["id"], long_id.as_str(), "{hist}");
    assert_eq!(hist["asks"][0]["status"], "cancelled");
    assert_eq!(hist["asks"][1]["id"], id.as_str());
    assert_eq!(hist["asks"][1]["status"], "completed");
    assert!(
        !node.log().contains("filtered from workflow memos"),
        "the dev server took the OrreryUser search attribute:\n{}",
        node.log()
    );

    // Errors.
    // (method, path, body, wanted status, wanted code)
    let table: &[(&str, String, Option<Value>, u16, &str)] = &[
        (
            "GET",
            format!("{base}/ask-00000000000000000000000000000000"),
            None,
            404,
            "unknown_request",
        ),
        (
            "GET",
            format!("{base}/not-an-ask"),
            None,
            404,
            "unknown_request",
        ),
        (
            "DELETE",
            format!("{base}/ask-00000000000000000000000000000000"),
            None,
            404,
            "unknown_request",
        ),
        (
            "GET",
            format!("{base}/ask-00000000000000000000000000000000/result"),
            None,
            404,
            "unknown_request",
        ),
        ("POST", base.clone(), Some(json!({})), 400, "missing_field"),
        (
            "POST",
            base.clone(),
            Some(json!({"prompt": "hi", "model": "gpt-9"})),
            400,
            "unknown_model",
        ),
        (
            "POST",
            base.clone(),
            Some(json!({"prompt": "hi", "temperature": 7})),
            400,
            "invalid_params",
        ),
        (
            "POST",
            base.clone(),
            Some(json!({"prompt": "hi", "colour": 1})),
            400,
            "invalid_params",
        ),
        (
            "GET",
            format!("{base}?user=somebody-else"),
            None,
            403,
            "forbidden",
        ),
        (
            "GET",
            format!("{}/api/nothing-here", node.http),
            None,
            404,
            "not_found",
        ),
    ];
    for (method, url, body, status, code) in table {
        let mut req = http.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), *status, "{method} {url}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], *code, "{method} {url}: {v}");
    }
}
