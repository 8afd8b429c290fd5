//! The JSON the policy's types travel as: admin input, Temporal payloads.

use super::*;

#[test]
fn policy_json_fills_defaults_and_refuses_unknown_fields() {
    let p: Policy = serde_json::from_str(r#"{"cooldown_ms": 5000}"#).unwrap();
    assert_eq!(
        p,
        Policy {
            cooldown_ms: 5_000,
            ..Policy::default()
        }
    );
    assert!(serde_json::from_str::<Policy>(r#"{"cooldown": 5000}"#).is_err());
    let o: Overrides = serde_json::from_str(r#"{"paused": true}"#).unwrap();
    assert!(o.paused && o.replicas.is_empty());
}

#[test]
fn policy_validation_reports_every_problem() {
    assert_eq!(Policy::default().validate(), Ok(()));
    let bad = Policy {
        scale_up_queue_per_replica: f64::NAN,
        scale_up_ticks: 0,
        fallback_clear_ticks: 0,
        ..Policy::default()
    };
    let err = bad.validate().unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(
        err.to_string()
            .starts_with("invalid policy: scale_up_queue_per_replica")
    );
}

#[test]
fn payloads_have_a_stable_json_shape_and_round_trip() {
    let d = Decision {
        at_ms: 7,
        model: Some("m".into()),
        directive: Some(to_fallback("m")),
        reason: "r".into(),
    };
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "at_ms": 7, "model": "m", "reason": "r",
            "directive": {"action": "set_route", "model": "m", "route": {"kind": "fallback", "backend": "cloud"}}
        })
    );
    assert_eq!(serde_json::from_value::<Decision>(json).unwrap(), d);

    let mut sim = Sim::new();
    sim.tick(&at_max_waiting(0, 60_000));
    let state: PolicyState =
        serde_json::from_str(&serde_json::to_string(&sim.state).unwrap()).unwrap();
    assert_eq!(state, sim.state);
    let v = pending(two_replicas(0, 1), "m", 2);
    let back: ClusterView = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(back, v);
}
