//! The metadata database of workflow results (sqlx): SQLite in the data dir by default,
//! PostgreSQL when `[storage] database_url` names one. Connected on first use (a node starts
//! without its database) and migrated then from `node/migrations/`.

use crate::config::Secret;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::Row;
use std::sync::Arc;
use tokio::sync::OnceCell;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database directory: {0}")]
    Dir(#[from] std::io::Error),
}

/// A report's metadata row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub report_id: String,
    pub user: String,
    pub title: String,
    pub prompt: String,
    pub file_path: String,
    pub model: String,
    pub node: String,
    pub pages: i64,
    pub bytes: i64,
    pub content_ms: i64,
    pub render_ms: i64,
    pub created_at: String,
}

#[derive(Clone)]
pub struct Store {
    url: Arc<Secret>,
    pool: Arc<OnceCell<AnyPool>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Store {
    pub fn new(url: Secret) -> Self {
        Store {
            url: Arc::new(url),
            pool: Arc::new(OnceCell::new()),
        }
    }

    /// Which database this is, for logs (never the URL: it may hold a password).
    pub fn kind(&self) -> &'static str {
        if self.url.expose().starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        }
    }

    async fn pool(&self) -> Result<&AnyPool, StoreError> {
        self.pool
            .get_or_try_init(|| async {
                sqlx::any::install_default_drivers();
                let url = self.url.expose();
                if let Some(path) = url.strip_prefix("sqlite://") {
                    let path = path.split('?').next().unwrap_or(path);
                    if let Some(dir) = std::path::Path::new(path).parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                }
                let pool = sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .connect(url)
                    .await?;
                MIGRATOR.run(&pool).await?;
                tracing::info!(db = self.kind(), "workflow database ready");
                Ok(pool)
            })
            .await
    }

    /// Records a report (again, on a retried activity: the row is replaced).
    pub async fn put_report(&self, r: &ReportRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO reports (report_id, user_id, title, prompt, file_path, model, node, \
             pages, bytes, content_ms, render_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (report_id) DO UPDATE SET file_path = excluded.file_path, \
             model = excluded.model, node = excluded.node, pages = excluded.pages, \
             bytes = excluded.bytes, content_ms = excluded.content_ms, \
             render_ms = excluded.render_ms",
        )
        .bind(&r.report_id)
        .bind(&r.user)
        .bind(&r.title)
        .bind(&r.prompt)
        .bind(&r.file_path)
        .bind(&r.model)
        .bind(&r.node)
        .bind(r.pages)
        .bind(r.bytes)
        .bind(r.content_ms)
        .bind(r.render_ms)
        .bind(&r.created_at)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    pub async fn report(&self, report_id: &str) -> Result<Option<ReportRow>, StoreError> {
        let row = sqlx::query(
            "SELECT report_id, user_id, title, prompt, file_path, model, node, pages, bytes, \
             content_ms, render_ms, created_at FROM reports WHERE report_id = $1",
        )
        .bind(report_id)
        .fetch_optional(self.pool().await?)
        .await?;
        row.map(|r| {
            Ok(ReportRow {
                report_id: r.try_get(0)?,
                user: r.try_get(1)?,
                title: r.try_get(2)?,
                prompt: r.try_get(3)?,
                file_path: r.try_get(4)?,
                model: r.try_get(5)?,
                node: r.try_get(6)?,
                pages: r.try_get(7)?,
                bytes: r.try_get(8)?,
                content_ms: r.try_get(9)?,
                render_ms: r.try_get(10)?,
                created_at: r.try_get(11)?,
            })
        })
        .transpose()
    }

    /// Records that `workflow_id` holds `model` on `node` (idempotent).
    pub async fn allocate(
        &self,
        workflow_id: &str,
        user: &str,
        model: &str,
        node: &str,
        now: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO allocations (workflow_id, user_id, model, node, allocated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workflow_id) DO NOTHING",
        )
        .bind(workflow_id)
        .bind(user)
        .bind(model)
        .bind(node)
        .bind(now)
        .execute(self.pool().await?)
        .await?;
        Ok(())
    }

    /// Marks `workflow_id`'s allocation released; true when there was one to release.
    pub async fn release(&self, workflow_id: &str, now: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE allocations SET released_at = $2 \
             WHERE workflow_id = $1 AND released_at IS NULL",
        )
        .bind(workflow_id)
        .bind(now)
        .execute(self.pool().await?)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Allocations not released yet.
    pub async fn held(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT workflow_id FROM allocations WHERE released_at IS NULL")
            .fetch_all(self.pool().await?)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_keeps_reports_and_allocations() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("x/o.db").display());
        let store = Store::new(Secret::new(url));
        assert_eq!(store.kind(), "sqlite");
        let mut row = ReportRow {
            report_id: "report-1".into(),
            user: "ana".into(),
            title: "Tides".into(),
            prompt: "Why tides? — ünïcode".into(),
            file_path: "/r/report-1.pdf".into(),
            model: "m".into(),
            node: "n1".into(),
            pages: 2,
            bytes: 1234,
            content_ms: 10,
            render_ms: 5,
            created_at: "2026-01-01T00:00:00Z".into(),
        };
        store.put_report(&row).await.unwrap();
        row.pages = 3;
        store.put_report(&row).await.unwrap();
        assert_eq!(store.report("report-1").await.unwrap(), Some(row));
        assert_eq!(store.report("nope").await.unwrap(), None);

        store
            .allocate("codegen-1", "ana", "m", "n1", "t0")
            .await
            .unwrap();
        store
            .allocate("codegen-1", "ana", "m", "n1", "t1")
            .await
            .unwrap();
        assert_eq!(store.held().await.unwrap(), vec!["codegen-1".to_string()]);
        assert!(store.release("codegen-1", "t2").await.unwrap());
        assert!(!store.release("codegen-1", "t3").await.unwrap());
        assert!(store.held().await.unwrap().is_empty());
    }
}
