//! Resolution: precedence, defaults, and a failing case for every class of error.

use super::*;
use crate::users::Tier;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_give_one_node_with_the_default_model() {
    let c = Config::resolve(None, &env(&[]), &Overrides::default()).unwrap();
    assert_eq!(c.node_id.as_str(), "node-1");
    assert_eq!(c.http.to_string(), "127.0.0.1:8080");
    assert_eq!(c.default_model.as_str(), DEFAULT_MODEL_ID);
    assert_eq!(
        c.models[0].source,
        ModelSource::Package {
            package: DEFAULT_MODEL_PACKAGE.into(),
            file: DEFAULT_MODEL_FILE.into()
        }
    );
    assert_eq!(c.temporal_address(), "127.0.0.1:7233");
}

#[test]
fn precedence_is_file_then_env_then_cli() {
    let file = "[node]\nid = \"from-file\"\nhttp = \"127.0.0.1:1000\"\n";
    // (environment, CLI node id, wanted node id, wanted http address)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str, &'a str);
    let table: &[Case] = &[
        (&[], None, "from-file", "127.0.0.1:1000"),
        (
            &[
                ("ORRERY_NODE_ID", "from-env"),
                ("ORRERY_HTTP", "127.0.0.1:2000"),
            ],
            None,
            "from-env",
            "127.0.0.1:2000",
        ),
        (
            &[("ORRERY_NODE_ID", "from-env")],
            Some("from-cli"),
            "from-cli",
            "127.0.0.1:1000",
        ),
    ];
    for (e, cli_id, want_id, want_http) in table {
        let o = Overrides {
            node_id: cli_id.map(String::from),
            ..Default::default()
        };
        let c = Config::resolve(Some(file), &env(e), &o).unwrap();
        assert_eq!(c.node_id.as_str(), *want_id);
        assert_eq!(c.http.to_string(), *want_http);
    }
}

#[test]
fn every_error_is_reported_at_once() {
    let file = r#"
[node]
id = "bad id!"
http = "nowhere"
[[models]]
id = "m"
source = "ftp:x"
[limits]
max_tokens = 0
"#;
    let err = Config::resolve(Some(file), &env(&[]), &Overrides::default()).unwrap_err();
    assert_eq!(err.0.len(), 4, "{err}");
}

#[test]
fn unknown_fields_are_rejected() {
    let err = Config::resolve(
        Some("[node]\nidd = \"x\"\n"),
        &env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("idd"), "{err}");
}

#[test]
fn embedded_temporal_uses_the_address_port() {
    let o = Overrides {
        embedded: Some(true),
        temporal_address: Some("127.0.0.1:7300".into()),
        ..Default::default()
    };
    let c = Config::resolve(None, &env(&[]), &o).unwrap();
    assert_eq!(
        c.temporal.target,
        TemporalTarget::Embedded {
            port: 7300,
            ui_port: 8300
        }
    );
    assert_eq!(c.temporal_ui_url().unwrap(), "http://127.0.0.1:8300");
}

#[test]
fn a_clustered_node_needs_a_cookie() {
    let o = Overrides {
        cluster_listen: Some("127.0.0.2:7400".into()),
        ..Default::default()
    };
    let err = Config::resolve(None, &env(&[]), &o).unwrap_err();
    assert!(err.to_string().contains("ORRERY_CLUSTER_COOKIE"), "{err}");
    let c = Config::resolve(
        None,
        &env(&[
            (
                "ORRERY_CLUSTER_COOKIE",
                "c00kie-c00kie-c00kie-c00kie-c00kie",
            ),
            ("ORRERY_CLUSTER_SEEDS", "127.0.0.3:7400, 127.0.0.4:7400"),
        ]),
        &o,
    )
    .unwrap();
    assert_eq!(c.cluster.seeds, vec!["127.0.0.3:7400", "127.0.0.4:7400"]);
    assert!(!format!("{c:?}").contains("c00kie"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let c = Config::resolve(
        None,
        &env(&[("ORRERY_TEMPORAL_API_KEY", "sekrit")]),
        &Overrides::default(),
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("sekrit"));
}

#[test]
fn auth_settings_come_from_file_and_env() {
    let file =
        "[auth]\nkeys_file = \"/etc/keys.toml\"\n[auth.tiers.free]\nrequests_per_minute = 5\n";
    // (environment, wanted keys file, wanted allow_anonymous, wanted env keys present)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, bool, bool);
    let table: &[Case] = &[
        (&[], "/etc/keys.toml", false, false),
        (
            &[
                ("ORRERY_API_KEYS_FILE", "/k.toml"),
                ("ORRERY_ALLOW_ANONYMOUS", "true"),
            ],
            "/k.toml",
            true,
            false,
        ),
        (
            &[("ORRERY_API_KEYS", "sk-0123456789abcdef:alice")],
            "/etc/keys.toml",
            false,
            true,
        ),
    ];
    for (e, file_path, anon, env_keys) in table {
        let c = Config::resolve(Some(file), &env(e), &Overrides::default()).unwrap();
        assert_eq!(c.auth.keys_file, Some(PathBuf::from(file_path)));
        assert_eq!(c.auth.allow_anonymous, *anon);
        assert_eq!(c.auth.env_keys.is_some(), *env_keys);
        assert_eq!(c.auth.tiers.get(Tier::Free).requests_per_minute, 5);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }
    let err = Config::resolve(
        Some("[auth.tiers.gold]\nmax_concurrent = 1\n[auth.tiers.free]\nmax_concurrent = 0\n"),
        &env(&[]),
        &Overrides::default(),
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 2, "{err}");
}

#[test]
fn model_sources_parse() {
    assert!(matches!(
        parse_source("path:/m.gguf"),
        Ok(ModelSource::Path(_))
    ));
    assert!(matches!(
        parse_source("synthetic:50"),
        Ok(ModelSource::Synthetic { .. })
    ));
    assert!(parse_source("synthetic:-1").is_err());
    // (source, wanted rate and stamped mode, or None for an error)
    let synthetic: &[(&str, Option<(f64, bool)>)] = &[
        ("synthetic:50", Some((50.0, false))),
        ("synthetic:2.5/stamped", Some((2.5, true))),
        ("synthetic:50/fast", None),
        ("synthetic:50/", None),
        ("synthetic:/stamped", None),
        ("synthetic:0/stamped", None),
    ];
    for (source, want) in synthetic {
        let got = match parse_source(source) {
            Ok(ModelSource::Synthetic {
                tokens_per_second,
                stamped,
            }) => Some((tokens_per_second, stamped)),
            Ok(other) => panic!("{source}: parsed as {other:?}"),
            Err(_) => None,
        };
        assert_eq!(got, *want, "{source}");
    }
    assert!(matches!(
        parse_source("hf:org/repo/dir/m.gguf"),
        Ok(ModelSource::HuggingFace { file, .. }) if file == "dir/m.gguf"
    ));
    assert!(parse_source("hf:org/repo").is_err());
    assert!(matches!(
        parse_source("openai:http://h:1/v1"),
        Ok(ModelSource::Remote { .. })
    ));
    assert!(parse_source("ollama:h:1").is_err());
    assert!(parse_source("package:foo").is_err());
}

#[test]
fn a_synthetic_model_may_run_thousands_of_sequences_a_real_one_64() {
    // (source, max_sequences, accepted)
    let cases = [
        ("synthetic:5", 64, true),
        ("synthetic:5/stamped", 1000, true),
        ("synthetic:5", 4096, true),
        ("synthetic:5", 4097, false),
        ("path:/m.gguf", 64, true),
        ("path:/m.gguf", 65, false),
        ("path:/m.gguf", 0, false),
    ];
    for (source, n, accepted) in cases {
        let file = format!(
            "[[models]]\nid = \"m\"\nsource = \"{source}\"\nload = false\nmax_sequences = {n}\n"
        );
        let got = Config::resolve(Some(&file), &env(&[]), &Overrides::default());
        match got {
            Ok(c) => {
                assert!(accepted, "{source} with {n} sequences was accepted");
                assert_eq!(c.models[0].max_sequences, Some(n));
            }
            Err(e) => {
                assert!(!accepted, "{source} with {n} sequences: {e}");
                assert!(e.to_string().contains("max_sequences"), "{e}");
            }
        }
    }
}

/// One failing configuration per class of error, each alone (so none hides behind another), and
/// the message that must name it. The last three were dropped before: resolution returned `Ok`
/// with a fallback to nowhere, min_replicas above max_replicas or an invalid policy.
#[test]
fn every_class_of_error_is_reported() {
    let m = |extra: &str| format!("[[models]]\nid = \"m\"\nsource = \"synthetic:50\"\n{extra}\n");
    // (class, file, environment, what the message must say)
    type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, &'a str);
    let table: Vec<Case> = vec![
        ("syntax", "[node\n".into(), vec![], "cluster.toml"),
        ("unknown field", "[node]\nidd = 1\n".into(), vec![], "idd"),
        (
            "listen",
            "[cluster]\nlisten = \"x\"\n".into(),
            vec![],
            "listen address `x`",
        ),
        (
            "seed",
            String::new(),
            vec![("ORRERY_CLUSTER_SEEDS", "nohost")],
            "seed `nohost`",
        ),
        (
            "seeds without listen",
            "[cluster]\nseeds = [\"a:1\"]\n".into(),
            vec![],
            "cluster.listen is not",
        ),
        (
            "cookie missing",
            "[cluster]\nlisten = \"127.0.0.1:1\"\n".into(),
            vec![],
            "needs a cookie",
        ),
        (
            "node id",
            "[node]\nid = \"a b\"\n".into(),
            vec![],
            "node id `a b`",
        ),
        (
            "http",
            "[node]\nhttp = \"nowhere\"\n".into(),
            vec![],
            "http address",
        ),
        (
            "temporal",
            "[temporal]\naddress = \"noport\"\n".into(),
            vec![],
            "temporal address",
        ),
        (
            "model id",
            "[[models]]\nid = \"a b\"\nsource = \"synthetic:5\"\n".into(),
            vec![],
            "model id `a b`",
        ),
        (
            "duplicate model",
            format!("{}{}", m(""), m("")),
            vec![],
            "appears twice",
        ),
        (
            "source",
            "[[models]]\nid = \"m\"\nsource = \"ftp:x\"\n".into(),
            vec![],
            "model source",
        ),
        (
            "max_sequences",
            m("max_sequences = 0"),
            vec![],
            "max_sequences 0",
        ),
        ("context", m("context = 1"), vec![], "context 1"),
        (
            "two defaults",
            format!(
                "{}{}",
                m("default = true"),
                "[[models]]\nid = \"n\"\nsource = \"synthetic:5\"\ndefault = true\n"
            ),
            vec![],
            "default = true",
        ),
        (
            "limits",
            "[limits]\nmax_tokens = 0\n".into(),
            vec![],
            "limits.max_tokens",
        ),
        (
            "tier",
            "[auth.tiers.gold]\nmax_concurrent = 1\n".into(),
            vec![],
            "auth.tiers.gold",
        ),
        (
            "messages",
            "[limits]\nmax_messages = 0\n".into(),
            vec![],
            "limits.max_messages",
        ),
        (
            "origin",
            "[http]\nallowed_origins = [\"evil.example\"]\n".into(),
            vec![],
            "allowed_origins",
        ),
        (
            "connections",
            "[http]\nmax_connections = 0\n".into(),
            vec![],
            "max_connections",
        ),
        (
            "fallback",
            m("fallback = \"nowhere\""),
            vec![],
            "fallback `nowhere`",
        ),
        (
            "replicas",
            m("min_replicas = 3\nmax_replicas = 2"),
            vec![],
            "min_replicas 3",
        ),
        (
            "policy",
            "[autoscaling.policy]\nscale_up_ticks = 0\n".into(),
            vec![],
            "autoscaling.policy",
        ),
    ];
    for (class, file, e, want) in table {
        let result = Config::resolve(Some(&file), &env(&e), &Overrides::default());
        let Err(err) = result else {
            panic!("{class}: resolved without an error");
        };
        assert!(err.to_string().contains(want), "{class}: {err}");
    }
}

/// Resolution reads no file itself: the cookie comes from what was read before.
#[test]
fn the_cookie_file_is_read_before_resolution() {
    let file = "[cluster]\nlisten = \"127.0.0.1:7400\"\ncookie_file = \"/nonexistent/cookie\"\n";
    let o = Overrides::default();
    let read = FileReads {
        cookie: Some((
            "/nonexistent/cookie".into(),
            Ok("s3cret-from-file-s3cret-from-file\n".into()),
        )),
        ..Default::default()
    };
    let c = resolve(Some(file), &env(&[]), &o, &read).unwrap();
    assert_eq!(
        c.cluster.cookie.unwrap().expose(),
        "s3cret-from-file-s3cret-from-file"
    );
    let unread = FileReads {
        cookie: Some(("/nonexistent/cookie".into(), Err("not found".into()))),
        ..Default::default()
    };
    let err = resolve(Some(file), &env(&[]), &o, &unread).unwrap_err();
    assert!(err.to_string().contains("cookie file"), "{err}");
    // And the real read of a missing file is reported the same way.
    let err = Config::resolve(Some(file), &env(&[]), &o).unwrap_err();
    assert!(err.to_string().contains("cookie file"), "{err}");
}

/// Payload keys: the environment wins over the file, the file is read before resolution, a bad
/// value is a clear error that holds no key bytes, and the codec origin defaults to the UI's.
#[test]
fn payload_keys_come_from_the_environment_or_a_file() {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
    let o = Overrides::default();
    let c = Config::resolve(None, &env(&[]), &o).unwrap();
    assert!(c.temporal.payload_keys.is_none());
    assert_eq!(c.temporal.codec_origins, Vec::<String>::new());
    let keys = format!("k2:{key},k1:{key}");
    let c = Config::resolve(
        None,
        &env(&[
            ("ORRERY_PAYLOAD_KEYS", &keys),
            ("ORRERY_TEMPORAL_UI_URL", "http://localhost:8233/namespaces"),
        ]),
        &o,
    )
    .unwrap();
    assert!(!format!("{:?}", c.temporal).contains(&key));
    assert_eq!(c.temporal.payload_keys.unwrap().ids(), ["k2", "k1"]);
    assert_eq!(c.temporal.codec_origins, ["http://localhost:8233"]);

    let file =
        "[temporal]\npayload_keys_file = \"/keys\"\ncodec_origins = [\"https://ui.example\"]\n";
    let read = FileReads {
        payload_keys: Some(("/keys".into(), Ok(format!("# mine\nk3:{key}\n")))),
        ..Default::default()
    };
    let c = resolve(Some(file), &env(&[]), &o, &read).unwrap();
    assert_eq!(c.temporal.payload_keys.unwrap().ids(), ["k3"]);
    assert_eq!(c.temporal.codec_origins, ["https://ui.example"]);

    for (e, read, want) in [
        (
            env(&[("ORRERY_PAYLOAD_KEYS", "k1:c2hvcnQ=")]),
            FileReads::default(),
            "ORRERY_PAYLOAD_KEYS: payload key `k1` is 5 bytes",
        ),
        (
            env(&[]),
            FileReads {
                payload_keys: Some(("/keys".into(), Err("not found".into()))),
                ..Default::default()
            },
            "payload keys file `/keys` cannot be read",
        ),
        (
            env(&[]),
            FileReads {
                payload_keys: Some(("/keys".into(), Ok(key.clone()))),
                ..Default::default()
            },
            "payload keys file `/keys`: payload key entry 1 is not ID:BASE64_32_BYTES",
        ),
    ] {
        let err = resolve(Some(file), &e, &o, &read).unwrap_err().to_string();
        assert!(err.contains(want) && !err.contains(&key), "{err}");
    }
    // The real read of a missing keys file is reported the same way.
    let err = Config::resolve(Some(file), &env(&[]), &o).unwrap_err();
    assert!(err.to_string().contains("cannot be read"), "{err}");
}

/// A clustered node's cookie is at least 128 bits; mesh TLS takes all three files or none.
#[test]
fn the_mesh_needs_a_long_cookie_and_whole_tls_settings() {
    let o = Overrides::default();
    let listen = ("ORRERY_CLUSTER_LISTEN", "127.0.0.1:7400");
    let err = Config::resolve(
        None,
        &env(&[listen, ("ORRERY_CLUSTER_COOKIE", "short")]),
        &o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cookie is too short"), "{err}");
    let cookie = ("ORRERY_CLUSTER_COOKIE", "0123456789abcdef0123456789abcdef");
    let c = Config::resolve(None, &env(&[listen, cookie]), &o).unwrap();
    assert_eq!(c.cluster.tls, None);
    let file = "[cluster.tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"\nca = \"/ca.pem\"\n";
    let c = Config::resolve(Some(file), &env(&[listen, cookie]), &o).unwrap();
    let tls = c.cluster.tls.unwrap();
    assert_eq!(tls.ca, std::path::PathBuf::from("/ca.pem"));
    assert_eq!(tls.server_name, "orrery-mesh");
    let err = Config::resolve(
        None,
        &env(&[listen, cookie, ("ORRERY_CLUSTER_TLS_CERT", "/c.pem")]),
        &o,
    )
    .unwrap_err();
    assert!(err.to_string().contains("mesh TLS needs all"), "{err}");
}

#[test]
fn storage_and_workflow_settings_default_under_the_data_dir_and_are_checked() {
    let c = Config::resolve(
        None,
        &env(&[("ORRERY_DATA_DIR", "/d")]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(
        c.storage.database_url.expose(),
        "sqlite:///d/orrery.db?mode=rwc"
    );
    assert_eq!(c.storage.reports_dir, PathBuf::from("/d/reports"));
    assert_eq!(c.storage.font, PathBuf::from(DEFAULT_FONT));
    assert_eq!(c.workflows.on_agent_failure, OnAgentFailure::Continue);
    assert_eq!(c.workflows.review_timeout, Duration::from_secs(120));
    assert_eq!(c.workflows.webhook_url, None);

    let file = "[storage]\nreports_dir = \"/r\"\n[workflows]\non_agent_failure = \"fail\"\n\
                review_timeout_secs = 5\nwebhook_url = \"http://127.0.0.1:9/hook\"\n";
    let pg = "postgres://orrery:hunter2@db/orrery";
    let c = Config::resolve(
        Some(file),
        &env(&[("ORRERY_DATABASE_URL", pg)]),
        &Overrides::default(),
    )
    .unwrap();
    assert_eq!(c.storage.database_url.expose(), pg);
    assert!(!format!("{c:?}").contains("hunter2"), "the URL is a secret");
    assert_eq!(c.storage.reports_dir, PathBuf::from("/r"));
    assert_eq!(c.workflows.on_agent_failure, OnAgentFailure::Fail);
    assert_eq!(c.workflows.review_timeout, Duration::from_secs(5));

    let bad = "[workflows]\non_agent_failure = \"maybe\"\nreview_timeout_secs = 0\n\
               webhook_url = \"ftp://x\"\n";
    let err = Config::resolve(Some(bad), &env(&[]), &Overrides::default()).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
}
