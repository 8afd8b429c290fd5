//! docker-compose.yml is a valid Compose file (checked against the Compose specification's JSON
//! schema; no Docker engine runs here), and its Prometheus and Grafana parts fit the nodes.

use crate::harness::workspace_root;
use crate::pytools;

#[tokio::test(flavor = "multi_thread")]
async fn compose_file_follows_the_compose_specification() {
    let out = tokio::task::spawn_blocking(|| {
        let lib = pytools::ensure(pytools::COMPOSE_CHECK);
        let schema = pytools::compose_schema();
        let root = workspace_root();
        pytools::run_script(
            "check_compose.py",
            &[root.to_str().unwrap(), schema.to_str().unwrap()],
            &[&lib],
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("compose ok"), "{stdout}");
}
