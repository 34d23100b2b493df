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
    // 6: dependencies and canvas links, notes, expiry, cooperative cancel of a running job.
    r#"
    -- Status 6 = waiting for dependencies: shown as pending, outside the ready index.
    ALTER TABLE jobs ADD COLUMN notes TEXT;
    ALTER TABLE jobs ADD COLUMN expires_at INTEGER;
    -- 1 once a running job was asked to stop (`cancel_running_job`).
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    -- 1 once another job depends on this one: only then does its outcome touch
    -- job_dependencies.
    ALTER TABLE jobs ADD COLUMN has_dependents INTEGER NOT NULL DEFAULT 0;
    -- How a canvas step receives its parents' results (job.rs PassResult).
    ALTER TABLE jobs ADD COLUMN pass_result INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE dead_letters ADD COLUMN notes TEXT;
    ALTER TABLE archived_jobs ADD COLUMN notes TEXT;

    -- One row per edge; rowid order is dependency order (a chord's results list).
    -- The seqs repeat the ids' seqs so that joins stay rowid lookups.
    CREATE TABLE job_dependencies (
        job_id         TEXT    NOT NULL,
        depends_on     TEXT    NOT NULL,
        job_seq        INTEGER NOT NULL,
        depends_on_seq INTEGER NOT NULL
    );
    CREATE INDEX job_dependencies_by_job ON job_dependencies (job_seq);
    CREATE INDEX job_dependencies_by_parent ON job_dependencies (depends_on_seq);
    -- Expiry sweep. The predicate must not name `status`: an index whose predicate reads
    -- a column is re-checked by every write of that column (each claim and completion).
    -- Instead a claim negates `expires_at` (kept for replay) and so does the sweep for
    -- what it has looked at.
    CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at > 0;
    -- A completed job promotes its waiting dependents whose parents are now all complete,
    -- in the transaction that completed it. A trigger, so that the completion of a job
    -- nothing depends on (the hot path) costs one flag test inside SQLite and no statement.
    CREATE TRIGGER jobs_promote_dependents AFTER UPDATE OF status ON jobs
    WHEN NEW.status = 2 AND NEW.has_dependents = 1
    BEGIN
        UPDATE jobs SET status = 0 WHERE status = 6
            AND seq IN (SELECT job_seq FROM job_dependencies WHERE depends_on_seq = NEW.seq)
            AND NOT EXISTS (SELECT 1 FROM job_dependencies d JOIN jobs p ON p.seq = d.depends_on_seq
                            WHERE d.job_seq = jobs.seq AND p.status != 2);
    END;
    "#,
    // 7: a running job whose `worker_id` is NULL was claimed ahead and has not started
    // (users see it pending). 1 once such a claim was lost with its worker: the job's
    // next runs record their start before running, so the crash-loop limit still counts it.
    r#"
    ALTER TABLE jobs ADD COLUMN eager_start INTEGER NOT NULL DEFAULT 0;
    "#,
    // 8: a job waiting for its dependencies holds its unique key, as a pending one does.
    // Waiting jobs stored before this that share a key with a live job give theirs up
    // (the first holder keeps it), so the new index can be built.
    r#"
    UPDATE jobs SET unique_key = NULL WHERE status = 6 AND unique_key > '' AND EXISTS (
        SELECT 1 FROM jobs o WHERE o.unique_key = jobs.unique_key AND o.seq != jobs.seq
        AND (o.status IN (0, 1) OR (o.status = 6 AND o.seq < jobs.seq)));
    DROP INDEX jobs_unique_key;
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key > '' AND status IN (0, 1, 6);
    "#,
    // 9: per-job result TTL (`result_ttl=` at enqueue): the maintenance sweep deletes such a
    // finished job `result_ttl_ms` after its completion, whatever the queue's retention says.
    r#"
    ALTER TABLE jobs ADD COLUMN result_ttl_ms INTEGER;
    -- Only jobs given a TTL are in it, ordered by the time they go.
    CREATE INDEX jobs_result_expiry ON jobs (completed_at + result_ttl_ms)
        WHERE result_ttl_ms IS NOT NULL;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// As taskito makes its files: one wider than `file_mode` is refused.
    fn private(path: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// A database written by the first schema (before dependencies, notes and expiry)
    /// opens, upgrades and keeps its jobs.
    #[test]
    fn version_one_database_upgrades() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let path = path.to_str().unwrap();
        {
            let conn = Connection::open(path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute(
                "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, \
                 created_at, scheduled_at, max_retries, retry_backoff, timeout_ms) \
                 VALUES (1, '01234567-89ab-7cde-8f01-000000000001', 'default', 't', x'00', \
                 0, 0, 0, 0, 3, 1.0, 1000)",
                [],
            )
            .unwrap();
            conn.execute("INSERT INTO queues (name) VALUES ('default')", [])
                .unwrap();
        }
        private(path);
        let storage = crate::storage::SqliteStorage::open(path, crate::storage::Durability::Normal)
            .expect("an old database opens");
        use crate::storage::Storage;
        let job = storage
            .get_job("01234567-89ab-7cde-8f01-000000000001")
            .unwrap()
            .expect("the old job is kept");
        assert_eq!(job.status, crate::job::JobStatus::Pending);
        assert_eq!(job.notes, None);
        let claimed = storage
            .claim(None, &crate::job::WorkerKey::from("w"), 10, 1)
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let conn = Connection::open(path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
    }

    /// Waiting jobs stored before they held unique keys may share a key with a live job;
    /// the upgrade keeps the key with its first holder instead of failing to build the index.
    #[test]
    fn waiting_jobs_sharing_a_key_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let path = path.to_str().unwrap();
        {
            let conn = Connection::open(path).unwrap();
            for sql in &MIGRATIONS[..6] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 6).unwrap();
            for (seq, status, key) in [(1, 0, "k"), (2, 6, "k"), (3, 6, "w"), (4, 6, "w")] {
                conn.execute(
                    "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, \
                     created_at, scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key) \
                     VALUES (?1, printf('01234567-89ab-7cde-8f01-%012x', ?1), 'default', 't', \
                     x'00', ?2, 0, 0, 0, 3, 1.0, 1000, ?3)",
                    rusqlite::params![seq, status, key],
                )
                .unwrap();
            }
        }
        private(path);
        crate::storage::SqliteStorage::open(path, crate::storage::Durability::Normal)
            .expect("the database upgrades");
        let conn = Connection::open(path).unwrap();
        let keys: Vec<Option<String>> = conn
            .prepare("SELECT unique_key FROM jobs ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let want = [Some("k"), None, Some("w"), None].map(|k| k.map(String::from));
        assert_eq!(keys, want.to_vec());
    }
}
