//! The Workflows tab of the page as a person uses it, in headless Chromium against a real node on
//! the real model (short outputs): each kind starts from the form, the chosen workflow shows as a
//! tree of steps and child workflows (node, model, state, durations, Temporal UI links) until it
//! completes, its result shows part by part, and a report's PDF downloads with the page's key.
//! The cluster panel shows node names whole.

use crate::browser::{Page, open};
use crate::harness::{DEFAULT_MODEL_CONFIG, Sandbox};
use serde_json::Value;
use std::time::Duration;

const KEY: &str = "sk-console-ada-0123456789";
const NODE: &str = "console-node-1";
const MODEL: &str = "smollm2-135m";

/// Fills the form's fields (selector → value) and presses Start for `kind`.
async fn start(page: &mut Page, kind: &str, fields: &[(&str, &str)]) {
    let sets: String = fields
        .iter()
        .map(|(sel, v)| format!("set({sel:?}, {v:?});"))
        .collect();
    page.eval(&format!(
        "(() => {{
            const set = (sel, v) => {{ const e = document.querySelector(sel); e.value = v;
                e.dispatchEvent(new Event('input', {{bubbles: true}}));
                e.dispatchEvent(new Event('change', {{bubbles: true}})); }};
            document.querySelector('input[name=wf-kind][value={kind}]').click();
            {sets}
            document.querySelector('#wf-start').click();
            return true; }})()"
    ))
    .await;
}

/// Waits for the workflow shown to be a new one of `kind` (not one of `known`); its id.
async fn shown_id(page: &mut Page, kind: &str, known: &[String]) -> String {
    let known = serde_json::to_string(known).unwrap();
    let v = page
        .wait(
            &format!("the new {kind} workflow to be shown"),
            Duration::from_secs(60),
            &format!(
                "(() => {{ const id = document.querySelector('#wf-detail').dataset.workflowId;
                   return id && !{known}.includes(id) && id.startsWith('{}') ? id : null; }})()",
                if kind == "multi-agent" {
                    "agents-"
                } else {
                    kind
                }
            ),
        )
        .await;
    v.as_str().unwrap().to_string()
}

/// Shows workflow `id` and waits until the tree says it completed.
async fn until_completed(page: &mut Page, id: &str) {
    page.eval(&format!(
        "document.querySelector('#wf-list li.wf-item[data-workflow-id=\"{id}\"] button')?.click() ?? true"
    ))
    .await;
    let what = format!("{id} to complete on the page");
    let state = page
        .wait(
            &what,
            Duration::from_secs(300),
            &format!(
                "(() => {{ const d = document.querySelector('#wf-detail');
                   const s = d.dataset.workflowId === '{id}' ? d.dataset.status : '';
                   return ['completed', 'failed', 'cancelled'].includes(s) ? s : null; }})()"
            ),
        )
        .await;
    let hint = page
        .eval("document.querySelector('#wf-result').textContent")
        .await;
    assert_eq!(state, "completed", "{id}: {hint}");
}

/// The tree's rows: (step, state, model, node, duration, child workflow id, child link).
async fn tree(page: &mut Page) -> Vec<Value> {
    page.eval(
        "[...document.querySelectorAll('#wf-tree li.wf-step')].map(li => {
            const row = li.querySelector(':scope > .wf-row');
            const child = li.querySelector('li.wf-child');
            const t = (e, s) => e?.querySelector(s)?.textContent ?? '';
            return {step: li.dataset.step, state: li.dataset.state,
                    model: t(row, '.wf-model'), node: t(row, '.wf-node'), dur: t(row, '.wf-dur'),
                    child: child?.dataset.workflowId ?? null,
                    child_node: t(child, '.wf-node'), child_model: t(child, '.wf-model'),
                    child_link: child?.querySelector('a.wf-temporal')?.href ?? null}; })",
    )
    .await
    .as_array()
    .cloned()
    .unwrap_or_default()
}

fn steps(tree: &[Value]) -> Vec<(String, String)> {
    tree.iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or("").to_string(),
                s["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The result's parts on the page, by name.
/// The result's parts, once the page shows them (it fetches the result after the tree says
/// completed).
async fn parts(page: &mut Page) -> Vec<String> {
    let v = page
        .wait(
            "the result's parts",
            Duration::from_secs(30),
            "(() => { const p = [...document.querySelectorAll('#wf-result .wf-part')]\
             .map(p => p.dataset.part); return p.length ? p : null; })()",
        )
        .await;
    serde_json::from_value(v).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_starts_every_kind_and_follows_it_as_a_tree_down_to_the_pdf() {
    let sb = Sandbox::start().await;
    let config = format!("[temporal]\nui_url = \"http://127.0.0.1:8233\"\n{DEFAULT_MODEL_CONFIG}");
    let keys = format!("{KEY}:ada:enterprise");
    let node = sb
        .node_with_env(NODE, &config, &[("ORRERY_API_KEYS", &keys)])
        .await;
    // The key is given once in the address, as a person would; the page keeps it.
    let (_browser, mut page) = open(&format!("{}/?api_key={KEY}", node.http)).await;
    page.wait(
        "the page to connect",
        Duration::from_secs(30),
        "document.querySelector('#conn')?.textContent === 'connected'",
    )
    .await;

    // The cluster panel shows the node's name whole, not cut to "c…".
    let shown = page
        .wait(
            "the node in the cluster panel",
            Duration::from_secs(30),
            &format!(
                "(() => {{ const e = document.querySelector('#nodes li.node[data-node=\"{NODE}\"] .node-name');
                   return e ? [e.textContent, e.scrollWidth <= e.clientWidth, e.title] : null; }})()"
            ),
        )
        .await;
    assert_eq!(shown, serde_json::json!([NODE, true, NODE]), "{shown}");

    // The Workflows tab.
    page.eval("document.querySelector('#tab-workflows').click()")
        .await;
    let visible = page
        .eval("!document.querySelector('#workflows').hidden && document.querySelector('#asks-view').hidden")
        .await;
    assert_eq!(visible, true);

    // A report: the tree follows it to completed, with its steps, its child ask and links.
    start(
        &mut page,
        "report",
        &[
            ("#wf-prompt", "Explain ocean tides."),
            ("#wf-title", "Tides"),
            ("#wf-max-tokens", "24"),
        ],
    )
    .await;
    let report = shown_id(&mut page, "report", &[]).await;
    // While it runs, the tree shows a step running (the content's child ask).
    page.wait(
        "a running step in the tree",
        Duration::from_secs(60),
        "document.querySelector('#wf-tree li.wf-step[data-state=running], #wf-detail[data-status=completed]') !== null",
    )
    .await;
    until_completed(&mut page, &report).await;
    let t = tree(&mut page).await;
    let want: Vec<(String, String)> = ["content", "render", "metadata", "notify"]
        .iter()
        .map(|s| (s.to_string(), "completed".to_string()))
        .collect();
    assert_eq!(steps(&t), want, "{t:?}");
    let content = &t[0];
    assert_eq!(content["child"], format!("{report}.content"), "{content}");
    assert_eq!(content["child_node"], format!("on {NODE}"), "{content}");
    assert_eq!(content["child_model"], MODEL, "{content}");
    assert!(
        content["child_link"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!(
                "http://127.0.0.1:8233/namespaces/default/workflows/{report}.content"
            )),
        "{content}"
    );
    assert_eq!(t[1]["node"], format!("on {NODE}"), "render ran here: {t:?}");
    for s in &t {
        assert!(
            !s["dur"].as_str().unwrap_or("").is_empty(),
            "a duration: {s}"
        );
    }
    let root_link = page
        .eval("document.querySelector('#wf-tree li.wf-root a.wf-temporal').href")
        .await;
    assert!(
        root_link
            .as_str()
            .unwrap_or("")
            .contains(&format!("/workflows/{report}")),
        "{root_link}"
    );
    assert_eq!(
        parts(&mut page).await,
        ["file", "content", "metadata", "notification"]
    );
    let text = page
        .eval("document.querySelector('#wf-result [data-part=content] pre').textContent")
        .await;
    assert!(!text.as_str().unwrap_or("").is_empty(), "content shown");

    // The PDF downloads with the page's key (the route needs it).
    let anonymous = reqwest::get(format!("{}/api/workflows/{report}/result", node.http))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    page.eval("document.querySelector('#wf-pdf').click()").await;
    let blob = page
        .wait(
            "the PDF to download",
            Duration::from_secs(30),
            "document.querySelector('#wf-pdf')?.dataset.blob ?? null",
        )
        .await;
    let head = page
        .eval(&format!(
            "fetch({blob}).then(r => r.arrayBuffer()).then(b =>
                [String.fromCharCode(...new Uint8Array(b.slice(0, 5))), b.byteLength])"
        ))
        .await;
    assert_eq!(head[0], "%PDF-", "{head}");
    assert!(head[1].as_u64().unwrap_or(0) > 500, "{head}");
    page.screenshot("it-console-report.png").await;

    // The three other kinds, started one after another, each with tiny outputs.
    let mut known = vec![report.clone()];
    start(
        &mut page,
        "codegen",
        &[
            ("#wf-requirements", "A function that adds two numbers."),
            ("#wf-language", "python"),
            ("#wf-max-tokens", "12"),
        ],
    )
    .await;
    let codegen = shown_id(&mut page, "codegen", &known).await;
    known.push(codegen.clone());
    start(
        &mut page,
        "multi-agent",
        &[
            ("#wf-task", "A to-do list app."),
            ("#wf-roles", "architect, ui_designer"),
            ("#wf-max-tokens", "8"),
        ],
    )
    .await;
    let agents = shown_id(&mut page, "multi-agent", &known).await;
    known.push(agents.clone());
    start(
        &mut page,
        "ask",
        &[
            ("#wf-prompt", "What is the capital of France?"),
            ("#wf-max-tokens", "12"),
        ],
    )
    .await;
    let ask = shown_id(&mut page, "ask", &known).await;

    until_completed(&mut page, &ask).await;
    assert_eq!(parts(&mut page).await, ["text"]);
    let answer = page
        .eval("document.querySelector('#wf-result [data-part=text] pre').textContent")
        .await;
    assert!(answer.as_str().unwrap_or("").contains("Paris"), "{answer}");
    let root = page
        .eval("[...document.querySelectorAll('#wf-tree li.wf-root > .wf-row > *')].map(e => e.textContent).join(' ')")
        .await;
    assert!(root.as_str().unwrap_or("").contains(NODE), "{root}");

    until_completed(&mut page, &codegen).await;
    let t = tree(&mut page).await;
    let names: Vec<String> = steps(&t).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "validate", "allocate", "generate", "review", "save", "notify", "release"
        ],
        "{t:?}"
    );
    assert_eq!(t[2]["child"], format!("{codegen}.generate"), "{t:?}");
    assert_eq!(t[2]["state"], "completed", "{t:?}");
    assert_eq!(parts(&mut page).await, ["code", "review", "notification"]);

    until_completed(&mut page, &agents).await;
    let t = tree(&mut page).await;
    let names: Vec<String> = steps(&t).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "architect",
            "ui_designer",
            "integration",
            "senior_reviewer",
            "notify"
        ],
        "{t:?}"
    );
    let children: Vec<&str> = t.iter().filter_map(|s| s["child"].as_str()).collect();
    assert_eq!(children.len(), 3, "two agents and the reviewer: {t:?}");
    for s in t.iter().filter(|s| s["child"].is_string()) {
        assert_eq!(s["child_node"], format!("on {NODE}"), "{s}");
    }
    assert_eq!(
        parts(&mut page).await,
        [
            "agent-architect",
            "agent-ui_designer",
            "integration",
            "review",
            "notification"
        ]
    );
    page.screenshot("it-console-agents.png").await;

    // The user's list (from the server, with the key) has the three workflows it lists.
    page.eval("document.querySelector('#wf-refresh').click()")
        .await;
    for id in [&report, &codegen, &agents] {
        page.wait(
            &format!("{id} completed in the list"),
            Duration::from_secs(30),
            &format!(
                "document.querySelector('#wf-list li.wf-item[data-workflow-id=\"{id}\"][data-status=completed]') !== null"
            ),
        )
        .await;
    }
}
