//! The command line: `Cli` and its subcommands, one file each; `run` dispatches.

mod admin;
mod ask;
mod keygen;
mod models;
mod run;
mod serve;
mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "orrery",
    version,
    about = "An LLM chat cluster on Temporal, ractor and candle"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything on this machine: an embedded Temporal dev server and one node with the
    /// default model; prints the URLs.
    Up(serve::UpArgs),
    /// Run a node against an existing Temporal server.
    Node(serve::NodeArgs),
    /// Ask a question and stream the answer.
    Ask(ask::AskArgs),
    /// Run a workflow: report, multi-agent, codegen or ask; shows its steps, prints its result.
    Run(run::RunArgs),
    /// Make an API key: prints the key (hand it to the user) and the entry for the keys file,
    /// which holds only its sha256.
    Keygen(keygen::KeygenArgs),
    /// Show the cluster: nodes, their state, models and load.
    Status(status::StatusArgs),
    /// Work with model files.
    Models {
        #[command(subcommand)]
        action: models::ModelsAction,
    },
    /// Administer the cluster (needs ORRERY_ADMIN_TOKEN).
    Admin(admin::AdminArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Up(a) => serve::up(a).await,
        Command::Node(a) => serve::node(a).await,
        Command::Ask(a) => ask::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Keygen(a) => keygen::run(a),
        Command::Status(a) => status::run(a).await,
        Command::Models { action } => models::run(action),
        Command::Admin(a) => admin::run(a).await,
    }
}
