//! `[storage]` and `[workflows]`: where workflow results go, and how the workflows behave.

use super::Env;
use crate::config::raw::{RawStorage, RawWorkflows};
use crate::config::{OnAgentFailure, Secret, StorageConfig, WorkflowsConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Debian's `fonts-dejavu-core`: DejaVu Sans covers Latin, Greek, Cyrillic and more.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

pub(super) fn storage(raw: RawStorage, env: &Env, data_dir: &Path) -> StorageConfig {
    let database_url = env
        .get("ORRERY_DATABASE_URL")
        .or(raw.database_url)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("orrery.db").display()));
    StorageConfig {
        database_url: Secret::new(database_url),
        reports_dir: env
            .get("ORRERY_REPORTS_DIR")
            .or(raw.reports_dir)
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("reports")),
        font: PathBuf::from(raw.font.unwrap_or_else(|| DEFAULT_FONT.into())),
    }
}

pub(super) fn workflows(raw: RawWorkflows, env: &Env, errors: &mut Vec<String>) -> WorkflowsConfig {
    let on_agent_failure = match raw.on_agent_failure.as_deref() {
        None | Some("continue") => OnAgentFailure::Continue,
        Some("fail") => OnAgentFailure::Fail,
        Some(other) => {
            errors.push(format!(
                "workflows.on_agent_failure `{other}`: use fail or continue"
            ));
            OnAgentFailure::Continue
        }
    };
    let webhook_url = env.get("ORRERY_WEBHOOK_URL").or(raw.webhook_url);
    if let Some(u) = &webhook_url
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        errors.push(format!("workflows.webhook_url `{u}` is not an http(s) URL"));
    }
    let review = raw.review_timeout_secs.unwrap_or(120);
    if !(1..=3600).contains(&review) {
        errors.push("workflows.review_timeout_secs out of range 1..=3600".into());
    }
    let max_requirements_chars = raw.max_requirements_chars.unwrap_or(8_000);
    if max_requirements_chars == 0 {
        errors.push("workflows.max_requirements_chars must be positive".into());
    }
    WorkflowsConfig {
        webhook_url,
        review_timeout: Duration::from_secs(review),
        on_agent_failure,
        max_requirements_chars,
    }
}
