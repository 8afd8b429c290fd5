//! The report, multi-agent and codegen workflows end to end, on a real Temporal dev server and a
//! real node: LLM steps on the real model (short answers), or on a synthetic model named so where
//! a test is about orchestration (a review slow enough to time out, a generation to cancel).

use crate::harness::{Client, DEFAULT_MODEL_CONFIG, Node, Sandbox, wait_for};
use crate::rest::get_json;
use crate::websocket::history_events;
use orrery::config::Secret;
use orrery::store::Store;
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

/// The real model, plus a synthetic one at 2 tokens a second (a slow reviewer or generator).
fn config_with_slow_synthetic() -> String {
    format!(
        "{DEFAULT_MODEL_CONFIG}\n[[models]]\nid = \"slow-synthetic\"\nsource = \"synthetic:2\"\n\
         max_sequences = 4\n"
    )
}

async fn start(node: &Node, kind: &str, body: Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{}/api/workflows/{kind}", node.http))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["status"], "running", "{v}");
    v["workflow_id"].as_str().unwrap().to_string()
}

/// Polls the workflow's status until it is no longer running.
async fn until_ended(node: &Node, id: &str, deadline: Duration) -> Value {
    let http = reqwest::Client::new();
    let url = format!("{}/api/workflows/{id}/status", node.http);
    wait_for(&format!("workflow {id} to end"), deadline, || async {
        let (code, st) = get_json(&http, &url).await;
        (code == 200 && st["status"] != "running").then_some(st)
    })
    .await
}

fn db(node: &Node, sb: &Sandbox) -> Store {
    let path = sb.dir.path().join(&node.id).join("orrery.db");
    Store::new(Secret::new(format!("sqlite://{}?mode=rw", path.display())))
}

/// How many child workflows of `id` completed, from its history.
async fn completed_children(sb: &Sandbox, id: &str) -> usize {
    history_events(sb, id)
        .await
        .iter()
        .filter(|e| e.contains("ChildWorkflowExecutionCompleted"))
        .count()
}

/// Cancels workflow `id` (202) and waits until it says cancelled; its status.
async fn cancel(http: &reqwest::Client, node: &Node, id: &str) -> Value {
    let r = http
        .delete(format!("{}/api/workflows/{id}", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let st = until_ended(node, id, Duration::from_secs(60)).await;
    assert_eq!(st["status"], "cancelled", "{st}");
    st
}

#[tokio::test(flavor = "multi_thread")]
async fn report_workflow_writes_a_pdf_with_its_title_a_sqlite_row_and_notifies_the_user() {
    let sb = Sandbox::start().await;
    let node = sb.node("wr1", DEFAULT_MODEL_CONFIG).await;
    let http = reqwest::Client::new();
    // The user's session on the node gets the notification.
    let (mut ws, _) = Client::connect(&node).await;

    // Bad bodies are 4xx with a JSON error, on the seed's alias too.
    let r = http
        .post(format!("{}/api/workflows/generate-report", node.http))
        .json(&json!({"promt": "typo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_params"
    );
    let r = http
        .post(format!("{}/api/workflows/poem", node.http))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "unknown_kind"
    );

    let title = "Tides and the Moon";
    let id = start(
        &node,
        "generate-report",
        json!({"prompt": "Explain ocean tides.", "title": title, "max_tokens": 40}),
    )
    .await;
    assert!(id.starts_with("report-"), "{id}");
    let st = until_ended(&node, &id, Duration::from_secs(240)).await;
    assert_eq!(st["status"], "completed", "{st}\n{}", node.log());
    let steps: Vec<(&str, &str)> = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("content", "completed"),
            ("render", "completed"),
            ("metadata", "completed"),
            ("notify", "completed")
        ],
        "{st}"
    );
    assert_eq!(st["percent"], 100);
    assert_eq!(st["children"][0]["workflow_id"], format!("{id}.content"));
    // Where each step ran: the content's model and node (its child's too), the render's node.
    assert_eq!(st["steps"][0]["model"], "smollm2-135m", "{st}");
    assert_eq!(st["steps"][0]["node"], "wr1", "{st}");
    assert_eq!(st["children"][0]["node"], "wr1", "{st}");
    assert_eq!(st["children"][0]["model"], "smollm2-135m", "{st}");
    assert_eq!(st["steps"][1]["node"], "wr1", "{st}");

    // The result is the PDF itself; pdftotext finds the title, pdftoppm renders page 1.
    let r = http
        .get(format!("{}/api/workflows/{id}/result", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let pdf = r.bytes().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    let pdf_path = sb.dir.path().join("got.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    let text = Command::new("pdftotext")
        .arg(&pdf_path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian poppler-utils; scripts/test installs it)");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(title), "{text}");
    assert!(text.contains("Page 1 of"), "{text}");
    let png = sb.dir.path().join("page");
    let rendered = Command::new("pdftoppm")
        .args(["-png", "-r", "30", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf_path)
        .arg(&png)
        .status()
        .unwrap();
    assert!(rendered.success());
    assert!(std::fs::metadata(png.with_extension("png")).unwrap().len() > 0);

    // The JSON result names each part; the row is in the node's SQLite.
    let (_, res) = get_json(
        &http,
        &format!("{}/api/workflows/{id}/result?format=json", node.http),
    )
    .await;
    let result = &res["result"];
    assert_eq!(result["metadata"]["ok"], true, "{res}");
    assert_eq!(result["metadata"]["detail"], "sqlite");
    assert_eq!(result["model"], "smollm2-135m");
    assert!(!result["content"].as_str().unwrap().is_empty());
    let row = db(&node, &sb).report(&id).await.unwrap().expect("a row");
    assert_eq!(row.title, title);
    assert_eq!(row.user, "anonymous");
    assert_eq!(row.file_path, result["file"]["path"].as_str().unwrap());
    assert!(row.pages >= 1);

    // The user's session heard of it.
    let (ev, _) = ws.until("workflow_event").await;
    assert_eq!(ev["workflow_id"], id.as_str(), "{ev}");
    assert_eq!(ev["summary"]["title"], title);

    // The content step ran once, as one child.
    assert_eq!(completed_children(&sb, &id).await, 1);

    // Asks start from the same route and answer on it.
    let ask = start(
        &node,
        "ask",
        json!({"prompt": crate::openai::PARIS, "temperature": 0, "max_tokens": 20}),
    )
    .await;
    assert!(ask.starts_with("ask-"), "{ask}");
    let (code, res) = get_json(
        &http,
        &format!("{}/api/workflows/{ask}/result?wait=60", node.http),
    )
    .await;
    assert_eq!(code, 200, "{res}");
    assert!(res["text"].as_str().unwrap().contains("Paris"), "{res}");

    // It is in the user's list.
    let (_, list) = get_json(&http, &format!("{}/api/workflows", node.http)).await;
    assert!(
        list["workflows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["workflow_id"] == id.as_str() && w["kind"] == "report"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_agent_over_the_websocket_runs_roles_in_parallel_then_integrates_and_reviews() {
    let sb = Sandbox::start().await;
    let node = sb.node("wm1", DEFAULT_MODEL_CONFIG).await;
    let (mut ws, _) = Client::connect(&node).await;
    ws.send(
        json!({"type": "run_workflow", "kind": "multi-agent", "client_id": "m1",
                   "task": "A to-do list app.", "max_tokens": 16}),
    )
    .await;
    let (acc, _) = ws.until("workflow_accepted").await;
    assert_eq!(acc["client_id"], "m1");
    assert_eq!(acc["kind"], "multi-agent");
    let id = acc["workflow_id"].as_str().unwrap().to_string();
    let (done, frames) = ws.until("workflow_done").await;
    assert_eq!(done["status"], "completed", "{done}\n{}", node.log());
    let progress: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "workflow_progress")
        .collect();
    assert!(!progress.is_empty(), "{frames:?}");
    let last = progress.last().unwrap();
    assert_eq!(last["percent"], 100, "{last}");
    assert_eq!(last["children"].as_array().unwrap().len(), 4, "{last}");

    let r = &done["result"];
    for role in ["architect", "ui_designer", "backend_developer"] {
        assert_eq!(r["agents"][role]["status"], "completed", "{r}");
        assert!(!r["agents"][role]["text"].as_str().unwrap().is_empty());
        assert!(
            r["integration"]
                .as_str()
                .unwrap()
                .contains(&format!("## {role}")),
            "{r}"
        );
    }
    assert_eq!(r["review"]["status"], "completed");
    assert!(r["failed"].as_array().unwrap().is_empty());
    // Three agents and the reviewer, each once.
    assert_eq!(completed_children(&sb, &id).await, 4);

    // The REST result names the same parts.
    let (_, res) = get_json(
        &reqwest::Client::new(),
        &format!("{}/api/workflows/{id}/result", node.http),
    )
    .await;
    assert_eq!(
        res["result"]["agents"]["architect"],
        r["agents"]["architect"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn codegen_review_that_times_out_does_not_fail_and_the_allocation_is_always_released() {
    let sb = Sandbox::start().await;
    let node = sb.node("wc1", &config_with_slow_synthetic()).await;
    let http = reqwest::Client::new();
    let store = db(&node, &sb);

    // A reviewer at 2 tokens a second cannot write 40 tokens in 2 s.
    let id = start(
        &node,
        "codegen",
        json!({"requirements": "A function that adds two numbers.", "language": "python",
               "max_tokens": 32, "review_model": "slow-synthetic", "review_timeout_secs": 2}),
    )
    .await;
    let st = until_ended(&node, &id, Duration::from_secs(240)).await;
    assert_eq!(st["status"], "completed", "{st}\n{}", node.log());
    let (_, res) = get_json(&http, &format!("{}/api/workflows/{id}/result", node.http)).await;
    let r = &res["result"];
    assert_eq!(r["review"], "review timed out", "{res}");
    assert_eq!(r["review_status"], "timed_out");
    assert_eq!(r["language"], "python");
    assert!(!r["code"].as_str().unwrap().is_empty());
    assert!(std::path::Path::new(r["path"].as_str().unwrap()).exists());
    let review_step = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "review")
        .unwrap();
    assert_eq!(review_step["status"], "timed_out", "{st}");
    assert!(
        store.held().await.unwrap().is_empty(),
        "released after success"
    );

    // Cancelled mid-generation (a slow synthetic generator): release still runs.
    let id = start(
        &node,
        "codegen",
        json!({"requirements": "A web server.", "language": "rust", "model": "slow-synthetic",
               "max_tokens": 200}),
    )
    .await;
    let status_url = format!("{}/api/workflows/{id}/status", node.http);
    wait_for("generate to run", Duration::from_secs(60), || async {
        let (_, st) = get_json(&http, &status_url).await;
        (st["current_step"] == "generate").then_some(())
    })
    .await;
    // While it generates, the step and its child name the node (from the child ask's stage).
    wait_for(
        "the running generate step to name its node",
        Duration::from_secs(60),
        || async {
            let (_, st) = get_json(&http, &status_url).await;
            let step = st["steps"]
                .as_array()?
                .iter()
                .find(|s| s["name"] == "generate")?;
            let child = st["children"]
                .as_array()?
                .iter()
                .find(|c| c["step"] == "generate")?;
            (step["status"] == "running"
                && step["node"] == "wc1"
                && step["model"] == "slow-synthetic"
                && child["node"] == "wc1")
                .then_some(())
        },
    )
    .await;
    wait_for(
        "the allocation to be recorded",
        Duration::from_secs(30),
        || async {
            let held = store.held().await.unwrap_or_default();
            held.contains(&id).then_some(())
        },
    )
    .await;
    let st = cancel(&http, &node, &id).await;
    let release = st["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "release")
        .unwrap()
        .clone();
    assert_eq!(release["status"], "completed", "{st}");
    assert_eq!(release["detail"], "released");
    assert!(
        store.held().await.unwrap().is_empty(),
        "released after cancel"
    );
    // The child generation was cancelled with its parent.
    let child = format!("{id}.generate");
    let (code, _) = get_json(
        &http,
        &format!("{}/api/workflows/{child}/status", node.http),
    )
    .await;
    assert_eq!(
        code, 404,
        "children are not workflows of their own for the API"
    );

    // A bad language is refused before anything starts.
    let r = http
        .post(format!("{}/api/workflows/codegen", node.http))
        .json(&json!({"requirements": "x", "language": "cobol"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn orrery_run_starts_a_workflow_shows_its_steps_and_saves_the_report() {
    let sb = Sandbox::start().await;
    let node = sb.node("wcli1", DEFAULT_MODEL_CONFIG).await;
    let out = sb.dir.path().join("cli.pdf");
    let run = tokio::task::spawn_blocking({
        let (url, out) = (node.http.clone(), out.clone());
        move || {
            Command::new(env!("CARGO_BIN_EXE_orrery"))
                .args(["run", "report", "--url", &url, "--max-tokens", "24"])
                .args(["--title", "Volcanoes"])
                .arg("--out")
                .arg(&out)
                .arg("Why do volcanoes erupt?")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}\n{}", node.log());
    assert!(stderr.contains("render completed"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        out.display().to_string()
    );
    assert!(std::fs::read(&out).unwrap().starts_with(b"%PDF-"));

    // The other kinds print their parts: (arguments, what the output shows).
    let kinds: [(&[&str], &[&str]); 3] = [
        (
            &[
                "ask",
                "--max-tokens",
                "12",
                "What is the capital of France?",
            ],
            &["Paris"],
        ),
        (
            &[
                "multi-agent",
                "--max-tokens",
                "8",
                "--roles",
                "architect,backend_developer",
                "A to-do list app",
            ],
            &[
                "== architect (completed)",
                "== backend_developer (completed)",
                "== review",
            ],
        ),
        (
            &[
                "codegen",
                "--max-tokens",
                "12",
                "--language",
                "python",
                "A function that adds two numbers",
            ],
            &["== code (python)", "== review"],
        ),
    ];
    for (args, shows) in kinds {
        let url = node.http.clone();
        let run = tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_orrery"))
                .arg("run")
                .args(["--url", &url])
                .args(args)
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr),
        );
        assert!(run.status.success(), "{args:?}: {stderr}");
        for s in shows {
            assert!(stdout.contains(s), "{args:?} shows {s:?}: {stdout}");
        }
    }
}

/// Starts `kind` on a 3-node mesh (the first node serves no model), waits until its LLM step
/// `step` generates, kills -9 the node generating it, and waits for the workflow to complete
/// elsewhere. Then every LLM step was one child, started once and completed once, and each
/// completed child's answer was generated once. The result's JSON.
async fn kill_during(kind: &str, body: Value, step: &str, llm_steps: &[&str]) -> Value {
    use crate::cluster::{Mesh, synthetic_with};
    use orrery::workflows::{AskStage, AskWorkflow};
    let mesh = Mesh::new(3).await;
    let config = |load| {
        format!(
            "{}[autoscaling]\nenabled = false\n",
            synthetic_with(load, 4, 10, 1, 8)
        )
    };
    let n2 = mesh.node(0, &config(false)).await;
    let n3 = mesh.node(1, &config(true)).await;
    let n4 = mesh.node(2, &config(true)).await;
    crate::harness::wait_cluster(&n2, &["n2", "n3", "n4"], "up").await;
    let mut nodes = vec![n3, n4];

    let id = start(&n2, kind, body).await;
    let client = crate::websocket::temporal_client(&mesh.sb).await;
    let child = format!("{id}.{step}");
    let generating = wait_for(
        &format!("{child} to generate"),
        Duration::from_secs(120),
        || async {
            let stage = client
                .get_workflow_handle::<AskWorkflow>(child.clone())
                .query(AskWorkflow::stage, (), Default::default())
                .await
                .ok()?;
            match stage {
                AskStage::Generating { node, .. } => Some(node.to_string()),
                _ => None,
            }
        },
    )
    .await;
    let victim = nodes
        .iter()
        .position(|n| n.id == generating)
        .expect("a generating node");
    let mut dead = nodes.remove(victim);
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();

    let st = until_ended(&n2, &id, Duration::from_secs(180)).await;
    assert_eq!(st["status"], "completed", "{st}\n{}", n2.log());
    let http = reqwest::Client::new();
    let (_, res) = get_json(
        &http,
        &format!("{}/api/workflows/{id}/result?format=json", n2.http),
    )
    .await;

    let history = history_events(&mesh.sb, &id).await;
    let count = |kind: &str| history.iter().filter(|e| e.contains(kind)).count();
    let n = llm_steps.len();
    assert_eq!(
        count("StartChildWorkflowExecutionInitiated"),
        n,
        "{history:?}"
    );
    assert_eq!(count("ChildWorkflowExecutionCompleted"), n, "{history:?}");
    for s in llm_steps {
        let child = history_events(&mesh.sb, &format!("{id}.{s}")).await;
        let done = child
            .iter()
            .filter(|e| e.contains("ActivityTaskCompleted"))
            .count();
        assert_eq!(done, 1, "{s}: one generation completed: {child:?}");
    }
    assert!(res["result"].is_object(), "{res}");
    let survivor = nodes[0].id.clone();
    json!({"result": res["result"], "survivor": survivor})
}

/// kill -9 mid-workflow, for each kind: it completes on another node and no completed LLM step
/// runs again.
#[tokio::test(flavor = "multi_thread")]
async fn killing_a_node_mid_multi_agent_review_completes_elsewhere_without_repeats() {
    let body = json!({"task": "count", "roles": ["architect", "ui_designer"], "max_tokens": 40});
    let steps = ["architect", "ui_designer", "senior_reviewer"];
    let out = kill_during("multi-agent", body, "senior_reviewer", &steps).await;
    assert_eq!(out["result"]["review"]["node"], out["survivor"], "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_node_mid_report_content_completes_elsewhere_without_repeats() {
    let body = json!({"prompt": "count", "title": "Counting", "max_tokens": 40});
    let out = kill_during("report", body, "content", &["content"]).await;
    assert_eq!(out["result"]["node"], out["survivor"], "{out}");
    assert_eq!(out["result"]["metadata"]["ok"], true, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_a_node_mid_codegen_generation_completes_elsewhere_without_repeats() {
    let body = json!({"requirements": "count", "language": "python", "max_tokens": 40});
    let out = kill_during("codegen", body, "generate", &["generate", "review"]).await;
    assert_eq!(out["result"]["node"], out["survivor"], "{out}");
    assert_eq!(out["result"]["review_status"], "completed", "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_database_url_the_report_row_goes_to_postgresql() {
    let pg = crate::postgres::Postgres::start();
    let sb = Sandbox::start().await;
    let node = sb
        .node_with_env(
            "wpg1",
            DEFAULT_MODEL_CONFIG,
            &[("ORRERY_DATABASE_URL", &pg.url())],
        )
        .await;
    let id = start(
        &node,
        "report",
        json!({"prompt": "Why is the sky blue?", "title": "Blue skies", "max_tokens": 24}),
    )
    .await;
    let st = until_ended(&node, &id, Duration::from_secs(240)).await;
    assert_eq!(st["status"], "completed", "{st}\n{}", node.log());
    let (_, res) = get_json(
        &reqwest::Client::new(),
        &format!("{}/api/workflows/{id}/result?format=json", node.http),
    )
    .await;
    assert_eq!(res["result"]["metadata"]["ok"], true, "{res}");
    assert_eq!(res["result"]["metadata"]["detail"], "postgres");
    let row = Store::new(Secret::new(pg.url()))
        .report(&id)
        .await
        .unwrap()
        .expect("the row in PostgreSQL");
    assert_eq!(row.title, "Blue skies");
    assert_eq!(row.model, "smollm2-135m");
    // Nothing went to the default SQLite file.
    assert!(!sb.dir.path().join("wpg1").join("orrery.db").exists());
    assert!(
        !node.log().contains(&pg.url()),
        "the database URL is never logged"
    );
}

/// A model that cannot load (its file is missing): its agent fails at run time.
fn config_with_broken_model() -> String {
    format!(
        "{}\n[[models]]\nid = \"broken\"\nsource = \"path:/nonexistent/broken.gguf\"\nload = false\n",
        config_with_slow_synthetic()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_agent_is_reported_and_integration_continues_or_the_task_fails_and_cancel_reaches_children()
 {
    let sb = Sandbox::start().await;
    let node = sb.node("wf1", &config_with_broken_model()).await;
    let http = reqwest::Client::new();
    let roles =
        json!(["architect", {"role": "qa", "prompt": "You test software.", "model": "broken"}]);

    // continue: the task completes with what exists; the failed agent is named.
    let id = start(
        &node,
        "multi-agent",
        json!({"task": "A calculator.", "roles": roles, "max_tokens": 12,
               "on_agent_failure": "continue"}),
    )
    .await;
    let st = until_ended(&node, &id, Duration::from_secs(240)).await;
    assert_eq!(st["status"], "completed", "{st}\n{}", node.log());
    let (_, res) = get_json(&http, &format!("{}/api/workflows/{id}/result", node.http)).await;
    let r = &res["result"];
    assert_eq!(r["failed"], json!(["qa"]), "{res}");
    assert_eq!(r["agents"]["qa"]["status"], "failed");
    assert!(
        r["agents"]["qa"]["error"].as_str().unwrap().len() > 3,
        "{res}"
    );
    assert_eq!(r["agents"]["architect"]["status"], "completed");
    assert!(
        r["integration"]
            .as_str()
            .unwrap()
            .contains("## qa\n(no output: the agent failed)"),
        "{res}"
    );
    assert_eq!(r["review"]["status"], "completed");

    // fail: the task fails, saying which agent.
    let id = start(
        &node,
        "multi-agent",
        json!({"task": "A calculator.", "roles": roles, "max_tokens": 12,
               "on_agent_failure": "fail"}),
    )
    .await;
    let st = until_ended(&node, &id, Duration::from_secs(240)).await;
    assert_eq!(st["status"], "failed", "{st}");
    let (_, res) = get_json(&http, &format!("{}/api/workflows/{id}/result", node.http)).await;
    assert_eq!(res["status"], "failed");
    assert!(
        res["error"]["message"].as_str().unwrap().contains("qa"),
        "{res}"
    );

    // Cancelling the parent cancels its running children.
    let id = start(
        &node,
        "multi-agent",
        json!({"task": "count", "roles": ["architect", "ui_designer"], "model": "slow-synthetic",
               "max_tokens": 200}),
    )
    .await;
    let status_url = format!("{}/api/workflows/{id}/status", node.http);
    wait_for("both agents to run", Duration::from_secs(60), || async {
        let (_, st) = get_json(&http, &status_url).await;
        let running = st["steps"]
            .as_array()?
            .iter()
            .filter(|s| s["status"] == "running")
            .count();
        (running == 2).then_some(())
    })
    .await;
    cancel(&http, &node, &id).await;
    let client = crate::websocket::temporal_client(&sb).await;
    for role in ["architect", "ui_designer"] {
        let child = format!("{id}.{role}");
        wait_for(
            &format!("{child} to be cancelled"),
            Duration::from_secs(30),
            || async {
                let d = client
                    .get_workflow_handle::<orrery::workflows::AskWorkflow>(child.clone())
                    .describe(Default::default())
                    .await
                    .ok()?;
                (d.status() == temporalio_client::WorkflowExecutionStatus::Canceled).then_some(())
            },
        )
        .await;
    }
    // A second cancel is refused: it already ended.
    let r = http
        .delete(format!("{}/api/workflows/{id}", node.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
}
