//! `orrery admin`: the admin API from the command line (needs ORRERY_ADMIN_TOKEN).

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

pub async fn run(AdminArgs { url, action }: AdminArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var("ORRERY_ADMIN_TOKEN")
        .map_err(|_| anyhow::anyhow!("set ORRERY_ADMIN_TOKEN to the cluster's admin token"))?;
    use orrery::client::admin_call;
    use reqwest::Method;
    let v = match action {
        AdminAction::Drain { node } => {
            admin_call(
                &url,
                Method::POST,
                &format!("/admin/nodes/{node}/drain"),
                &token,
                None,
            )
            .await?
        }
        AdminAction::Undrain { node } => {
            admin_call(
                &url,
                Method::POST,
                &format!("/admin/nodes/{node}/undrain"),
                &token,
                None,
            )
            .await?
        }
        AdminAction::Cluster => {
            admin_call(&url, Method::GET, "/admin/cluster", &token, None).await?
        }
        AdminAction::Decisions => {
            let v = admin_call(&url, Method::GET, "/admin/decisions", &token, None).await?;
            for d in v["decisions"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<14} {:<28} {}",
                    d["at_ms"],
                    d["model"].as_str().unwrap_or("-"),
                    d["directive"]
                        .as_object()
                        .map(|o| {
                            format!(
                                "{} {}",
                                o["action"].as_str().unwrap_or(""),
                                o.get("node").and_then(|n| n.as_str()).unwrap_or("")
                            )
                        })
                        .unwrap_or_else(|| "note".into()),
                    d["reason"].as_str().unwrap_or("")
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        AdminAction::Policy { json } => {
            let body: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| anyhow::anyhow!("the policy is not JSON: {e}"))?;
            admin_call(&url, Method::PUT, "/admin/policy", &token, Some(body)).await?
        }
        AdminAction::Replicas { model, count } => {
            let n: Option<u32> = match count.as_str() {
                "none" => None,
                c => Some(
                    c.parse()
                        .map_err(|_| anyhow::anyhow!("count is a number or `none`"))?,
                ),
            };
            let body = serde_json::json!({ "replicas": n });
            admin_call(
                &url,
                Method::POST,
                &format!("/admin/models/{model}/replicas"),
                &token,
                Some(body),
            )
            .await?
        }
        AdminAction::Pause => {
            admin_call(&url, Method::POST, "/admin/autoscaling/pause", &token, None).await?
        }
        AdminAction::Resume => {
            admin_call(
                &url,
                Method::POST,
                "/admin/autoscaling/resume",
                &token,
                None,
            )
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(ExitCode::SUCCESS)
}
