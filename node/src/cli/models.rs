//! `orrery models inspect`: what a GGUF holds and whether this engine runs it.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum ModelsAction {
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

pub fn run(action: ModelsAction) -> anyhow::Result<ExitCode> {
    match action {
        ModelsAction::Inspect {
            source,
            sequences,
            context,
        } => inspect(&source, sequences, context),
    }
}

/// `orrery models inspect`: prints the report; exits non-zero when the engine cannot run the file.
pub fn inspect(source: &str, sequences: usize, context: Option<usize>) -> anyhow::Result<ExitCode> {
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
