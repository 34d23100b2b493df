//! The schema, as an append-only list of migrations applied against `PRAGMA user_version`.
//! Never edit or remove an entry: add a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Error, Result};

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: jobs, their error history, dead letters and the worker registry.
    r#"
    CREATE TABLE jobs (
        seq           INTEGER PRIMARY KEY,
        id            TEXT    NOT NULL, -- ends with seq in hex: see storage/ids.rs
        queue         TEXT    NOT NULL,
        task_name     TEXT    NOT NULL,
        payload       BLOB    NOT NULL,
        status        INTEGER NOT NULL,
        priority      INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        scheduled_at  INTEGER NOT NULL,
        started_at    INTEGER,
        completed_at  INTEGER,
        retry_count   INTEGER NOT NULL DEFAULT 0,
        max_retries   INTEGER NOT NULL,
        retry_backoff REAL    NOT NULL,
        timeout_ms    INTEGER NOT NULL,
        result        BLOB,
        error         TEXT,
        progress      INTEGER,
        unique_key    TEXT,
        metadata      TEXT,
        owner         TEXT,
        worker_id     TEXT,
        claim_token   INTEGER,
        recoveries    INTEGER NOT NULL DEFAULT 0 -- times put back after its worker was lost
    );
    -- Few indexes, because every index is one more page written per enqueue, claim and
    -- completion. The claim reads this one in order, one queue at a time; partial, so
    -- finished rows cost the claim nothing.
    CREATE INDEX jobs_ready ON jobs (queue, priority DESC, scheduled_at, seq)
        WHERE status = 0;
    -- Counts by status and queue, listings by status, and result expiry.
    CREATE INDEX jobs_by_status ON jobs (status, queue, completed_at);
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key > '' AND status IN (0, 1);
    -- Not `unique_key IS NOT NULL`: SQLite tests an IS NOT NULL index predicate against
    -- every bound parameter of every statement on this table, and a statement whose plan
    -- looked at a parameter is prepared again each time that parameter changes.

    -- Every queue that ever had a job: lets a worker serving all queues claim through the
    -- per-queue index.
    CREATE TABLE queues (name TEXT PRIMARY KEY) WITHOUT ROWID;

    CREATE TABLE job_errors (
        id        INTEGER PRIMARY KEY,
        job_id    TEXT    NOT NULL,
        attempt   INTEGER NOT NULL,
        error     TEXT    NOT NULL,
        traceback TEXT    NOT NULL DEFAULT '',
        failed_at INTEGER NOT NULL
    );
    CREATE INDEX job_errors_by_job ON job_errors (job_id);

    CREATE TABLE dead_letters (
        seq             INTEGER PRIMARY KEY,
        id              TEXT    NOT NULL UNIQUE,
        original_job_id TEXT    NOT NULL,
        task_name       TEXT    NOT NULL,
        queue           TEXT    NOT NULL,
        payload         BLOB    NOT NULL,
        priority        INTEGER NOT NULL,
        max_retries     INTEGER NOT NULL,
        retry_backoff   REAL    NOT NULL,
        timeout_ms      INTEGER NOT NULL,
        metadata        TEXT,
        error           TEXT,
        retry_count     INTEGER NOT NULL,
        failed_at       INTEGER NOT NULL
    );
    CREATE INDEX dead_letters_by_job ON dead_letters (original_job_id);

    CREATE TABLE workers (
        worker_id      TEXT    PRIMARY KEY,
        hostname       TEXT    NOT NULL,
        pid            INTEGER NOT NULL,
        queues         TEXT    NOT NULL,
        started_at     INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL,
        status         TEXT    NOT NULL
    );
    "#,
    // 2: log lines tasks write about their jobs (`current_job.log`), the archive of
    // finished jobs, and retention.
    r#"
    CREATE TABLE task_logs (
        id        INTEGER PRIMARY KEY,
        job_id    TEXT    NOT NULL,
        task_name TEXT    NOT NULL,
        level     TEXT    NOT NULL,
        message   TEXT    NOT NULL,
        extra     TEXT,
        logged_at INTEGER NOT NULL
    );
    CREATE INDEX task_logs_by_job ON task_logs (job_id);
    CREATE INDEX task_logs_by_time ON task_logs (logged_at);

    -- Finished jobs moved out of the jobs table by `archive()`, keeping their seq.
    CREATE TABLE archived_jobs (
        seq           INTEGER PRIMARY KEY,
        id            TEXT    NOT NULL UNIQUE,
        queue         TEXT    NOT NULL,
        task_name     TEXT    NOT NULL,
        status        INTEGER NOT NULL,
        priority      INTEGER NOT NULL,
        retry_count   INTEGER NOT NULL,
        max_retries   INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        scheduled_at  INTEGER NOT NULL,
        started_at    INTEGER,
        completed_at  INTEGER,
        error         TEXT,
        progress      INTEGER,
        worker_id     TEXT,
        unique_key    TEXT,
        metadata      TEXT,
        timeout_ms    INTEGER NOT NULL,
        result        BLOB,
        archived_at   INTEGER NOT NULL
    );
    CREATE INDEX archived_jobs_by_completion ON archived_jobs (completed_at);
    -- Retention sweeps delete by age.
    CREATE INDEX job_errors_by_time ON job_errors (failed_at);
    CREATE INDEX dead_letters_by_time ON dead_letters (failed_at);
    -- The windows the last retention sweep used (one row).
    CREATE TABLE retention_report (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        archived_jobs INTEGER,
        dead_letter   INTEGER,
        task_logs     INTEGER,
        task_metrics  INTEGER,
        job_errors    INTEGER,
        defaulted     INTEGER NOT NULL,
        reported_at   INTEGER NOT NULL
    );
    "#,
    // 3: paused queues. The claim skips every queue named here (read with the queue list, so
    // a pause takes effect at the next claim of every process).
    r#"
    CREATE TABLE IF NOT EXISTS paused_queues (
        name      TEXT    PRIMARY KEY,
        paused_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 4: worker incarnations. A process restarted under the same worker id is a new row, and
    // each claim records the incarnation that made it, so the jobs of a dead predecessor are
    // told apart from the live newcomer's. `beats` counts heartbeats: observers judge
    // staleness by whether it moves, on their own monotonic clock, not by wall-clock stamps.
    r#"
    ALTER TABLE jobs ADD COLUMN incarnation INTEGER;
    CREATE TABLE workers_by_run (
        worker_id      TEXT    NOT NULL,
        incarnation    INTEGER NOT NULL DEFAULT 0,
        hostname       TEXT    NOT NULL,
        pid            INTEGER NOT NULL,
        queues         TEXT    NOT NULL,
        started_at     INTEGER NOT NULL,
        last_heartbeat INTEGER NOT NULL,
        status         TEXT    NOT NULL,
        beats          INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (worker_id, incarnation)
    ) WITHOUT ROWID;
    INSERT INTO workers_by_run (worker_id, incarnation, hostname, pid, queues, started_at,
        last_heartbeat, status)
        SELECT worker_id, 0, hostname, pid, queues, started_at, last_heartbeat, status
        FROM workers;
    DROP TABLE workers;
    ALTER TABLE workers_by_run RENAME TO workers;
    "#,
    // 5: periodic schedules, and per-task flow-control limits with their token buckets.
    r#"
    CREATE TABLE periodic (
        name          TEXT    PRIMARY KEY,
        task_name     TEXT    NOT NULL,
        cron_expr     TEXT    NOT NULL,
        timezone      TEXT    NOT NULL,
        queue         TEXT    NOT NULL,
        payload       BLOB    NOT NULL,
        priority      INTEGER NOT NULL,
        max_retries   INTEGER NOT NULL,
        retry_backoff REAL    NOT NULL,
        timeout_ms    INTEGER NOT NULL,
        enabled       INTEGER NOT NULL DEFAULT 1,
        last_run      INTEGER,
        next_run      INTEGER NOT NULL -- the due time the next fire claims
    ) WITHOUT ROWID;
    CREATE INDEX periodic_due ON periodic (next_run) WHERE enabled = 1;

    -- Written by each worker at start for its tasks; read by every claim that may start
    -- a limited task. rate: rate_count per rate_period_ms; tokens/refilled_at: the bucket.
    CREATE TABLE task_limits (
        task_name      TEXT    PRIMARY KEY,
        rate_count     INTEGER,
        rate_period_ms INTEGER,
        max_concurrent INTEGER,
        tokens         REAL    NOT NULL DEFAULT 1,
        refilled_at    INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to date in one exclusive transaction (so two processes opening a
/// new file at once migrate it once); refuses a database newer than this build.
pub fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_string(),
            found: current,
            known: VERSION,
        });
    }
    if current == VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    // Re-read inside the lock: another process may have migrated meanwhile.
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}
