//! `scripts/soak`: the soak and chaos suite at full size (issue 12). Three nodes on loopback with
//! the synthetic engine, 1 000 WebSocket users and 200 OpenAI-API streams asking in a loop, a
//! random node killed -9 and restarted every 20 s, the Temporal server killed -9 and restarted on
//! its database every 3 minutes; prints the asks and how they ended, token delivery, RSS per
//! node and the chaos, then each promise; exits 1 if one is broken.

mod driver;

use clap::Parser;
use driver::SoakOptions;
use std::time::Duration;

/// `90s`, `10m`, `1h`, or plain seconds.
fn duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (90s, 10m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: the unit is one of ms, s, m, h")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[derive(Parser, Debug)]
#[command(
    name = "scripts/soak",
    about = "Orrery's soak and chaos suite (loopback only)"
)]
struct Cli {
    /// How long users ask and the chaos goes on (then in-flight asks finish, within the deadline).
    #[arg(long, default_value = "10m", value_parser = duration)]
    duration: Duration,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 1000)]
    websocket_users: usize,
    #[arg(long, default_value_t = 200)]
    openai_streams: usize,
    /// A random node is killed -9 and restarted this often (0: never).
    #[arg(long, default_value = "20s", value_parser = duration)]
    node_kill_every: Duration,
    /// The Temporal server is killed -9 and restarted on its database this often (0: never).
    #[arg(long, default_value = "180s", value_parser = duration)]
    temporal_kill_every: Duration,
    /// How long Temporal stays down each time.
    #[arg(long, default_value = "5s", value_parser = duration)]
    temporal_down: Duration,
    /// Synthetic engine tokens/s of each answer.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Shortest and longest answer, tokens.
    #[arg(long, default_value_t = 8)]
    min_tokens: u32,
    #[arg(long, default_value_t = 24)]
    max_tokens: u32,
    /// A user's pause between asks: at least this... (the Temporal dev server on SQLite serves
    /// about 10 asks/s on 2 cores: 1 200 users thinking 2–6 minutes make about 5 asks/s)
    #[arg(long, default_value = "120s", value_parser = duration)]
    think_min: Duration,
    /// ...and at most this.
    #[arg(long, default_value = "360s", value_parser = duration)]
    think_max: Duration,
    /// An ask with no end this long after it was sent is lost: a broken promise.
    #[arg(long, default_value = "120s", value_parser = duration)]
    deadline: Duration,
    /// Failed asks (with a reason) allowed, percent of all asks.
    #[arg(long, default_value_t = 2.0)]
    max_failed_pct: f64,
    #[arg(long, default_value = "2s", value_parser = duration)]
    rss_every: Duration,
    /// RSS growth allowed after each process's warm-up, MiB per minute.
    #[arg(long, default_value_t = 8.0)]
    rss_max_slope: f64,
    /// Most RSS a node process may reach, MiB.
    #[arg(long, default_value_t = 256.0)]
    rss_max: f64,
    #[arg(long, default_value = "30s", value_parser = duration)]
    rss_warmup: Duration,
    /// Only processes sampled at least this long after their warm-up are judged.
    #[arg(long, default_value = "60s", value_parser = duration)]
    rss_min_span: Duration,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let every = |d: Duration| (!d.is_zero()).then_some(d);
    let options = SoakOptions {
        nodes: cli.nodes,
        websocket_users: cli.websocket_users,
        openai_streams: cli.openai_streams,
        duration: cli.duration,
        rate: cli.rate,
        tokens: (cli.min_tokens, cli.max_tokens),
        think: (cli.think_min, cli.think_max),
        node_kill_every: every(cli.node_kill_every),
        temporal_kill_every: every(cli.temporal_kill_every),
        temporal_down: cli.temporal_down,
        ask_deadline: cli.deadline,
        rss_every: cli.rss_every,
        max_failed_ratio: cli.max_failed_pct / 100.0,
        rss_warmup: cli.rss_warmup,
        rss_min_span: cli.rss_min_span,
        rss_max_slope_mib_per_min: cli.rss_max_slope,
        rss_max_mib: cli.rss_max,
        progress: true,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(driver::run(options))?;
    println!("{}", report.table());
    if !report.kept() {
        eprintln!("soak: a promise was broken");
        std::process::exit(1);
    }
    Ok(())
}
