//! docs/websocket.md and the typed frames agree: every frame type on both sides, and every field
//! of every server frame.

use super::*;
use crate::protocol::AskOutcome;
use std::collections::{BTreeMap, BTreeSet};

const DOC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/websocket.md"));

/// The rows of the table under `heading`: frame type → the fields its row names.
fn table(heading: &str) -> BTreeMap<String, BTreeSet<String>> {
    let section = DOC.split(heading).nth(1).expect("section present");
    let mut rows = BTreeMap::new();
    for line in section.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        // `\|` inside a cell is an escaped bar, not a column.
        let line = line.replace("\\|", "/");
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(kind) = cells
            .get(1)
            .and_then(|c| c.strip_prefix('`')?.strip_suffix('`'))
        else {
            continue; // the header and the separator
        };
        rows.insert(
            kind.to_string(),
            fields(cells.get(2).copied().unwrap_or("")),
        );
    }
    rows
}

/// The backticked names of a fields cell, leaving out what is in parentheses (value lists,
/// nested shapes and remarks).
fn fields(cell: &str) -> BTreeSet<String> {
    let mut top = String::new();
    let mut depth = 0;
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if depth == 0 => top.push(c),
            _ => {}
        }
    }
    top.split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(String::from)
        .collect()
}

fn one_of_each() -> Vec<ServerFrame> {
    let id = RequestId::new("ask-1");
    let outcome = AskOutcome {
        text: "Paris.".into(),
        node: NodeId::new("n"),
        model: ModelId::new("m"),
        finish_reason: FinishReason::Stop,
        prompt_tokens: 1,
        completion_tokens: 2,
        first_token_ms: 3,
        total_ms: 4,
        attempts: 1,
        tool_calls: Vec::new(),
        cached_tokens: 0,
        logprobs: Vec::new(),
        embeddings: Vec::new(),
    };
    let entry = ModelEntry {
        id: ModelId::new("m"),
        kind: "gguf",
        loaded: true,
    };
    vec![
        ServerFrame::Hello {
            node: NodeId::new("n"),
            models: vec![entry.clone()],
            default_model: ModelId::new("m"),
            temporal_ui: None,
            limits: FrameLimits {
                max_prompt_chars: 1,
                max_tokens: 1,
            },
            cluster: vec![],
        },
        ServerFrame::Accepted {
            request_id: id.clone(),
            workflow_id: id.clone(),
            workflow_url: None,
            client_id: None,
        },
        ServerFrame::live(
            &id,
            LiveEvent::Status(LiveStage::Generating {
                node: NodeId::new("n"),
            }),
        ),
        ServerFrame::live(
            &id,
            LiveEvent::Status(LiveStage::Queued {
                position: 1,
                estimated_wait_ms: 2,
            }),
        ),
        ServerFrame::live(
            &id,
            LiveEvent::Chunk {
                offset: 0,
                text: "P".into(),
                logprobs: Vec::new(),
            },
        ),
        ServerFrame::end(&id, AskEnd::Done(outcome), None, 9),
        ServerFrame::end(
            &id,
            AskEnd::Failed {
                code: "internal".into(),
                message: "x".into(),
            },
            None,
            0,
        ),
        ServerFrame::end(&id, AskEnd::Cancelled, Some("P".into()), 0),
        ServerFrame::Models {
            models: vec![entry],
            default_model: ModelId::new("m"),
        },
        ServerFrame::Pong,
        ServerFrame::Cluster { nodes: vec![] },
        ServerFrame::error(&ApiError::new("bad_json", "x"), Some("c"), Some(&id)),
        ServerFrame::WorkflowAccepted {
            workflow_id: "report-1".into(),
            kind: FlowKind::Report,
            workflow_url: None,
            client_id: None,
        },
        ServerFrame::WorkflowProgress {
            workflow_id: "report-1".into(),
            kind: FlowKind::Report,
            status: "running",
            current_step: Some("content".into()),
            percent: 0,
            eta_ms: None,
            steps: vec![],
            children: vec![],
            created_at: None,
            closed_at: None,
        },
        ServerFrame::workflow_end(
            "report-1".into(),
            FlowKind::Report,
            crate::flows::FlowEnd::Cancelled,
        ),
        ServerFrame::event(
            serde_json::json!({"workflow_id": "report-1", "kind": "report",
                                              "status": "completed", "summary": {}}),
        ),
    ]
}

#[test]
fn every_server_frame_is_documented_with_its_fields() {
    let doc = table("## Server → client");
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for frame in one_of_each() {
        let v = serde_json::to_value(&frame).unwrap();
        let kind = v["type"].as_str().unwrap().to_string();
        let keys = v.as_object().unwrap().keys().filter(|k| *k != "type");
        seen.entry(kind).or_default().extend(keys.cloned());
    }
    assert_eq!(
        doc.keys().collect::<Vec<_>>(),
        seen.keys().collect::<Vec<_>>(),
        "frame types"
    );
    for (kind, fields) in &seen {
        assert_eq!(&doc[kind], fields, "fields of `{kind}`");
    }
}

#[test]
fn every_client_frame_is_documented_and_parses() {
    let doc = table("## Client → server");
    let documented: Vec<&str> = doc.keys().map(String::as_str).collect();
    assert_eq!(documented, CLIENT_TYPES.to_vec());
    let ask_fields: String = doc["ask"]
        .iter()
        .filter(|f| *f != "messages")
        .map(|f| match f.as_str() {
            "model" | "prompt" | "client_id" => format!(r#""{f}": "x""#),
            "priority" => r#""priority": "low""#.into(),
            "stop" => r#""stop": ["x"]"#.into(),
            _ => format!(r#""{f}": 1"#),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let frame = format!(r#"{{"type": "ask", {ask_fields}}}"#);
    assert!(
        matches!(ClientFrame::parse(&frame), Ok(ClientFrame::Ask(_))),
        "{frame}"
    );
    let cases = [
        (r#"{"type": "ping"}"#, None),
        (r#"{"type": "models"}"#, None),
        (r#"{"type": "cancel", "request_id": "ask-1"}"#, None),
        (
            r#"{"type": "run_workflow", "kind": "report", "prompt": "x"}"#,
            None,
        ),
        (
            r#"{"type": "cancel_workflow", "workflow_id": "report-1"}"#,
            None,
        ),
        ("not json", Some("bad_json")),
        (r#"{"no": "type"}"#, Some("missing_field")),
        (r#"{"type": "dance"}"#, Some("unknown_type")),
        (
            r#"{"type": "ask", "promt": "typo"}"#,
            Some("invalid_params"),
        ),
    ];
    for (text, want) in cases {
        let got = ClientFrame::parse(text).err().map(|(e, _)| e.code);
        assert_eq!(got.as_deref(), want, "{text}");
    }
}
