//! Temporal plumbing outside workflow code: the embedded dev server (a child process of `orrery
//! up`) and the client connection (plain, mTLS or API key).

use crate::config::{Config, TemporalTarget};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, TlsOptions, Url,
};
use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    #[error("could not start the Temporal dev server ({cli}): {source}")]
    Spawn { cli: String, source: std::io::Error },
    #[error("could not open the Temporal dev server's log {path}: {source}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the Temporal dev server exited at start ({status}); is port {port} already in use? its output: {output}"
    )]
    Exited {
        status: String,
        port: u16,
        output: String,
    },
    #[error("Temporal at {address} did not answer within {secs} s: {last}")]
    Unreachable {
        address: String,
        secs: u64,
        last: String,
    },
    #[error("reading TLS file {path}: {source}")]
    TlsFile {
        path: String,
        source: std::io::Error,
    },
    #[error("bad Temporal address {0}")]
    BadAddress(String),
}

/// What the server wrote to its log from byte `start` on (this start's output), at most 2000
/// characters.
fn log_since(path: &Path, start: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(start).unwrap_or(usize::MAX).min(text.len());
    String::from_utf8_lossy(&text[from..])
        .chars()
        .take(2000)
        .collect()
}

/// A `temporal server start-dev` child process with its SQLite file (and its log beside it:
/// `temporal.db` → `temporal.log`); stopped on drop.
pub struct EmbeddedTemporal {
    child: Child,
    pub address: String,
    pub ui_url: Option<String>,
}

impl EmbeddedTemporal {
    /// Starts the dev server and waits until its frontend accepts connections.
    pub async fn start(
        cli: &Path,
        port: u16,
        ui_port: Option<u16>,
        db_file: &Path,
    ) -> Result<Self, TemporalError> {
        let mut cmd = Command::new(cli);
        cmd.args(["server", "start-dev", "--ip", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--db-filename")
            .arg(db_file)
            .args(["--log-level", "error", "--namespace", "default"]);
        match ui_port {
            Some(p) => {
                cmd.arg("--ui-port").arg(p.to_string());
            }
            None => {
                cmd.arg("--headless");
            }
        }
        // The server's log goes to a file beside its database, never to a pipe: nobody reads a
        // pipe once the server is up, and a full one (64 KiB of errors, which a loaded server
        // writes within minutes) blocks every server thread that logs, hanging the requests
        // they serve. The file also keeps what a crashed server said.
        let log_path = db_file.with_extension("log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| TemporalError::Log {
                path: log_path.display().to_string(),
                source,
            })?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; it asks the kernel to end the server with us, so a
        // killed node leaves no orphan dev server behind.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| TemporalError::Spawn {
            cli: cli.display().to_string(),
            source,
        })?;
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TemporalError::Exited {
                    status: status.to_string(),
                    port,
                    output: log_since(&log_path, log_start),
                });
            }
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(TemporalError::Unreachable {
                    address,
                    secs: 60,
                    last: "port never opened".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            child,
            address,
            ui_url: ui_port.map(|p| format!("http://127.0.0.1:{p}")),
        })
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the server at once (SIGKILL), as a crash would; its database file stays.
    pub async fn crash(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Asks the server to stop, and kills it if it does not within a few seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Connects to Temporal, retrying until `wait` has passed (a just-started server needs a moment).
pub async fn connect(
    config: &Config,
    identity: &str,
    wait: Duration,
) -> Result<Client, TemporalError> {
    let address = config.temporal_address();
    let t = &config.temporal;
    let scheme = if t.tls.is_some() || t.api_key.is_some() {
        "https"
    } else {
        "http"
    };
    let url = Url::parse(&format!("{scheme}://{address}"))
        .map_err(|_| TemporalError::BadAddress(address.clone()))?;
    let tls = tls_options(t)?;
    let opts = ConnectionOptions::new(url)
        .identity(identity.to_string())
        .maybe_tls_options(tls)
        .maybe_api_key(t.api_key.as_ref().map(|k| k.expose().to_string()))
        .connect_timeout(Duration::from_secs(5))
        .build();
    let started = Instant::now();
    let deadline = started + wait;
    let mut backoff = Duration::from_millis(250);
    let mut next_report = started;
    loop {
        match Connection::connect(opts.clone()).await {
            Ok(conn) => {
                // The codec rides on the client's options: the workers built from this client
                // and the activities' heartbeats use it too.
                let options = ClientOptions::new(t.namespace.clone())
                    .data_converter(crate::codec::data_converter(t.payload_keys.clone()))
                    .build();
                let client =
                    Client::new(conn, options).map_err(|e| TemporalError::Unreachable {
                        address: address.clone(),
                        secs: wait.as_secs(),
                        last: e.to_string(),
                    })?;
                return Ok(client);
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(TemporalError::Unreachable {
                    address,
                    secs: wait.as_secs(),
                    last: e.to_string(),
                });
            }
            Err(e) => {
                // Say what the node waits for (not only in debug logs), every 10 s or so.
                if Instant::now() >= next_report {
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                    tracing::warn!(temporal = %address, error = %e, gives_up_in_secs = left,
                        "waiting for the Temporal server");
                    next_report = Instant::now() + Duration::from_secs(10);
                }
                tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// TLS for the connection: mutual TLS from the configured files, server-only TLS for an API key
/// (Temporal Cloud), or none.
fn tls_options(t: &crate::config::TemporalConfig) -> Result<Option<TlsOptions>, TemporalError> {
    Ok(match &t.tls {
        // An API key (Temporal Cloud) needs TLS too: server verified with the system's roots.
        None if t.api_key.is_some() => Some(TlsOptions::builder().build()),
        None => None,
        Some(tls) => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|source| TemporalError::TlsFile {
                    path: p.display().to_string(),
                    source,
                })
            };
            let ca = tls.ca_cert.as_deref().map(read).transpose()?;
            let client = ClientTlsOptions::builder()
                .client_cert(read(&tls.client_cert)?)
                .client_private_key(read(&tls.client_key)?)
                .build();
            Some(
                TlsOptions::builder()
                    .maybe_server_root_ca_cert(ca)
                    .maybe_domain(tls.domain.clone())
                    .client_tls_options(client)
                    .build(),
            )
        }
    })
}

/// Starts the embedded server when the configuration asks for one.
pub async fn start_embedded_if_configured(
    config: &Config,
) -> Result<Option<EmbeddedTemporal>, Box<dyn std::error::Error + Send + Sync>> {
    let TemporalTarget::Embedded { port, ui_port } = config.temporal.target else {
        return Ok(None);
    };
    let cli = crate::setup::ensure_temporal_cli(&config.home)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let db = config.data_dir.join("temporal.db");
    let server = EmbeddedTemporal::start(&cli, port, Some(ui_port), &db).await?;
    Ok(Some(server))
}
