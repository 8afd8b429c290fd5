//! `orrery run KIND ...`: start a workflow (report, multi-agent, codegen, ask) over REST, show its
//! steps as they finish (stderr), then print its result (a report's PDF is saved to a file).

use anyhow::Context;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct RunArgs {
    /// report | multi-agent | codegen | ask
    pub kind: String,
    /// The prompt, task or requirements.
    pub text: Vec<String>,
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
    pub url: String,
    #[arg(long)]
    pub model: Option<String>,
    /// Most tokens each LLM step may write.
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// report: its title (default: the prompt's first line).
    #[arg(long)]
    pub title: Option<String>,
    /// multi-agent: the roles, comma-separated (default: architect,ui_designer,backend_developer).
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// codegen: the language.
    #[arg(long)]
    pub language: Option<String>,
    /// report: where to save the PDF (default: ./<workflow id>.pdf).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Print the result JSON as it is.
    #[arg(long)]
    pub json: bool,
    #[arg(long, env = "ORRERY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

fn body(a: &RunArgs, text: String) -> anyhow::Result<Value> {
    let mut b = match a.kind.as_str() {
        "report" | "generate-report" => json!({"prompt": text, "title": a.title}),
        "multi-agent" => {
            let mut b = json!({"task": text});
            if !a.roles.is_empty() {
                b["roles"] = json!(a.roles);
            }
            b
        }
        "codegen" => {
            let language = a
                .language
                .clone()
                .context("codegen needs --language (rust, python, ...)")?;
            json!({"requirements": text, "language": language})
        }
        "ask" => json!({"prompt": text, "temperature": 0}),
        other => {
            anyhow::bail!("no workflow kind `{other}`; use report, multi-agent, codegen or ask")
        }
    };
    if let Some(m) = &a.model {
        b["model"] = json!(m);
    }
    if let Some(n) = a.max_tokens {
        b["max_tokens"] = json!(n);
    }
    if let Some(o) = b.as_object_mut() {
        o.retain(|_, v| !v.is_null());
    }
    Ok(b)
}

pub async fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let text = a.text.join(" ");
    if text.trim().is_empty() {
        anyhow::bail!("give the text: orrery run report \"The history of tides\"");
    }
    let body = body(&a, text)?;
    let http = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| match &a.api_key {
        Some(k) => r.bearer_auth(k),
        None => r,
    };
    let base = a.url.trim_end_matches('/');
    let r = auth(http.post(format!("{base}/api/workflows/{}", a.kind)))
        .json(&body)
        .send()
        .await?;
    let status = r.status();
    let started: Value = r.json().await?;
    if !status.is_success() {
        eprintln!(
            "error: {}",
            started["error"]["message"].as_str().unwrap_or("?")
        );
        return Ok(ExitCode::FAILURE);
    }
    let id = started["workflow_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    eprintln!("started {id}");
    let mut shown = 0usize;
    loop {
        let st: Value = auth(http.get(format!("{base}/api/workflows/{id}/status")))
            .send()
            .await?
            .json()
            .await?;
        let steps = st["steps"].as_array().cloned().unwrap_or_default();
        let finished: Vec<&Value> = steps
            .iter()
            .filter(|s| !matches!(s["status"].as_str(), Some("pending" | "running")))
            .collect();
        for s in finished.iter().skip(shown) {
            eprintln!(
                "  {} {}{}",
                s["name"].as_str().unwrap_or("?"),
                s["status"].as_str().unwrap_or("?"),
                s["detail"]
                    .as_str()
                    .map(|d| format!(" · {d}"))
                    .unwrap_or_default()
            );
        }
        shown = shown.max(finished.len());
        if st["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let is_report = matches!(a.kind.as_str(), "report" | "generate-report");
    let r = auth(http.get(format!("{base}/api/workflows/{id}/result")))
        .send()
        .await?;
    let pdf = r
        .headers()
        .get("content-type")
        .is_some_and(|c| c.as_bytes().starts_with(b"application/pdf"));
    if is_report && pdf {
        let path = a.out.clone().unwrap_or_else(|| format!("{id}.pdf").into());
        std::fs::write(&path, r.bytes().await?)?;
        println!("{}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let v: Value = r.json().await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if let Some(t) = v["text"].as_str() {
        println!("{t}");
    } else {
        print_parts(&v["result"]);
    }
    let ok = v["status"] == "completed";
    if !ok {
        eprintln!(
            "{}: {}",
            v["status"],
            v["error"]["message"].as_str().unwrap_or("")
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The parts of a result a person reads: each agent's text, the review, the code.
fn print_parts(r: &Value) {
    if let Some(agents) = r["agents"].as_object() {
        for (role, a) in agents {
            println!("== {role} ({})", a["status"].as_str().unwrap_or("?"));
            println!(
                "{}\n",
                a["text"].as_str().or(a["error"].as_str()).unwrap_or("")
            );
        }
    }
    if let Some(code) = r["code"].as_str() {
        println!(
            "== code ({})\n{code}\n",
            r["language"].as_str().unwrap_or("?")
        );
    }
    match &r["review"] {
        Value::String(s) => println!("== review\n{s}"),
        Value::Object(o) => println!("== review\n{}", o["text"].as_str().unwrap_or("")),
        _ => {}
    }
}
