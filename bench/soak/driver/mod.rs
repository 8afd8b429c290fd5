//! The soak and chaos suite (issue 12): a cluster of `orrery` nodes on loopback serving a
//! synthetic engine, WebSocket users and OpenAI-API stream users asking in a loop, a random node
//! killed -9 and restarted on a schedule, the Temporal server killed -9 and restarted on its
//! database; every ask's end checked against the only text it may have, RSS sampled.
//!
//! Shared by `scripts/soak` (bench/soak/main.rs) and the short soak of the test suite
//! (node/tests/it/soak.rs), which includes this folder as a module.

// Public for the unit tests of their pure parts (node/tests/it/soak.rs).
pub mod asks;
pub mod chaos;
mod cluster;
#[path = "../../src/fdlimit.rs"]
mod fdlimit;
mod report;
pub mod rss;
#[path = "../../src/sse.rs"]
mod sse;
mod users;

use report::{Bounds, Report};

use chaos::Chaos;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What to run, and the bounds to judge it by.
#[derive(Clone, Debug)]
pub struct SoakOptions {
    pub nodes: usize,
    pub websocket_users: usize,
    pub openai_streams: usize,
    /// How long users keep asking and the chaos goes on.
    pub duration: Duration,
    /// Synthetic engine tokens/s of each answer.
    pub rate: u32,
    /// Answer lengths, tokens (each ask picks one).
    pub tokens: (u32, u32),
    /// A user's pause between the end of one ask and the next.
    pub think: (Duration, Duration),
    /// A random node is killed -9 and restarted this often.
    pub node_kill_every: Option<Duration>,
    /// The Temporal server is killed -9 and restarted on its database this often (half a node
    /// period off the node kills).
    pub temporal_kill_every: Option<Duration>,
    /// How long Temporal stays down when killed.
    pub temporal_down: Duration,
    /// Longest an ask may take from sending to its end.
    pub ask_deadline: Duration,
    pub rss_every: Duration,
    pub max_failed_ratio: f64,
    pub rss_warmup: Duration,
    pub rss_min_span: Duration,
    pub rss_max_slope_mib_per_min: f64,
    /// Most RSS any node process may reach.
    pub rss_max_mib: f64,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// The synthetic model every node serves.
pub const MODEL: &str = "syn";

/// Every limit that would refuse the soak's load is lifted: all users come from one address
/// (loopback) as the anonymous user, 1 000 sockets and more at once.
const LIMITS: &str = "[auth.tiers.free]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [auth.tiers.premium]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [auth.tiers.enterprise]\nmax_concurrent = 100000\nrequests_per_minute = 100000000\n\
     [http]\nmax_ws_per_user = 100000\nmax_ws_per_ip = 100000\nmax_connections = 100000\n";

impl SoakOptions {
    /// The node configuration: the synthetic model on every node, the per-user and per-address
    /// limits lifted (see [`LIMITS`]), the scaling loop off (its own tests cover it; here it
    /// would only add Temporal load to a 2-core machine).
    pub fn node_config(&self) -> String {
        format!(
            "[[models]]\nid = \"{MODEL}\"\nsource = \"synthetic:{}\"\ndefault = true\nload = true\n\
             max_sequences = 64\n[autoscaling]\nenabled = false\n[limits]\nshutdown_grace_secs = 5\n{LIMITS}",
            self.rate
        )
    }

    /// What to break, and when (from the start of the load).
    fn chaos(&self) -> Vec<(Duration, Chaos)> {
        chaos::schedule(
            self.duration,
            self.node_kill_every,
            self.temporal_kill_every,
        )
    }

    fn setup(&self) -> String {
        let plan = self.chaos();
        let kills = |c: Chaos| plan.iter().filter(|(_, x)| *x == c).count();
        format!(
            "Soak: {} nodes (synthetic engine, {} tokens/s, answers of {}–{} tokens), {} WebSocket users + {} OpenAI-API streams, think {:?}–{:?}, {:?} of load; {} node kills (-9, random node), {} Temporal kills (-9, down {:?}, database kept); ask deadline {:?}. Limits lifted for one loopback address: max_ws_per_user = max_ws_per_ip = max_connections = 100000, tier limits 100000.",
            self.nodes,
            self.rate,
            self.tokens.0,
            self.tokens.1,
            self.websocket_users,
            self.openai_streams,
            self.think.0,
            self.think.1,
            self.duration,
            kills(Chaos::KillNode),
            kills(Chaos::KillTemporal),
            self.temporal_down,
            self.ask_deadline
        )
    }
}

/// How busy the machine is: the load average and the share of time something waited for a CPU
/// over the last 5 minutes (`/proc/pressure/cpu`, "some avg300"), for the report's machine line.
fn machine_load() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let pressure = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|p| {
            let some = p.lines().find(|l| l.starts_with("some"))?.to_string();
            let v = some
                .split_whitespace()
                .find_map(|f| f.strip_prefix("avg300="))?;
            Some(format!("{v} %"))
        })
        .unwrap_or_else(|| "unknown".into());
    format!("load average {}, CPU pressure {pressure}", load.join(" "))
}

/// Runs the soak and judges it. An error means the soak could not run (Temporal or a node did
/// not start); a broken promise is in the report.
pub async fn run(o: SoakOptions) -> anyhow::Result<Report> {
    fdlimit::raise_fd_limit();
    let machine_at_start = machine_load();
    let cluster = Arc::new(cluster::Cluster::start(o.nodes, &o.node_config()).await?);
    let nodes: Vec<String> = cluster.nodes.iter().map(|n| n.http.clone()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let t0 = Instant::now();
    let ctx = Arc::new(users::Ctx {
        nodes: nodes.clone(),
        stop_at: t0 + o.duration,
        deadline: o.ask_deadline,
        tokens: o.tokens,
        think: o.think,
        http,
        counts: users::Counts::default(),
    });
    let stop = CancellationToken::new();
    let sampler = tokio::spawn(rss::sample(cluster.clone(), o.rss_every, stop.clone()));
    let chaos = tokio::spawn(chaos::run(
        cluster.clone(),
        o.chaos(),
        o.temporal_down,
        t0,
        o.progress,
    ));
    let progress = o.progress.then(|| {
        let (ctx, stop) = (ctx.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let c = &ctx.counts;
                let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                eprintln!(
                    "soak: {:>5.1} s  sent {}  done {}  failed {}  broken {}  refused connections {}",
                    t0.elapsed().as_secs_f64(),
                    get(&c.sent),
                    get(&c.done),
                    get(&c.failed),
                    get(&c.broken),
                    get(&c.refused)
                );
            }
        })
    });
    let mut tasks = Vec::new();
    for u in 0..o.websocket_users {
        tasks.push(tokio::spawn(users::websocket_user(ctx.clone(), u)));
    }
    for u in 0..o.openai_streams {
        let user = o.websocket_users + u;
        tasks.push(tokio::spawn(users::openai_user(ctx.clone(), user)));
    }
    let mut records = Vec::new();
    for t in tasks {
        match t.await {
            Ok(r) => records.extend(r),
            Err(e) => anyhow::bail!("a user task panicked: {e}"),
        }
    }
    let load_s = t0.elapsed().as_secs_f64();
    let chaos = chaos.await?;
    let final_check = final_check(&cluster, &ctx).await;
    stop.cancel();
    let mut logs: Vec<(String, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.id.clone(), n.log_tail(20)))
        .collect();
    logs.push(("temporal".into(), cluster.temporal_log_tail(20)));
    let samples = sampler.await?;
    if let Some(p) = progress {
        let _ = p.await;
    }
    cluster.stop().await;
    let machine = format!(
        "Machine: {} cores; at the start {machine_at_start}, at the end {} (the soak shares the cores with anything else running: compare runs on an otherwise idle machine).",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        machine_load()
    );
    Ok(Report {
        setup: format!("{}\n\n{machine}", o.setup()),
        bounds: Bounds {
            deadline_s: o.ask_deadline.as_secs_f64(),
            max_failed_ratio: o.max_failed_ratio,
            rss_warmup_s: o.rss_warmup.as_secs_f64(),
            rss_min_span_s: o.rss_min_span.as_secs_f64(),
            rss_max_slope_mib_per_min: o.rss_max_slope_mib_per_min,
            rss_max_mib: o.rss_max_mib,
        },
        records,
        planned_chaos: o.chaos().len(),
        chaos,
        rss: rss::runs(&samples, o.rss_warmup, o.rss_min_span),
        node_ids: cluster.nodes.iter().map(|n| n.id.clone()).collect(),
        refused: ctx.counts.refused.load(Ordering::Relaxed),
        final_check,
        load_s,
        logs,
    })
}

/// After the chaos: the mesh shows every node up again, and each node answers a WebSocket ask
/// and an OpenAI stream with exactly the expected text.
async fn final_check(cluster: &cluster::Cluster, ctx: &users::Ctx) -> Result<(), String> {
    cluster.wait_mesh_up().await.map_err(|e| format!("{e:#}"))?;
    for (i, node) in cluster.nodes.iter().enumerate() {
        for r in users::probe(ctx, i).await {
            if !matches!(r.end, asks::End::Done) {
                return Err(format!("{} answered {:?}", node.id, r.end));
            }
        }
    }
    Ok(())
}
