//! The commands a newcomer runs: `orrery up` (embedded Temporal + node) and `orrery ask`.

use crate::harness::{free_port, home, wait_for};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn up_then_ask_answers_paris_and_stops_cleanly() {
    let data = tempfile::tempdir().unwrap();
    let (http, temporal) = (free_port(), free_port());
    let mut up = Command::new(env!("CARGO_BIN_EXE_orrery"))
        .args([
            "up",
            "--http",
            &format!("127.0.0.1:{http}"),
            "--temporal-port",
            &temporal.to_string(),
        ])
        .arg("--data-dir")
        .arg(data.path())
        .env("ORRERY_HOME", home())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("orrery up starts");

    // `up` prints the web URL, the Temporal address and the Temporal UI once it is ready.
    let stdout = up.stdout.take().unwrap();
    let printed = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let done = line.contains("temporal UI:");
            lines.push(line);
            if done {
                break;
            }
        }
        lines.join("\n")
    });
    let printed = tokio::time::timeout(Duration::from_secs(180), printed)
        .await
        .expect("orrery up printed its URLs within 180 s")
        .unwrap();
    assert!(
        printed.contains(&format!("http://127.0.0.1:{http}/")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("127.0.0.1:{temporal}")),
        "{printed}"
    );

    let ask = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_orrery"))
            .args([
                "ask",
                "--url",
                &format!("http://127.0.0.1:{http}"),
                "--temperature",
                "0",
                "--max-tokens",
                "40",
            ])
            .arg("What is the capital of France?")
            .output()
            .expect("orrery ask runs")
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&ask.stdout);
    assert!(
        ask.status.success(),
        "ask failed: {}",
        String::from_utf8_lossy(&ask.stderr)
    );
    assert!(answer.contains("Paris"), "answer: {answer}");
    // `up` encrypts payloads with a key it made and keeps in its data directory, private.
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = data.path().join("payload.keys");
        let mode = std::fs::metadata(&keys)
            .expect("payload.keys")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", keys.display());
        let text = std::fs::read_to_string(&keys).unwrap();
        assert!(orrery::codec::Keyring::parse(&text).is_ok(), "a usable key");
    }
    // The answer is whole lines on stdout, so the footer (stderr) starts on a line of its own.
    assert!(answer.ends_with('\n'), "answer: {answer:?}");
    let footer = String::from_utf8_lossy(&ask.stderr);
    assert!(footer.starts_with("— "), "footer: {footer:?}");

    // SIGTERM stops the node and the embedded Temporal server: nothing is left listening.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(up.id() as i32, libc::SIGTERM);
    }
    let status = tokio::task::spawn_blocking(move || up.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "orrery up exited with {status}");
    wait_for(
        "the embedded Temporal server to be gone",
        Duration::from_secs(30),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", temporal))
                .await
                .err()
                .map(|_| ())
        },
    )
    .await;
}
