//! Tests of the remote backends' wire formats: stream lines, request bodies, secrets.

use super::*;

#[test]
fn stream_lines_parse_by_table() {
    use Line::*;
    let cases: Vec<(RemoteKind, &str, Vec<Line>)> = vec![
        (RemoteKind::OpenAi, ": keep-alive", vec![Nothing]),
        (RemoteKind::OpenAi, "data: [DONE]", vec![End]),
        (
            RemoteKind::OpenAi,
            r#"data: {"choices":[{"delta":{"content":"Pa"},"finish_reason":null}]}"#,
            vec![Text("Pa".into())],
        ),
        (
            RemoteKind::OpenAi,
            r#"data: {"choices":[{"delta":{},"finish_reason":"length"}]}"#,
            vec![Finish(FinishReason::Length)],
        ),
        (
            RemoteKind::OpenAi,
            r#"data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            vec![Usage {
                prompt: 7,
                completion: 3,
            }],
        ),
        (
            RemoteKind::Ollama,
            r#"{"message":{"role":"assistant","content":"ris"},"done":false}"#,
            vec![Text("ris".into())],
        ),
        (
            RemoteKind::Ollama,
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":5,"eval_count":2}"#,
            vec![
                Usage {
                    prompt: 5,
                    completion: 2,
                },
                Finish(FinishReason::Stop),
                End,
            ],
        ),
    ];
    for (kind, line, want) in cases {
        assert_eq!(parse_line(kind, line).unwrap(), want, "{line}");
    }
    assert!(parse_line(RemoteKind::OpenAi, "data: {nope").is_err());
    assert!(parse_line(RemoteKind::Ollama, r#"{"error":"model not found"}"#).is_err());
}

#[test]
fn response_formats_pass_through_in_schema_order() {
    let schema =
        r#"{"type":"object","properties":{"zeta":{"type":"string"},"alpha":{"type":"integer"}}}"#;
    let json_schema = ResponseFormat::JsonSchema {
        name: "person".into(),
        schema_text: schema.into(),
        strict: true,
    };
    // (backend, format, key, the value it should get)
    let table = [
        (
            RemoteKind::OpenAi,
            ResponseFormat::JsonObject,
            "response_format",
            json!({"type": "json_object"}),
        ),
        (
            RemoteKind::OpenAi,
            json_schema.clone(),
            "response_format",
            json!({"type": "json_schema", "json_schema": {"name": "person", "strict": true,
                   "schema": serde_json::from_str::<Value>(schema).unwrap()}}),
        ),
        (
            RemoteKind::Ollama,
            ResponseFormat::JsonObject,
            "format",
            json!("json"),
        ),
        (
            RemoteKind::Ollama,
            json_schema.clone(),
            "format",
            serde_json::from_str::<Value>(schema).unwrap(),
        ),
    ];
    for (kind, format, key, want) in table {
        let text = with_format(json!({"model": "m", "stream": true}), kind, Some(&format));
        let got: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(got[key], want, "{kind:?} {format:?}: {text}");
        assert_eq!(got["model"], "m");
        if matches!(format, ResponseFormat::JsonSchema { .. }) {
            assert!(text.find("zeta") < text.find("alpha"), "order kept: {text}");
        }
    }
    let plain = with_format(json!({"model": "m"}), RemoteKind::OpenAi, None);
    assert_eq!(plain, r#"{"model":"m"}"#);
}

#[test]
fn api_keys_stay_out_of_debug_output() {
    let cfg = RemoteConfig {
        kind: RemoteKind::OpenAi,
        base_url: "http://x".into(),
        remote_model: "m".into(),
        api_key: Some("sk-secret".into()),
        max_sequences: 4,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(1),
        attempts: 1,
    };
    assert!(!format!("{cfg:?}").contains("sk-secret"));
}
