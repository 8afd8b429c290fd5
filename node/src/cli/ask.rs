//! `orrery ask`: ask a question and stream the answer to stdout (the footer goes to stderr).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AskArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
    pub url: String,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; 0 (the default here) is greedy, so answers are reproducible.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long)]
    pub seed: Option<u64>,
    /// API key, when the node needs one.
    #[arg(long, env = "ORRERY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    pub prompt: Vec<String>,
}

pub async fn run(a: AskArgs) -> anyhow::Result<ExitCode> {
    let AskArgs {
        url,
        model,
        max_tokens,
        temperature,
        seed,
        api_key,
        prompt,
    } = a;
    let prompt = prompt.join(" ");
    if prompt.trim().is_empty() {
        anyhow::bail!("give a question: orrery ask \"What is the capital of France?\"");
    }
    let args = orrery::client::AskArgs {
        url,
        model,
        max_tokens,
        temperature: Some(temperature),
        seed,
        api_key,
        prompt,
    };
    let mut stdout = std::io::stdout();
    match orrery::client::ask(&args, &mut stdout).await {
        Ok(done) => {
            eprintln!(
                "— {} on {} · {} tokens · {} ms",
                done["model"].as_str().unwrap_or("?"),
                done["node"].as_str().unwrap_or("?"),
                done["usage"]["completion_tokens"],
                done["timings"]["total_ms"]
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(orrery::client::ClientError::Cancelled) => {
            eprintln!("\n— cancelled");
            Ok(ExitCode::from(130))
        }
        Err(e) => {
            eprintln!("\nerror: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
