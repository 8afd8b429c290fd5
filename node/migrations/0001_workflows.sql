-- Metadata of the workflows' results: one row per report, one per codegen allocation.
-- Portable SQL: the same file runs on SQLite (the default) and PostgreSQL.
CREATE TABLE IF NOT EXISTS reports (
    report_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    prompt TEXT NOT NULL,
    file_path TEXT NOT NULL,
    model TEXT NOT NULL,
    node TEXT NOT NULL,
    pages BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    content_ms BIGINT NOT NULL,
    render_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS reports_by_user ON reports (user_id, created_at);

CREATE TABLE IF NOT EXISTS allocations (
    workflow_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    node TEXT NOT NULL,
    allocated_at TEXT NOT NULL,
    released_at TEXT
);
