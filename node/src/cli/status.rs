//! `orrery status`: the cluster as a table (or JSON).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct StatusArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
    pub url: String,
    /// Print the JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// API key, when the node needs one.
    #[arg(long, env = "ORRERY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub async fn run(StatusArgs { url, json, api_key }: StatusArgs) -> anyhow::Result<ExitCode> {
    let view = orrery::client::cluster(&url, api_key.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{}", orrery::client::cluster_table(&view));
    }
    Ok(ExitCode::SUCCESS)
}
