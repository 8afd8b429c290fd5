//! One tick from a fresh state: where loads go, what is unloaded, what is noted.

use super::*;

/// A name, the view and overrides, the directives expected, fragments of expected reasons.
type Case = (
    &'static str,
    ClusterView,
    Overrides,
    Vec<Directive>,
    Vec<&'static str>,
);

#[test]
fn single_tick_table() {
    let m = || vec![spec("m", 4, 1, 2)];
    let cases: Vec<Case> = vec![
        (
            "below min loads with no load at all, on the node with most free memory",
            view(
                0,
                vec![node("a", 8, 0, vec![]), node("b", 16, 4, vec![])],
                m(),
            ),
            Overrides::default(),
            vec![load("m", "b")],
            vec!["0 replicas < min 1: load on b (12288 MiB free)"],
        ),
        (
            "memory budget respected: budget minus used must hold the model",
            view(
                0,
                vec![node("a", 16, 13, vec![]), node("b", 5, 0, vec![])],
                m(),
            ),
            Overrides::default(),
            vec![load("m", "b")],
            vec![],
        ),
        (
            "no node fits: noted, nothing loaded",
            view(
                0,
                vec![node("a", 16, 13, vec![]), node("b", 2, 0, vec![])],
                m(),
            ),
            Overrides::default(),
            vec![],
            vec!["0 replicas < min 1, but no node has 4096 MiB free (most: a with 3072 MiB)"],
        ),
        (
            "ties on free memory go to the first name",
            view(
                0,
                vec![node("b", 8, 0, vec![]), node("a", 8, 0, vec![])],
                m(),
            ),
            Overrides::default(),
            vec![load("m", "a")],
            vec![],
        ),
        (
            "a pinned node is chosen before one with more free memory",
            view(
                0,
                vec![node("a", 16, 0, vec![]), node("b", 8, 0, vec![])],
                m(),
            ),
            pin("m", &["b"]),
            vec![load("m", "b")],
            vec![],
        ),
        (
            "a draining node is never chosen",
            view(
                0,
                vec![draining(node("a", 16, 0, vec![])), node("b", 8, 0, vec![])],
                m(),
            ),
            Overrides::default(),
            vec![load("m", "b")],
            vec![],
        ),
        (
            "an admin-drained node is never chosen",
            view(
                0,
                vec![node("a", 16, 0, vec![]), node("b", 8, 0, vec![])],
                m(),
            ),
            Overrides {
                drained: ["a".to_string()].into(),
                ..Overrides::default()
            },
            vec![load("m", "b")],
            vec![],
        ),
        (
            "a replica on a draining node is no replica, and is not unloaded by the policy",
            view(
                0,
                vec![
                    draining(node("a", 16, 4, vec![idle("m", 0)])),
                    node("b", 8, 0, vec![]),
                ],
                m(),
            ),
            Overrides::default(),
            vec![load("m", "b")],
            vec![],
        ),
        (
            "only draining nodes or holders left: noted",
            view(
                0,
                vec![
                    draining(node("a", 16, 0, vec![])),
                    node("b", 8, 4, vec![busy("m", 1, 0)]),
                ],
                vec![spec("m", 4, 2, 2)],
            ),
            Overrides::default(),
            vec![],
            vec!["1 replica < min 2, but no node can take its 4096 MiB"],
        ),
        (
            "above max unloads the least-loaded replica",
            view(
                0,
                vec![
                    node("a", 8, 4, vec![busy("m", 1, 0)]),
                    node("b", 8, 4, vec![busy("m", 0, 0)]),
                    node("c", 8, 4, vec![busy("m", 2, 1)]),
                ],
                m(),
            ),
            Overrides::default(),
            vec![unload("m", "b")],
            vec!["3 replicas > max 2 replicas: unload the least loaded, on b (0 active, 0 queued)"],
        ),
        (
            "above max with every replica pinned: noted",
            view(
                0,
                vec![
                    node("a", 8, 4, vec![busy("m", 1, 0)]),
                    node("b", 8, 4, vec![busy("m", 0, 0)]),
                    node("c", 8, 4, vec![busy("m", 2, 1)]),
                ],
                m(),
            ),
            pin("m", &["a", "b", "c"]),
            vec![],
            vec!["3 replicas > max 2 replicas, but every replica is pinned"],
        ),
        (
            "asks pending with no replica load at once",
            pending(
                view(0, vec![node("a", 8, 0, vec![])], vec![spec("m", 4, 0, 2)]),
                "m",
                3,
            ),
            Overrides::default(),
            vec![load("m", "a")],
            vec!["3 asks waiting with no replica: load on a"],
        ),
        (
            "asks pending and max 0: noted at max",
            pending(
                view(0, vec![node("a", 8, 0, vec![])], vec![spec("m", 4, 0, 0)]),
                "m",
                3,
            ),
            Overrides::default(),
            vec![],
            vec!["3 asks waiting with no replica, but at max 0 replicas"],
        ),
        (
            "a replica idle for the keep-alive is unloaded",
            view(
                300_000,
                vec![
                    node("a", 8, 4, vec![idle("m", 0)]),
                    node("b", 8, 4, vec![busy("m", 1, 0)]),
                ],
                m(),
            ),
            Overrides::default(),
            vec![unload("m", "a")],
            vec!["idle 300.0 s >= keep-alive 300.0 s, 2 replicas > min 1: unload on a"],
        ),
        (
            "a replica idle for less than the keep-alive stays",
            view(
                299_999,
                vec![
                    node("a", 8, 4, vec![idle("m", 0)]),
                    node("b", 8, 4, vec![busy("m", 1, 0)]),
                ],
                m(),
            ),
            Overrides::default(),
            vec![],
            vec![],
        ),
        (
            "idle replicas are never unloaded below min",
            view(
                900_000,
                vec![
                    node("a", 8, 4, vec![idle("m", 0)]),
                    node("b", 8, 4, vec![idle("m", 0)]),
                ],
                vec![spec("m", 4, 2, 3)],
            ),
            Overrides::default(),
            vec![],
            vec![],
        ),
        (
            "a pinned replica is never unloaded, however idle",
            view(
                900_000,
                vec![
                    node("a", 8, 4, vec![idle("m", 0)]),
                    node("b", 8, 4, vec![busy("m", 1, 0)]),
                ],
                m(),
            ),
            pin("m", &["a"]),
            vec![],
            vec![],
        ),
        (
            "one unload per model per tick, the longest idle first",
            view(
                900_000,
                vec![
                    node("a", 8, 4, vec![idle("m", 10)]),
                    node("b", 8, 4, vec![idle("m", 0)]),
                    node("c", 8, 4, vec![idle("m", 5)]),
                ],
                vec![spec("m", 4, 0, 3)],
            ),
            Overrides::default(),
            vec![unload("m", "b")],
            vec![],
        ),
        (
            "no idle unload while the model is hot",
            view(
                900_000,
                vec![
                    node("a", 8, 4, vec![idle("m", 0)]),
                    node("b", 8, 4, vec![busy("m", 4, 9)]),
                ],
                m(),
            ),
            Overrides::default(),
            vec![],
            vec![],
        ),
        (
            "an override above max loads",
            view(
                0,
                vec![
                    node("a", 8, 4, vec![busy("m", 0, 0)]),
                    node("b", 8, 0, vec![]),
                ],
                vec![spec("m", 4, 1, 1)],
            ),
            Overrides {
                replicas: [("m".to_string(), 2)].into(),
                ..Overrides::default()
            },
            vec![load("m", "b")],
            vec!["1 replica < override 2: load on b"],
        ),
        (
            "an override of 0 unloads even a busy replica",
            view(0, vec![node("a", 8, 4, vec![busy("m", 2, 2)])], m()),
            Overrides {
                replicas: [("m".to_string(), 0)].into(),
                ..Overrides::default()
            },
            vec![unload("m", "a")],
            vec!["1 replica > override 0 replicas"],
        ),
        (
            "an override is clamped by memory: noted",
            view(
                0,
                vec![
                    node("a", 8, 4, vec![busy("m", 0, 0)]),
                    node("b", 8, 6, vec![]),
                ],
                m(),
            ),
            Overrides {
                replicas: [("m".to_string(), 2)].into(),
                ..Overrides::default()
            },
            vec![],
            vec!["1 replica < override 2, but no node has 4096 MiB free (most: b with 2048 MiB)"],
        ),
        (
            "minimums take memory before scale-ups",
            pending(
                view(
                    0,
                    vec![node("a", 8, 0, vec![])],
                    vec![spec("hot", 4, 0, 2), spec("min", 8, 1, 1)],
                ),
                "hot",
                5,
            ),
            Overrides::default(),
            vec![load("min", "a")],
            vec![
                "5 asks waiting with no replica, but no node has 4096 MiB free (most: a with 0 MiB)",
            ],
        ),
        (
            "two models' loads on one node share its memory in the same tick",
            view(
                0,
                vec![node("a", 8, 0, vec![]), node("b", 6, 0, vec![])],
                vec![spec("x", 4, 1, 1), spec("y", 4, 1, 1)],
            ),
            Overrides::default(),
            vec![load("x", "a"), load("y", "b")],
            vec![],
        ),
        (
            "models outside the config are left alone",
            view(
                900_000,
                vec![node("a", 8, 4, vec![idle("other", 0)])],
                vec![],
            ),
            Overrides::default(),
            vec![],
            vec![],
        ),
    ];
    for (name, view, overrides, expected, reasons) in cases {
        let (log, _) = decide(
            &view,
            &Policy::default(),
            &overrides,
            &PolicyState::default(),
        );
        assert_eq!(directives(&log), expected, "{name}: {log:#?}");
        for fragment in reasons {
            assert!(
                log.iter().any(|d| d.reason.contains(fragment)),
                "{name}: no reason contains {fragment:?}: {log:#?}"
            );
        }
        assert!(log.iter().all(|d| d.at_ms == view.now_ms), "{name}");
    }
}
