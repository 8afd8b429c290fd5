//! Every parser that takes outside input, fed arbitrary and mutated input: WebSocket frames, the
//! ask fields of the WS and REST APIs, OpenAI chat bodies (and their response formats),
//! cluster.toml, keys files and ORRERY_API_KEYS, payload keys (ORRERY_PAYLOAD_KEYS and their files), Host and Origin headers, live chunks. None may
//! panic: bad input is an error value, never a crash of the node. (GGUF headers: orrery-cpu's
//! hostile-file tests.)

use crate::asks::AskFields;
use crate::config::{Config, Overrides};
use crate::http::openai::{ChatRequest, to_ask};
use crate::http::ws::ClientFrame;
use crate::users::keys::KeyStore;
use proptest::prelude::*;
use std::collections::HashMap;

/// JSON-ish text: valid JSON of the right shapes, mutated at random.
fn jsonish() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "type",
        "model",
        "prompt",
        "messages",
        "max_tokens",
        "temperature",
        "top_p",
        "seed",
        "stop",
        "priority",
        "client_id",
        "request_id",
        "role",
        "content",
        "response_format",
        "json_schema",
        "schema",
        "n",
        "tools",
        "stream",
        "user",
    ]);
    let values = prop_oneof![
        Just("null".to_string()),
        Just("\"ask\"".to_string()),
        Just("\"user\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        "\\PC{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap_or_default()),
        Just("[{\"role\":\"user\",\"content\":\"hi\"}]".to_string()),
        Just(
            "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"object\"}}}".into()
        ),
        Just("[]".to_string()),
        Just("{}".to_string()),
    ];
    let object = prop::collection::vec((keys, values), 0..8).prop_map(|kv| {
        let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", fields.join(","))
    });
    (object, any::<u8>(), 0usize..64).prop_map(|(text, byte, at)| {
        // Sometimes cut or corrupt it.
        let mut bytes = text.into_bytes();
        match byte % 4 {
            0 if !bytes.is_empty() => bytes.truncate(at % bytes.len()),
            1 if !bytes.is_empty() => {
                let i = at % bytes.len();
                bytes[i] = byte;
            }
            _ => {}
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ws_frames_never_panic(text in prop_oneof![jsonish(), "\\PC{0,64}"]) {
        let _ = ClientFrame::parse(&text);
    }

    #[test]
    fn ask_fields_never_panic(text in jsonish()) {
        if let Ok(f) = serde_json::from_str::<AskFields>(&text) {
            let _ = f.into_request();
        }
    }

    #[test]
    fn openai_bodies_never_panic(text in jsonish()) {
        if let Ok(r) = serde_json::from_str::<ChatRequest>(&text) {
            let _ = to_ask(r);
        }
    }

    #[test]
    fn cluster_toml_never_panics(text in "(\\[[a-z.]{0,12}\\]\n|[a-z_]{1,12} = (\"\\PC{0,8}\"|[0-9]{1,6}|true|\\[\\])\n){0,8}") {
        let _ = Config::resolve(Some(&text), &HashMap::new(), &Overrides::default());
    }

    #[test]
    fn keys_never_panic(file in "(\\[\\[keys\\]\\]\n|[a-z_0-9]{1,10} = \"\\PC{0,70}\"\n){0,6}",
                        env in "[a-zA-Z0-9:,\n_-]{0,80}") {
        let _ = KeyStore::parse(Some(&file), Some(&env));
    }

    #[test]
    fn payload_keys_never_panic(
        text in prop_oneof![
            "\\PC{0,120}",
            "([a-z0-9_. -]{0,8}:[A-Za-z0-9+/=]{0,48}[,\n#]?){0,4}",
        ],
    ) {
        if let Ok(ring) = crate::codec::Keyring::parse(&text) {
            // Whatever parses is a usable keyring that round trips through its file form.
            prop_assert_eq!(crate::codec::Keyring::parse(&ring.to_file_text()), Ok(ring));
        }
    }

    #[test]
    fn hosts_and_origins_never_panic(host in "\\PC{0,40}", origin in "\\PC{0,40}") {
        let bind = "127.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!());
        let _ = crate::http::guard_host_allowed(bind, Some(&host), &[]);
        let _ = crate::http::guard_origin_allowed(&origin, Some(&host), &[]);
    }

    #[test]
    fn live_chunks_never_panic(chunks in prop::collection::vec((0usize..40, "\\PC{0,8}"), 0..20)) {
        let (mut shown, mut chars) = (String::new(), 0);
        for (offset, text) in chunks {
            crate::actors::broadcaster::apply_chunk(&mut shown, &mut chars, offset, &text);
            prop_assert_eq!(shown.chars().count(), chars);
        }
    }
}
