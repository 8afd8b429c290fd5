//! The `orrery` binary: parse the command line, load the configuration, start tracing, run.

use clap::{Parser, Subcommand};
use orrery::config::{Config, Overrides};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "An LLM chat cluster on Temporal, ractor and candle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything on this machine: an embedded Temporal dev server and one node with the
    /// default model; prints the URLs.
    Up {
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        /// HTTP address of the node (web UI, APIs).
        #[arg(long)]
        http: Option<String>,
        /// Where the Temporal database and other state live.
        #[arg(long)]
        data_dir: Option<String>,
        /// Port of the embedded Temporal server (its UI gets this + 1000).
        #[arg(long)]
        temporal_port: Option<u16>,
    },
    /// Run a node against an existing Temporal server.
    Node {
        #[arg(long, default_value = "cluster.toml")]
        config: PathBuf,
        #[arg(long)]
        http: Option<String>,
        #[arg(long)]
        data_dir: Option<String>,
        #[arg(long)]
        node_id: Option<String>,
        /// Temporal frontend HOST:PORT.
        #[arg(long)]
        temporal: Option<String>,
        /// This node's mesh address, IP:PORT (joins the cluster; needs ORRERY_CLUSTER_COOKIE).
        #[arg(long)]
        cluster: Option<String>,
        /// Mesh addresses of other nodes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<String>>,
    },
    /// Ask a question and stream the answer.
    Ask {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
        url: String,
        #[arg(long)]
        model: Option<String>,
        #[arg(long)]
        max_tokens: Option<u32>,
        /// Sampling temperature; 0 (the default here) is greedy, so answers are reproducible.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long)]
        seed: Option<u64>,
        /// API key, when the node needs one.
        #[arg(long, env = "ORRERY_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        prompt: Vec<String>,
    },
    /// Make an API key: prints the key (hand it to the user) and the entry for the keys file,
    /// which holds only its sha256.
    Keygen {
        #[arg(long)]
        user: String,
        /// free | premium | enterprise
        #[arg(long, default_value = "free")]
        tier: String,
    },
    /// Show the cluster: nodes, their state, models and load.
    Status {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
        url: String,
        /// Print the JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Work with model files.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Administer the cluster (needs ORRERY_ADMIN_TOKEN).
    Admin {
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "ORRERY_URL")]
        url: String,
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Subcommand)]
enum ModelsAction {
    /// What a GGUF holds and whether this engine runs it: architecture, parameters, tensor
    /// formats, context, template, and the memory it will take here.
    Inspect {
        /// A file path, or a source as cluster.toml writes it (package:…, path:…, hf:…).
        source: String,
        /// Answers generated at once (each holds a KV cache).
        #[arg(long, default_value_t = 4)]
        sequences: usize,
        /// Context per sequence, in tokens (default: the engine's default, capped by the
        /// model's own).
        #[arg(long)]
        context: Option<usize>,
    },
}

#[derive(Subcommand)]
enum AdminAction {
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ORRERY_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,temporalio_sdk_core=warn,temporalio_sdk=warn,ractor=warn",
        )
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: &PathBuf, overrides: &Overrides) -> anyhow::Result<Config> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(Config::resolve(text.as_deref(), &env, overrides)?)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up {
            config,
            http,
            data_dir,
            temporal_port,
        } => {
            init_tracing();
            let overrides = Overrides {
                http,
                data_dir,
                embedded: Some(true),
                temporal_address: temporal_port.map(|p| format!("127.0.0.1:{p}")),
                ..Default::default()
            };
            let config = load_config(&config, &overrides)?;
            orrery::app::run(config)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Node {
            config,
            http,
            data_dir,
            node_id,
            temporal,
            cluster,
            seeds,
        } => {
            init_tracing();
            let overrides = Overrides {
                http,
                data_dir,
                node_id,
                temporal_address: temporal,
                embedded: Some(false),
                cluster_listen: cluster,
                seeds,
            };
            let config = load_config(&config, &overrides)?;
            orrery::app::run(config)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask {
            url,
            model,
            max_tokens,
            temperature,
            seed,
            api_key,
            prompt,
        } => {
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
        Command::Status { url, json } => {
            let view = orrery::client::cluster(&url).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", orrery::client::cluster_table(&view));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin { url, action } => {
            let token = std::env::var("ORRERY_ADMIN_TOKEN").map_err(|_| {
                anyhow::anyhow!("set ORRERY_ADMIN_TOKEN to the cluster's admin token")
            })?;
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
        Command::Models {
            action:
                ModelsAction::Inspect {
                    source,
                    sequences,
                    context,
                },
        } => inspect_model(&source, sequences, context),
        Command::Keygen { user, tier } => {
            let user = orrery::users::UserId::parse(&user).ok_or_else(|| {
                anyhow::anyhow!("user names are 1-64 letters, digits, '-', '_', '.' or '@'")
            })?;
            let tier: orrery::users::Tier = tier.parse().map_err(|e: String| anyhow::anyhow!(e))?;
            let (key, entry) = orrery::users::keys::generate(&user, tier);
            eprintln!("the key (shown once; give it to {user}):");
            println!("{key}");
            eprintln!("\nadd to the keys file ([auth] keys_file in cluster.toml):\n\n{entry}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `orrery models inspect`: prints the report; exits non-zero when the engine cannot run the file.
fn inspect_model(
    source: &str,
    sequences: usize,
    context: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let path = if std::path::Path::new(source).exists() {
        PathBuf::from(source)
    } else {
        let parsed = orrery::config::parse_source(source).map_err(|e| anyhow::anyhow!(e))?;
        let home = PathBuf::from(std::env::var("ORRERY_HOME").unwrap_or_else(|_| ".orrery".into()));
        tokio::task::block_in_place(|| orrery::actors::model_holder::gguf_path(&parsed, &home))?
    };
    let gguf = orrery_cpu::gguf::Gguf::open(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut report = orrery_cpu::inspect::Inspection::of(&gguf);
    if let Err(e) = orrery_cpu::tokenizer::Tokenizer::from_gguf(&gguf) {
        report.problems.push(format!("tokenizer: {e}"));
    }
    let model_context = report.shape.as_ref().map_or(0, |c| c.context_len);
    let context = context
        .unwrap_or(orrery::engine::DEFAULT_CONTEXT)
        .min(model_context.max(1));
    println!("file          {}", path.display());
    println!("{report}");
    if report.shape.is_some() {
        println!(
            "memory here   {:.1} MiB with {sequences} sequences of {context} tokens",
            report.memory_bytes(sequences, context) as f64 / (1u64 << 20) as f64
        );
    }
    Ok(if report.supported() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
