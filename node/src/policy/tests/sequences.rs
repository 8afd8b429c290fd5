//! Tick sequences with the state carried between ticks: hot ticks, cooldown, pause, fallback.

use super::*;

#[test]
fn scale_up_after_the_hot_ticks_and_not_before() {
    Sim::new().run(vec![
        (two_replicas(0, 5), vec![], vec![]),
        (two_replicas(5_000, 5), vec![load("m", "c")], vec![
            "queue 10 over 2 replicas = 5.0/replica > 2.0 for 2 ticks: load on c (8192 MiB free)",
        ]),
    ]);
    // A cool tick restarts the count; exactly at the threshold is not hot.
    Sim::new().run(vec![
        (two_replicas(0, 5), vec![], vec![]),
        (two_replicas(5_000, 2), vec![], vec![]),
        (two_replicas(10_000, 5), vec![], vec![]),
        (two_replicas(15_000, 5), vec![load("m", "c")], vec![]),
    ]);
}

#[test]
fn pending_asks_count_in_the_queue() {
    let hot = |now| pending(two_replicas(now, 1), "m", 3);
    Sim::new().run(vec![
        (hot(0), vec![], vec![]),
        (
            hot(5_000),
            vec![load("m", "c")],
            vec!["queue 5 (3 pending) over 2 replicas = 2.5/replica"],
        ),
    ]);
}

#[test]
fn hot_at_max_is_noted_once_while_it_lasts() {
    let at_max = |now, queued| {
        let mut v = two_replicas(now, queued);
        v.models = vec![spec("m", 4, 1, 2)];
        v
    };
    let mut sim = Sim::new();
    let noted = |log: &[Decision]| notes(log).iter().filter(|r| r.contains("at max 2")).count();
    assert_eq!(
        noted(&sim.tick(&at_max(0, 5))),
        0,
        "not hot for 2 ticks yet"
    );
    let log = sim.tick(&at_max(5_000, 5));
    assert_eq!(directives(&log), vec![]);
    assert_eq!(
        notes(&log),
        vec!["queue 10 over 2 replicas = 5.0/replica > 2.0 for 2 ticks, but at max 2 replicas"]
    );
    assert_eq!(
        noted(&sim.tick(&at_max(10_000, 5))),
        0,
        "still at max: not noted again"
    );
    assert_eq!(
        sim.tick(&at_max(15_000, 0)),
        vec![],
        "cool: nothing to note"
    );
    sim.tick(&at_max(20_000, 5));
    assert_eq!(
        noted(&sim.tick(&at_max(25_000, 5))),
        1,
        "hot at max again: noted again"
    );
}

#[test]
fn cooldown_blocks_a_second_change_of_the_same_model() {
    let m = || vec![spec("m", 4, 2, 3)];
    let one = |now| {
        view(
            now,
            vec![
                node("a", 8, 4, vec![busy("m", 0, 0)]),
                node("b", 8, 0, vec![]),
            ],
            m(),
        )
    };
    Sim::new().run(vec![
        (
            view(
                0,
                vec![node("a", 8, 0, vec![]), node("b", 8, 0, vec![])],
                m(),
            ),
            vec![load("m", "a")],
            vec![],
        ),
        (one(10_000), vec![], vec![]),
        (one(29_999), vec![], vec![]),
        (one(30_000), vec![load("m", "b")], vec!["1 replica < min 2"]),
    ]);
    // An unload starts the cooldown too, and the cooldown is per model.
    let idle_two = |now| {
        view(
            now,
            vec![
                node("a", 16, 8, vec![idle("m", 0), idle("n", 0)]),
                node("b", 16, 8, vec![idle("m", 0), idle("n", 0)]),
                node("c", 16, 8, vec![idle("m", 0), idle("n", 0)]),
            ],
            vec![spec("m", 4, 0, 3), spec("n", 4, 0, 3)],
        )
    };
    let mut sim = Sim::new();
    sim.state.models.insert(
        "n".into(),
        ModelState {
            last_change_ms: Some(290_000),
            ..ModelState::default()
        },
    );
    sim.run(vec![
        (idle_two(300_000), vec![unload("m", "a")], vec![]),
        (idle_two(320_000), vec![unload("n", "a")], vec![]),
        (idle_two(330_000), vec![unload("m", "a")], vec![]),
    ]);
}

#[test]
fn paused_changes_nothing_but_the_counters() {
    let mut sim = Sim::new();
    sim.overrides.paused = true;
    let log = sim.tick(&two_replicas(0, 5));
    assert_eq!(directives(&log), vec![]);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].model, None);
    assert!(log[0].reason.starts_with("autoscaling paused"), "{log:?}");
    assert_eq!(
        sim.tick(&two_replicas(5_000, 5)),
        vec![],
        "the pause is noted once"
    );
    assert_eq!(sim.state.models["m"].hot_ticks, 2);
    assert_eq!(sim.state.models["m"].last_change_ms, None);
    sim.overrides.paused = false;
    let log = sim.tick(&two_replicas(10_000, 5));
    assert_eq!(notes(&log), vec!["autoscaling resumed"]);
    assert_eq!(
        directives(&log),
        vec![load("m", "c")],
        "hot for 3 ticks, paused for 2"
    );
}

#[test]
fn fallback_on_without_capacity_and_back_with_hysteresis() {
    Sim::new().run(vec![
        (at_max_waiting(0, 20_000), vec![], vec![]),
        (at_max_waiting(5_000, 25_000), vec![to_fallback("m")], vec![
            "est. wait 25.0 s > 20.0 s and no capacity to add (at max 2 replicas): route to fallback cloud",
        ]),
        (at_max_waiting(10_000, 30_000), vec![], vec![]),
        (at_max_waiting(15_000, 1_000), vec![], vec![]),
        (at_max_waiting(20_000, 1_000), vec![], vec![]),
        (at_max_waiting(25_000, 21_000), vec![], vec![]),
        (at_max_waiting(30_000, 1_000), vec![], vec![]),
        (at_max_waiting(35_000, 1_000), vec![], vec![]),
        (at_max_waiting(40_000, 1_000), vec![to_local("m")], vec![
            "est. wait 1.0 s <= 20.0 s for 3 ticks: route back to local",
        ]),
        (at_max_waiting(45_000, 1_000), vec![], vec![]),
    ]);
}

#[test]
fn fallback_wait_is_that_of_the_least_waiting_replica() {
    let mut v = at_max_waiting(0, 60_000);
    v.nodes[1].replicas[0].est_wait_ms = 5_000;
    let mut sim = Sim::new();
    assert_eq!(directives(&sim.tick(&v)), vec![]);
}

#[test]
fn no_fallback_while_capacity_can_be_added() {
    let mut sim = Sim::new();
    let mut v = at_max_waiting(0, 60_000);
    v.models = vec![with_fallback(spec("m", 4, 1, 3))];
    assert_eq!(
        directives(&sim.tick(&v)),
        vec![],
        "a node fits: wait for the scale-up"
    );
    v.nodes[2].memory_used_bytes = 6 * GIB;
    let log = sim.tick(&v);
    assert_eq!(directives(&log), vec![to_fallback("m")]);
    assert!(
        log[0]
            .reason
            .contains("no node has 4096 MiB free (most: c with 2048 MiB)"),
        "{log:?}"
    );
}

#[test]
fn fallback_without_replica_and_back_when_one_can_be_loaded() {
    let m = || vec![with_fallback(spec("m", 4, 0, 2))];
    let full = |now| pending(view(now, vec![node("a", 8, 6, vec![])], m()), "m", 2);
    let mut sim = Sim::new();
    sim.run(vec![
        (full(0), vec![to_fallback("m")], vec![
            "est. wait unbounded (2 asks, no replica) > 20.0 s and no capacity to add (no node has 4096 MiB free",
        ]),
        // The asks go to the cloud; nothing local to measure, so no clear ticks.
        (view(5_000, vec![node("a", 8, 6, vec![])], m()), vec![], vec![]),
        (view(10_000, vec![node("a", 8, 6, vec![])], m()), vec![], vec![]),
        (view(15_000, vec![node("a", 8, 6, vec![])], m()), vec![], vec![]),
        (view(20_000, vec![node("a", 8, 2, vec![])], m()), vec![to_local("m")], vec![
            "no replica, and capacity can be added now: route back to local",
        ]),
        (pending(view(25_000, vec![node("a", 8, 2, vec![])], m()), "m", 1), vec![load("m", "a")], vec![]),
    ]);
}

#[test]
fn fallback_removed_from_the_config_routes_back_to_local() {
    let mut sim = Sim::new();
    sim.state.models.insert(
        "m".into(),
        ModelState {
            route: Route::Fallback {
                backend: "cloud".into(),
            },
            ..ModelState::default()
        },
    );
    assert_eq!(
        sim.state.route("m"),
        &Route::Fallback {
            backend: "cloud".into()
        }
    );
    let mut v = at_max_waiting(0, 60_000);
    v.models[0].fallback = None;
    assert_eq!(directives(&sim.tick(&v)), vec![to_local("m")]);
    assert_eq!(sim.state.route("m"), &Route::Local);
    assert_eq!(directives(&sim.tick(&v)), vec![], "no fallback: no route");
}

#[test]
fn a_renamed_fallback_backend_is_followed() {
    let mut sim = Sim::new();
    sim.state.models.insert(
        "m".into(),
        ModelState {
            route: Route::Fallback {
                backend: "old".into(),
            },
            ..ModelState::default()
        },
    );
    let log = sim.tick(&at_max_waiting(0, 60_000));
    assert_eq!(directives(&log), vec![to_fallback("m")]);
    assert_eq!(
        log[0].reason,
        "the fallback backend is now cloud: route to it"
    );
}

#[test]
fn paused_holds_the_route() {
    let mut sim = Sim::new();
    sim.overrides.paused = true;
    let log = sim.tick(&at_max_waiting(0, 60_000));
    assert_eq!(directives(&log), vec![]);
    assert_eq!(sim.state.route("m"), &Route::Local);
}

#[test]
fn state_of_models_that_leave_the_config_is_dropped() {
    let mut sim = Sim::new();
    sim.tick(&two_replicas(0, 5));
    assert!(sim.state.models.contains_key("m"));
    sim.tick(&view(5_000, vec![], vec![]));
    assert_eq!(sim.state, PolicyState::default());
}

#[test]
fn a_tick_count_of_zero_reads_as_one() {
    let mut sim = Sim::new();
    sim.policy.scale_up_ticks = 0;
    assert_eq!(
        directives(&sim.tick(&two_replicas(0, 5))),
        vec![load("m", "c")]
    );
}
