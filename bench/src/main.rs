//! Orrery's benchmark suite: the engine against llama.cpp, serving under concurrent users against
//! llama-server, the orchestration overhead on time to first token (issue #6), and the cluster
//! orchestration with 1, 2 and 3 nodes (issue #3), the CPU time per ask outside the engine and
//! the token delivery latency of 1 000 WebSocket users on one node (issue 14). Prints tables and
//! writes them as JSON.
//!
//! Run it through `bench/run`, which builds the peer and this binary first. Loopback only.

mod bandwidth;
mod cluster;
mod cpu;
mod engine;
mod fanout;
mod fdlimit;
mod load;
mod machine;
mod multiturn;
mod peer;
mod quiet;
mod report;
mod sandbox;
mod serving;
mod sse;
mod stats;

use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    Engine,
    Serving,
    Overhead,
    Cluster,
    Multiturn,
    Fanout,
}

const ALL: [Section; 6] = [
    Section::Engine,
    Section::Serving,
    Section::Overhead,
    Section::Cluster,
    Section::Multiturn,
    Section::Fanout,
];

#[derive(Parser, Debug)]
#[command(name = "bench/run", about = "Orrery's benchmark suite")]
struct Cli {
    /// Sections to run (default: all). Only a full run writes bench/results/latest.json.
    #[arg(value_enum)]
    sections: Vec<Section>,
    /// Fewer repetitions and shorter loads: a smoke run, not figures to quote.
    #[arg(long)]
    quick: bool,
    /// Folder with llama-bench and llama-server (bench/run passes what bench/build-peer built).
    #[arg(long, env = "ORRERY_BENCH_PEER")]
    peer: Option<PathBuf>,
    /// GGUF to benchmark (default: the default model, SmolLM2-135M-Instruct Q4_1).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Engine section: a second model, of a real shape (bench/run passes the random-weight
    /// Llama-3.2-1B-shaped Q4_K_M file that bench/make-1b writes); measured without the f32 rows.
    #[arg(long, env = "ORRERY_BENCH_MODEL_1B")]
    model_1b: Option<PathBuf>,
    /// Where to write the JSON (default: bench/results/latest.json for a full run,
    /// bench/results/<sections>.tmp otherwise).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Inference threads of the serving and overhead benchmarks (both servers).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Serving and overhead: the node's heartbeat timeout in seconds. The node's default, 4 s,
    /// fails most asks at 16 users on 2 cores (no heartbeat while an answer waits for its first
    /// token).
    #[arg(long, default_value_t = 30)]
    heartbeat_timeout: u64,
    /// Cluster benchmark: cluster sizes to measure, in order (nodes are added, never restarted).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    nodes: Vec<usize>,
    /// Cluster benchmark: concurrent WebSocket clients.
    #[arg(long, default_value_t = 12)]
    clients: usize,
    /// Cluster benchmark: synthetic tokens/s of each answer.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// Cluster benchmark: tokens per answer.
    #[arg(long, default_value_t = 32)]
    answer_tokens: u32,
    /// Cluster benchmark: answers each node generates at once.
    #[arg(long, default_value_t = 4)]
    max_sequences: usize,
    /// Cluster benchmark: seconds of load per cluster size.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Fan-out benchmark: WebSocket users on one node (default 1000, 200 with --quick).
    #[arg(long)]
    fanout_users: Option<usize>,
    /// Longest wait, in seconds, for other work on the machine to quiet down before each
    /// measurement (what it was is recorded either way).
    #[arg(long, default_value_t = 15)]
    max_wait: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    if let Ok(spec) = std::env::var(engine::PROBE_ENV) {
        return engine::probe_main(&spec);
    }
    let cli = Cli::parse();
    let sections: Vec<Section> = if cli.sections.is_empty() {
        ALL.to_vec()
    } else {
        cli.sections.clone()
    };
    let has = |s: Section| sections.contains(&s);
    quiet::set_max_wait(Duration::from_secs(cli.max_wait));
    let q = cli.quick;
    let model = match &cli.model {
        Some(m) => m.clone(),
        None => sandbox::default_model()?,
    };
    let peer = if has(Section::Engine) || has(Section::Serving) || has(Section::Multiturn) {
        let dir = cli.peer.clone().ok_or_else(|| {
            anyhow::anyhow!("llama.cpp is needed: run through bench/run, or pass --peer DIR")
        })?;
        Some(peer::Peer::new(dir)?)
    } else {
        None
    };

    let mut results = report::Results {
        schema: 1,
        machine: machine::Machine::describe(),
        // The file name only: a machine's paths do not belong in the committed results.
        model: model.file_name().map_or_else(
            || model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        load_average_start: machine::load_average(),
        load_average_end: String::new(),
        contention: Vec::new(),
        engine: None,
        engine_1b: None,
        serving: None,
        overhead: None,
        cluster: None,
        multiturn: None,
        fanout: None,
        targets: Vec::new(),
    };
    if let (true, Some(peer)) = (has(Section::Engine), &peer) {
        results.engine = Some(engine::run(&engine::EngineArgs {
            model: &model,
            peer,
            reps: if q { 1 } else { 5 },
            gen_tokens: if q { 32 } else { 128 },
            threads: &[1, 2],
            f32: true,
            // The bundled model has no K-quant matrices: int8 would run the same kernels.
            int8: false,
        })?);
        if let Some(big) = &cli.model_1b {
            results.engine_1b = Some(engine::run(&engine::EngineArgs {
                model: big,
                peer,
                reps: if q { 1 } else { 3 },
                gen_tokens: if q { 16 } else { 64 },
                threads: &[1, 2],
                f32: false,
                int8: true,
            })?);
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    if has(Section::Serving) || has(Section::Overhead) {
        let users: &[usize] = if q { &[1, 8] } else { &[1, 4, 8, 16] };
        let (serving, overhead) = rt.block_on(serving::run(&serving::ServingArgs {
            model: &model,
            peer: peer.as_ref(),
            users,
            max_tokens: if q { 32 } else { 64 },
            threads: cli.threads,
            min_requests: if q { 4 } else { 8 },
            serving: has(Section::Serving),
            heartbeat_timeout_secs: cli.heartbeat_timeout,
            overhead_requests: match (has(Section::Overhead), q) {
                (false, _) => 0,
                (true, true) => 10,
                (true, false) => 30,
            },
        }))?;
        results.serving = serving;
        results.overhead = overhead;
    }
    if has(Section::Overhead) {
        let cpu = rt.block_on(cpu::run(&cpu::CpuArgs {
            asks: if q { 60 } else { 200 },
            clients: 4,
            answer_tokens: 16,
            rate: 2000,
        }))?;
        if let Some(o) = &mut results.overhead {
            o.cpu_ms_per_ask = cpu.cpu_ms_per_ask;
            o.cpu = Some(cpu);
        }
    }
    if has(Section::Cluster) {
        results.cluster = Some(rt.block_on(cluster::run(&cluster::ClusterArgs {
            nodes: &cli.nodes,
            clients: cli.clients,
            rate: cli.rate,
            answer_tokens: cli.answer_tokens,
            max_sequences: cli.max_sequences,
            duration: Duration::from_secs(if q { 8 } else { cli.seconds }),
        }))?);
    }
    if let (true, Some(peer)) = (has(Section::Multiturn), &peer) {
        results.multiturn = Some(rt.block_on(multiturn::run(
            &model,
            peer,
            cli.threads,
            cli.heartbeat_timeout,
        ))?);
    }
    if has(Section::Fanout) {
        // Each answer outlasts the ramp, so that at its end every user streams at once; the
        // whole section stays near 2.5 minutes (30 s with --quick).
        let users = cli.fanout_users.unwrap_or(if q { 200 } else { 1000 });
        results.fanout = Some(rt.block_on(fanout::run(&fanout::FanoutArgs {
            users,
            rate: 4,
            answer_tokens: if q { 80 } else { 320 },
            ramp: Duration::from_millis(60),
        }))?);
    }
    drop(rt);

    results.load_average_end = machine::load_average();
    results.contention = quiet::log();
    results.judge();
    println!("{}", results.tables());
    let results_dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/results"));
    let out = cli.out.clone().unwrap_or_else(|| {
        if sections.len() == ALL.len() && !q {
            results_dir.join("latest.json")
        } else {
            let names: Vec<String> = sections
                .iter()
                .map(|s| format!("{s:?}").to_lowercase())
                .collect();
            let quick = if q { "-quick" } else { "" };
            results_dir.join(format!("{}{quick}.tmp", names.join("-")))
        }
    });
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)? + "\n")?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
