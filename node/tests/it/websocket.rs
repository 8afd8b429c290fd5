//! The walking skeleton end to end: WebSocket → Temporal workflow → actors → candle → WebSocket.

use crate::harness::{Client, DEFAULT_MODEL_CONFIG, Sandbox, apply_chunks};
use orrery::workflows::AskWorkflow;
use serde_json::json;
use temporalio_client::{WorkflowExecutionStatus, WorkflowGetResultOptions};
use tokio_tungstenite::tungstenite::Message;

pub async fn temporal_client(sb: &Sandbox) -> temporalio_client::Client {
    let overrides = orrery::config::Overrides {
        temporal_address: Some(sb.temporal.address.clone()),
        embedded: Some(false),
        ..Default::default()
    };
    let config = orrery::config::Config::resolve(None, &Default::default(), &overrides).unwrap();
    orrery::temporal::connect(&config, "test", std::time::Duration::from_secs(30))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn paris_streams_over_websocket_and_is_the_workflow_result() {
    let sb = Sandbox::start().await;
    let node = sb.node("n1", DEFAULT_MODEL_CONFIG).await;
    let (mut c, hello) = Client::connect(&node).await;
    assert_eq!(hello["node"], "n1");
    assert_eq!(hello["default_model"], "smollm2-135m");

    c.send(
        json!({"type": "ask", "client_id": "q1", "prompt": "What is the capital of France?",
                  "temperature": 0, "max_tokens": 40}),
    )
    .await;
    let (accepted, _) = c.until("accepted").await;
    assert_eq!(accepted["client_id"], "q1");
    let id = accepted["request_id"].as_str().unwrap().to_string();
    let (done, frames) = c.until("done").await;
    let streamed = apply_chunks(&frames, &id);
    let text = done["text"].as_str().unwrap();
    assert_eq!(streamed, text, "streamed chunks join to exactly the answer");
    assert!(
        text.contains("Paris"),
        "answer: {text}\nnode log:\n{}",
        node.log()
    );
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "status" && f["stage"] == "generating" && f["node"] == "n1")
    );
    assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // The durable record: the workflow completed in Temporal with the same answer.
    let client = temporal_client(&sb).await;
    let handle = client.get_workflow_handle::<AskWorkflow>(id.clone());
    let outcome = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert_eq!(outcome.text, text);
    let desc = handle.describe(Default::default()).await.unwrap();
    assert_eq!(desc.status(), WorkflowExecutionStatus::Completed);
    let stage = handle
        .query(AskWorkflow::stage, (), Default::default())
        .await
        .unwrap();
    assert_eq!(stage, orrery::workflows::AskStage::Done);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_mid_stream_ends_cancelled_and_stops_generating() {
    let sb = Sandbox::start().await;
    let node = sb.node("n1", DEFAULT_MODEL_CONFIG).await;
    let (mut c, _) = Client::connect(&node).await;
    c.send(
        json!({"type": "ask", "prompt": "Write a very long story about a dragon and a knight.",
                  "temperature": 0, "max_tokens": 1000}),
    )
    .await;
    let (accepted, _) = c.until("accepted").await;
    let id = accepted["request_id"].as_str().unwrap().to_string();
    let (first, _) = c.until("chunk").await;
    assert_eq!(first["request_id"], id.as_str());
    c.send(json!({"type": "cancel", "request_id": id})).await;
    let (end, frames) = c.until("cancelled").await;
    assert_eq!(end["request_id"], id.as_str());
    let after_cancel = frames.iter().filter(|f| f["type"] == "chunk").count();
    assert!(
        after_cancel < 1000,
        "generation stopped well before max_tokens"
    );

    let client = temporal_client(&sb).await;
    let desc = client
        .get_workflow_handle::<AskWorkflow>(id.clone())
        .describe(Default::default())
        .await
        .unwrap();
    assert_eq!(desc.status(), WorkflowExecutionStatus::Canceled);

    // The socket is still usable.
    c.send(json!({"type": "ping"})).await;
    let (pong, _) = c.until("pong").await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_error_frames_and_the_socket_still_answers() {
    let sb = Sandbox::start().await;
    let node = sb.node("n1", DEFAULT_MODEL_CONFIG).await;
    let (mut c, _) = Client::connect(&node).await;
    let long = "x".repeat(20_000);
    let cases: Vec<(Message, &str)> = vec![
        (Message::Text("{not json".into()), "bad_json"),
        (Message::Binary(vec![1u8, 2, 3].into()), "binary_frame"),
        (
            Message::Text(json!({"type": "dance"}).to_string().into()),
            "unknown_type",
        ),
        (
            Message::Text(json!({"prompt": "hi"}).to_string().into()),
            "missing_field",
        ),
        (
            Message::Text(json!({"type": "ask"}).to_string().into()),
            "missing_field",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "model": "gpt-9"})
                    .to_string()
                    .into(),
            ),
            "unknown_model",
        ),
        (
            Message::Text(json!({"type": "ask", "prompt": "   "}).to_string().into()),
            "empty_prompt",
        ),
        (
            Message::Text(json!({"type": "ask", "prompt": long}).to_string().into()),
            "prompt_too_long",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "temperature": 5})
                    .to_string()
                    .into(),
            ),
            "invalid_params",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "max_tokens": 0})
                    .to_string()
                    .into(),
            ),
            "invalid_params",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "top_p": 0})
                    .to_string()
                    .into(),
            ),
            "invalid_params",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "max_tokens": "lots"})
                    .to_string()
                    .into(),
            ),
            "invalid_params",
        ),
        (
            Message::Text(
                json!({"type": "ask", "prompt": "hi", "colour": "red"})
                    .to_string()
                    .into(),
            ),
            "invalid_params",
        ),
        (
            Message::Text(json!({"type": "cancel"}).to_string().into()),
            "missing_field",
        ),
        (
            Message::Text(
                json!({"type": "cancel", "request_id": "ask-nope"})
                    .to_string()
                    .into(),
            ),
            "unknown_request",
        ),
    ];
    for (frame, code) in cases {
        let shown = format!("{frame:?}");
        c.send_raw(frame).await;
        let (err, _) = c.until("error").await;
        assert_eq!(err["code"], code, "frame {shown} got {err}");
        assert!(!err["message"].as_str().unwrap().is_empty());
    }
    c.send(json!({"type": "ask", "prompt": "What is the capital of France?", "temperature": 0, "max_tokens": 30}))
        .await;
    let (done, _) = c.until("done").await;
    assert!(done["text"].as_str().unwrap().contains("Paris"), "{done}");
}

/// The event types of an ask's workflow history, in order.
pub async fn history_events(sb: &Sandbox, id: &str) -> Vec<String> {
    let client = temporal_client(sb).await;
    let history = client
        .get_workflow_handle::<AskWorkflow>(id.to_string())
        .fetch_history(Default::default())
        .into_events()
        .await
        .unwrap();
    history
        .iter()
        .map(|e| format!("{:?}", e.event_type()))
        .collect()
}

/// Every event of a workflow's history, as debug text (for worker identities and the like).
pub async fn history_events_debug(sb: &Sandbox, id: &str) -> Vec<String> {
    let client = temporal_client(sb).await;
    let history = client
        .get_workflow_handle::<orrery::workflows::ResourceManagementWorkflow>(id.to_string())
        .fetch_history(Default::default())
        .into_events()
        .await
        .unwrap();
    history.iter().map(|e| format!("{e:?}")).collect()
}
