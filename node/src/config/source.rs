//! Model sources as written in the configuration and on the command line.

use super::{DEFAULT_MODEL_FILE, DEFAULT_MODEL_PACKAGE, ModelSource};
use std::path::PathBuf;

/// A model source as written in `cluster.toml` (`package:`, `path:`, `hf:`, `synthetic:`,
/// `openai:`, `ollama:`).
pub fn parse_source(s: &str) -> Result<ModelSource, String> {
    if let Some(rest) = s.strip_prefix("package:") {
        let (package, file) = match rest.split_once('/') {
            Some((p, f)) => (p.to_string(), f.to_string()),
            None if rest == DEFAULT_MODEL_PACKAGE => {
                (rest.to_string(), DEFAULT_MODEL_FILE.to_string())
            }
            None => {
                return Err(format!(
                    "package source `{s}` needs a file: package:NAME/PATH"
                ));
            }
        };
        Ok(ModelSource::Package { package, file })
    } else if let Some(rest) = s.strip_prefix("path:") {
        Ok(ModelSource::Path(PathBuf::from(rest)))
    } else if let Some(rest) = s.strip_prefix("synthetic:") {
        let (rate, stamped) = match rest.split_once('/') {
            None => (rest, false),
            Some((rate, "stamped")) => (rate, true),
            Some((_, mode)) => {
                return Err(format!(
                    "synthetic source `{s}`: unknown mode `{mode}` (synthetic:RATE or synthetic:RATE/stamped)"
                ));
            }
        };
        let tps: f64 = rate
            .parse()
            .map_err(|_| format!("synthetic source `{s}` needs a token rate: synthetic:50"))?;
        if !(tps > 0.0 && tps <= 100_000.0) {
            return Err(format!(
                "synthetic token rate {tps} out of range (0, 100000]"
            ));
        }
        Ok(ModelSource::Synthetic {
            tokens_per_second: tps,
            stamped,
        })
    } else if let Some(rest) = s.strip_prefix("hf:") {
        let mut parts = rest.splitn(3, '/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(owner), Some(name), Some(file))
                if !owner.is_empty() && !name.is_empty() && !file.is_empty() =>
            {
                Ok(ModelSource::HuggingFace {
                    owner: owner.into(),
                    name: name.into(),
                    file: file.into(),
                })
            }
            _ => Err(format!("hf source `{s}` is not hf:OWNER/REPO/FILE")),
        }
    } else if let Some(url) = s
        .strip_prefix("openai:")
        .or_else(|| s.strip_prefix("ollama:"))
    {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("remote source `{s}` needs an http(s) URL"));
        }
        let kind = if s.starts_with("openai:") {
            crate::engine::RemoteKind::OpenAi
        } else {
            crate::engine::RemoteKind::Ollama
        };
        Ok(ModelSource::Remote {
            kind,
            url: url.to_string(),
            remote_model: None,
            api_key_env: None,
        })
    } else {
        Err(format!(
            "model source `{s}` is not one of package:NAME[/FILE], path:FILE, hf:OWNER/REPO/FILE, synthetic:RATE[/stamped], openai:URL, ollama:URL"
        ))
    }
}
