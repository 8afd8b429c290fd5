//! The peer: llama.cpp's `llama-bench` and `llama-server`, built by `bench/build-peer` outside the
//! repository. Same GGUF, same machine, same run.

use crate::stats::round;
use anyhow::{Context, bail};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Peer {
    /// Folder holding `llama-bench` and `llama-server`.
    pub bin: PathBuf,
}

/// What `llama-bench` measured at one thread count.
#[derive(Clone, Debug)]
pub struct PeerBench {
    pub pp_tps: f64,
    pub tg_tps: f64,
    pub peak_rss_mib: f64,
}

impl Peer {
    pub fn new(bin: PathBuf) -> anyhow::Result<Peer> {
        for tool in ["llama-bench", "llama-server"] {
            if !bin.join(tool).is_file() {
                bail!(
                    "{} not found: run bench/build-peer (or pass --peer DIR)",
                    bin.join(tool).display()
                );
            }
        }
        Ok(Peer { bin })
    }

    /// `llama-bench -p P -n N -t T -r R`: mean tokens/s of prompt processing and generation.
    pub fn llama_bench(
        &self,
        model: &Path,
        prompt_tokens: u32,
        gen_tokens: u32,
        threads: usize,
        reps: usize,
    ) -> anyhow::Result<PeerBench> {
        let mut cmd = Command::new(self.bin.join("llama-bench"));
        cmd.arg("-m")
            .arg(model)
            .args([
                "-p",
                &prompt_tokens.to_string(),
                "-n",
                &gen_tokens.to_string(),
            ])
            .args([
                "-t",
                &threads.to_string(),
                "-r",
                &reps.to_string(),
                "-o",
                "json",
            ]);
        let (stdout, peak_kib) = run_measured(&mut cmd)?;
        let results: Vec<Value> = serde_json::from_str(&stdout)
            .with_context(|| format!("llama-bench output: {stdout}"))?;
        let pick = |prompt: bool| {
            results
                .iter()
                .find(|r| (r["n_prompt"].as_u64().unwrap_or(0) > 0) == prompt)
                .and_then(|r| r["avg_ts"].as_f64())
                .map_or(f64::NAN, |v| round(v, 1))
        };
        Ok(PeerBench {
            pp_tps: pick(true),
            tg_tps: pick(false),
            peak_rss_mib: round(peak_kib as f64 / 1024.0, 1),
        })
    }

    /// Starts `llama-server --parallel N` (continuous batching, the GGUF's own chat template) and
    /// waits until it has loaded the model.
    pub async fn server(
        &self,
        model: &Path,
        parallel: usize,
        ctx_per_slot: usize,
        threads: usize,
        log_dir: &Path,
    ) -> anyhow::Result<LlamaServer> {
        let port = crate::sandbox::free_port("127.0.0.1")?;
        let log_path = log_dir.join(format!("llama-server-{parallel}.log"));
        let log = std::fs::File::create(&log_path)?;
        let t = threads.to_string();
        let child = tokio::process::Command::new(self.bin.join("llama-server"))
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-t", &t, "-tb", &t, "--parallel", &parallel.to_string()])
            .args([
                "-c",
                &(parallel * ctx_per_slot).to_string(),
                "--jinja",
                "--no-webui",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting llama-server")?;
        let mut server = LlamaServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{}/health", server.url)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("llama-server exited at start ({status}):\n{}", server.log());
            }
            if Instant::now() > deadline {
                bail!("llama-server not healthy after 60 s:\n{}", server.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A running `llama-server`; killed on drop.
pub struct LlamaServer {
    child: tokio::process::Child,
    pub url: String,
    log_path: PathBuf,
}

impl LlamaServer {
    pub fn log(&self) -> String {
        crate::sandbox::tail(&self.log_path, 30)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs `cmd` to the end and returns its stdout and its peak resident memory in KiB.
fn run_measured(cmd: &mut Command) -> anyhow::Result<(String, i64)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_string(&mut stdout)?;
    }
    let mut status = 0;
    // SAFETY: rusage is plain old data, and wait4 reaps our own child, which std has not waited
    // for; std never waits for it afterwards (Child does not wait on drop).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (wait status {status})");
    }
    // Linux reports ru_maxrss in KiB.
    Ok((stdout, usage.ru_maxrss))
}
