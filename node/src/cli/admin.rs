//! `orrery admin`: the admin API from the command line (needs ORRERY_ADMIN_TOKEN).

use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AdminArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
    pub url: String,
    #[command(subcommand)]
    pub action: AdminAction,
}

#[derive(clap::Subcommand)]
pub enum AdminAction {
    /// Stop new placements on a node; its in-flight answers finish.
    Drain { node: String },
    /// Let a drained node take work again.
    Undrain { node: String },
    /// The cluster and the scaling loop's state (JSON).
    Cluster,
    /// The scaling loop's decision log.
    Decisions,
    /// Replace the scaling policy with this JSON (fields left out take their defaults).
    Policy { json: String },
    /// Fix a model's replica count, or `none` to go back to its configured bounds.
    Replicas { model: String, count: String },
    /// Stop all scaling actions.
    Pause,
    /// Resume scaling actions.
    Resume,
}

/// The admin API call an action makes: method, path and body.
fn request(action: &AdminAction) -> anyhow::Result<(Method, String, Option<Value>)> {
    Ok(match action {
        AdminAction::Drain { node } => (Method::POST, format!("/admin/nodes/{node}/drain"), None),
        AdminAction::Undrain { node } => {
            (Method::POST, format!("/admin/nodes/{node}/undrain"), None)
        }
        AdminAction::Cluster => (Method::GET, "/admin/cluster".into(), None),
        AdminAction::Decisions => (Method::GET, "/admin/decisions".into(), None),
        AdminAction::Policy { json } => {
            let body: Value = serde_json::from_str(json)
                .map_err(|e| anyhow::anyhow!("the policy is not JSON: {e}"))?;
            (Method::PUT, "/admin/policy".into(), Some(body))
        }
        AdminAction::Replicas { model, count } => {
            let n: Option<u32> = match count.as_str() {
                "none" => None,
                c => Some(
                    c.parse()
                        .map_err(|_| anyhow::anyhow!("count is a number or `none`"))?,
                ),
            };
            let path = format!("/admin/models/{model}/replicas");
            (
                Method::POST,
                path,
                Some(serde_json::json!({ "replicas": n })),
            )
        }
        AdminAction::Pause => (Method::POST, "/admin/autoscaling/pause".into(), None),
        AdminAction::Resume => (Method::POST, "/admin/autoscaling/resume".into(), None),
    })
}

/// The decision log, one line a decision.
fn print_decisions(v: &Value) {
    for d in v["decisions"].as_array().into_iter().flatten() {
        let directive = d["directive"]
            .as_object()
            .map(|o| {
                format!(
                    "{} {}",
                    o["action"].as_str().unwrap_or(""),
                    o.get("node").and_then(|n| n.as_str()).unwrap_or("")
                )
            })
            .unwrap_or_else(|| "note".into());
        println!(
            "{}  {:<14} {:<28} {}",
            d["at_ms"],
            d["model"].as_str().unwrap_or("-"),
            directive,
            d["reason"].as_str().unwrap_or("")
        );
    }
}

pub async fn run(AdminArgs { url, action }: AdminArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var("ORRERY_ADMIN_TOKEN")
        .map_err(|_| anyhow::anyhow!("set ORRERY_ADMIN_TOKEN to the cluster's admin token"))?;
    let (method, path, body) = request(&action)?;
    let v = orrery::client::admin_call(&url, method, &path, &token, body).await?;
    if matches!(action, AdminAction::Decisions) {
        print_decisions(&v);
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(ExitCode::SUCCESS)
}
