//! The PostgreSQL schema: the same tables and meanings as the SQLite one (`storage/schema.rs`),
//! as an append-only list of migrations recorded in `schema_version`. Never edit or remove
//! an entry: add a new one.
//!
//! Times are `bigint` epoch milliseconds from the server's clock; payloads and results are
//! `bytea`. Migrations run under a transaction-scoped advisory lock, so any number of
//! processes starting at once on an empty database migrate it exactly once.

use postgres::Client;

use super::pool::{quote_ident, PgSettings};
use crate::error::{Error, Result};

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: jobs, their error history, dead letters and the worker registry.
    r#"
    CREATE TABLE jobs (
        seq           bigint  PRIMARY KEY, -- from jobs_seq; ids end with it in hex
        id            text    NOT NULL,
        queue         text    NOT NULL,
        task_name     text    NOT NULL,
        payload       bytea   NOT NULL,
        status        smallint NOT NULL,
        priority      bigint  NOT NULL,
        created_at    bigint  NOT NULL,
        scheduled_at  bigint  NOT NULL,
        started_at    bigint,
        completed_at  bigint,
        retry_count   bigint  NOT NULL DEFAULT 0,
        max_retries   bigint  NOT NULL,
        retry_backoff double precision NOT NULL,
        timeout_ms    bigint  NOT NULL,
        result        bytea,
        error         text,
        progress      bigint,
        unique_key    text,
        metadata      text,
        owner         text,
        worker_id     text,
        claim_token   bigint,
        recoveries    bigint  NOT NULL DEFAULT 0
    ) WITH (
        -- Every job row is updated two or three times: room on its page for the new
        -- version, and vacuum long before dead rows slow the claim.
        fillfactor = 80,
        autovacuum_vacuum_scale_factor = 0.01,
        autovacuum_vacuum_threshold = 1000,
        autovacuum_vacuum_insert_scale_factor = 0.05,
        autovacuum_analyze_scale_factor = 0.02
    );
    CREATE SEQUENCE jobs_seq AS bigint OWNED BY jobs.seq;
    -- The claim walks this one in order, one queue at a time; partial, so finished rows
    -- cost the claim nothing.
    CREATE INDEX jobs_ready ON jobs (queue, priority DESC, scheduled_at, seq) WHERE status = 0;
    CREATE INDEX jobs_by_status ON jobs (status, queue, completed_at);
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key > '' AND status IN (0, 1);

    -- Every queue that ever had a job: a worker serving all queues claims through the
    -- per-queue index.
    CREATE TABLE queues (name text PRIMARY KEY);

    CREATE TABLE job_errors (
        id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id    text   NOT NULL,
        attempt   bigint NOT NULL,
        error     text   NOT NULL,
        traceback text   NOT NULL DEFAULT '',
        failed_at bigint NOT NULL
    );
    CREATE INDEX job_errors_by_job ON job_errors (job_id);

    CREATE TABLE dead_letters (
        seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id              text   NOT NULL UNIQUE,
        original_job_id text   NOT NULL,
        task_name       text   NOT NULL,
        queue           text   NOT NULL,
        payload         bytea  NOT NULL,
        priority        bigint NOT NULL,
        max_retries     bigint NOT NULL,
        retry_backoff   double precision NOT NULL,
        timeout_ms      bigint NOT NULL,
        metadata        text,
        error           text,
        retry_count     bigint NOT NULL,
        failed_at       bigint NOT NULL
    );
    CREATE INDEX dead_letters_by_job ON dead_letters (original_job_id);

    CREATE TABLE workers (
        worker_id      text   PRIMARY KEY,
        hostname       text   NOT NULL,
        pid            bigint NOT NULL,
        queues         text   NOT NULL,
        started_at     bigint NOT NULL,
        last_heartbeat bigint NOT NULL,
        status         text   NOT NULL
    );
    "#,
    // 2: log lines tasks write about their jobs, the archive of finished jobs, retention.
    r#"
    CREATE TABLE task_logs (
        id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id    text   NOT NULL,
        task_name text   NOT NULL,
        level     text   NOT NULL,
        message   text   NOT NULL,
        extra     text,
        logged_at bigint NOT NULL
    );
    CREATE INDEX task_logs_by_job ON task_logs (job_id);
    CREATE INDEX task_logs_by_time ON task_logs (logged_at);

    -- Finished jobs moved out of the jobs table by `archive()`, keeping their seq.
    CREATE TABLE archived_jobs (
        seq           bigint  PRIMARY KEY,
        id            text    NOT NULL UNIQUE,
        queue         text    NOT NULL,
        task_name     text    NOT NULL,
        status        smallint NOT NULL,
        priority      bigint  NOT NULL,
        retry_count   bigint  NOT NULL,
        max_retries   bigint  NOT NULL,
        created_at    bigint  NOT NULL,
        scheduled_at  bigint  NOT NULL,
        started_at    bigint,
        completed_at  bigint,
        error         text,
        progress      bigint,
        worker_id     text,
        unique_key    text,
        metadata      text,
        timeout_ms    bigint  NOT NULL,
        result        bytea,
        archived_at   bigint  NOT NULL
    );
    CREATE INDEX archived_jobs_by_completion ON archived_jobs (completed_at);
    CREATE INDEX job_errors_by_time ON job_errors (failed_at);
    CREATE INDEX dead_letters_by_time ON dead_letters (failed_at);
    -- The windows the last retention sweep used (one row).
    CREATE TABLE retention_report (
        id            smallint PRIMARY KEY CHECK (id = 1),
        archived_jobs bigint,
        dead_letter   bigint,
        task_logs     bigint,
        task_metrics  bigint,
        job_errors    bigint,
        defaulted     boolean NOT NULL,
        reported_at   bigint  NOT NULL
    );
    "#,
    // 3: paused queues; the claim skips every queue named here.
    r#"
    CREATE TABLE paused_queues (
        name      text   PRIMARY KEY,
        paused_at bigint NOT NULL
    );
    "#,
    // 4: worker incarnations. A process restarted under the same worker id is a new row, and
    // each claim records the incarnation that made it, so the jobs of a dead predecessor are
    // told apart from the live newcomer's. `beats` counts heartbeats: observers judge
    // staleness by whether it moves, on their own monotonic clock, not by clock stamps.
    r#"
    ALTER TABLE jobs ADD COLUMN incarnation bigint;
    ALTER TABLE workers ADD COLUMN incarnation bigint NOT NULL DEFAULT 0;
    ALTER TABLE workers ADD COLUMN beats bigint NOT NULL DEFAULT 0;
    ALTER TABLE workers DROP CONSTRAINT workers_pkey;
    ALTER TABLE workers ADD PRIMARY KEY (worker_id, incarnation);
    "#,
    // 5: periodic schedules; a fire moves `next_run` and inserts its job in one transaction.
    r#"
    CREATE TABLE periodic (
        name          text             PRIMARY KEY,
        task_name     text             NOT NULL,
        cron_expr     text             NOT NULL,
        timezone      text             NOT NULL,
        queue         text             NOT NULL,
        payload       bytea            NOT NULL,
        priority      bigint           NOT NULL,
        max_retries   bigint           NOT NULL,
        retry_backoff double precision NOT NULL,
        timeout_ms    bigint           NOT NULL,
        enabled       boolean          NOT NULL DEFAULT true,
        last_run      bigint,
        next_run      bigint           NOT NULL -- the due time the next fire claims
    );
    CREATE INDEX periodic_due ON periodic (next_run) WHERE enabled;
    "#,
    // 6: a running job whose `worker_id` is NULL has no start recorded (claimed ahead;
    // users see it pending). True once such a claim was lost with its worker: the job's
    // next runs record their start before running, so the crash-loop limit still counts it.
    r#"
    ALTER TABLE jobs ADD COLUMN eager_start boolean NOT NULL DEFAULT false;
    "#,
    // 7: dependencies and canvas links, notes, expiry, cooperative cancel of a running job.
    // Status 6 = waiting for dependencies: shown as pending, outside the ready index, so the
    // claim never sees it.
    r#"
    ALTER TABLE jobs ADD COLUMN notes text;
    -- Positive while the job may still expire; negated (kept for replay) once it starts.
    ALTER TABLE jobs ADD COLUMN expires_at bigint;
    ALTER TABLE jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
    -- True once another job depends on this one: only then does its outcome fire the
    -- trigger below.
    ALTER TABLE jobs ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
    -- How a canvas step receives its parents' results (job.rs PassResult).
    ALTER TABLE jobs ADD COLUMN pass_result smallint NOT NULL DEFAULT 0;
    ALTER TABLE dead_letters ADD COLUMN notes text;
    ALTER TABLE archived_jobs ADD COLUMN notes text;

    -- One row per edge; `id` order is dependency order (a chord's results list).
    CREATE TABLE job_dependencies (
        id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        job_id         text   NOT NULL,
        depends_on     text   NOT NULL,
        job_seq        bigint NOT NULL,
        depends_on_seq bigint NOT NULL
    );
    CREATE INDEX job_dependencies_by_job ON job_dependencies (job_seq);
    CREATE INDEX job_dependencies_by_parent ON job_dependencies (depends_on_seq);
    CREATE INDEX jobs_expiring ON jobs (expires_at) WHERE expires_at > 0;
    -- A waiting job holds its unique key, as a pending one does.
    DROP INDEX jobs_unique_key;
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key)
        WHERE unique_key > '' AND status IN (0, 1, 6);

    -- Runs in the transaction that ends a job others depend on, whatever ended it (a
    -- result, a failure, cancel, expiry, recovery to dead). A completion promotes each
    -- waiting dependent whose parents are now all complete; any other end cancels the
    -- dependents that have not run, and theirs, in one statement.
    CREATE FUNCTION taskito_job_ended() RETURNS trigger LANGUAGE plpgsql AS $fn$
    DECLARE
        now_ms bigint := (extract(epoch from now()) * 1000)::bigint;
        notified bigint;
    BEGIN
        IF NEW.status = 2 THEN
            -- Two parents completing at once in two transactions must not both miss the
            -- other's completion: each locks the dependents first, so the check below
            -- (a new snapshot) runs after the other has committed.
            PERFORM 1 FROM jobs
                WHERE seq IN (SELECT job_seq FROM job_dependencies WHERE depends_on_seq = NEW.seq)
                AND status = 6 ORDER BY seq FOR UPDATE;
            -- Workers listening on the schema's channel hear of the promoted jobs.
            WITH promoted AS (
                UPDATE jobs AS c SET status = 0
                WHERE c.seq IN (SELECT job_seq FROM job_dependencies
                                WHERE depends_on_seq = NEW.seq)
                AND c.status = 6
                AND NOT EXISTS (SELECT 1 FROM job_dependencies d
                                JOIN jobs p ON p.seq = d.depends_on_seq
                                WHERE d.job_seq = c.seq AND p.status <> 2)
                RETURNING c.queue)
            SELECT count(pg_notify('taskito_' || TG_TABLE_SCHEMA, q.queue)) INTO notified
                FROM (SELECT DISTINCT queue FROM promoted) AS q;
        ELSE
            WITH RECURSIVE doomed (seq, cause, cause_status) AS (
                SELECT d.job_seq, NEW.id, NEW.status::int FROM job_dependencies d
                    WHERE d.depends_on_seq = NEW.seq
                UNION
                SELECT d.job_seq, j.id, 5 FROM doomed x
                    JOIN jobs j ON j.seq = x.seq AND j.status IN (0, 6)
                    JOIN job_dependencies d ON d.depends_on_seq = x.seq
            ), first_cause AS (
                SELECT DISTINCT ON (seq) seq, cause, cause_status FROM doomed ORDER BY seq
            )
            UPDATE jobs AS c SET status = 5, completed_at = now_ms,
                error = 'dependency ' || f.cause || ' ended ' || CASE f.cause_status
                    WHEN 3 THEN 'failed' WHEN 4 THEN 'dead' ELSE 'cancelled' END
            FROM first_cause f WHERE c.seq = f.seq AND c.status IN (0, 6);
        END IF;
        RETURN NULL;
    END
    $fn$;
    CREATE TRIGGER jobs_ended AFTER UPDATE OF status ON jobs FOR EACH ROW
        WHEN (NEW.has_dependents AND NEW.status IN (2, 3, 4, 5)
              AND OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION taskito_job_ended();
    "#,
    // 8: per-job result TTL (`result_ttl=` at enqueue): the maintenance sweep deletes such a
    // finished job `result_ttl_ms` after its completion, whatever the queue's retention says.
    r#"
    ALTER TABLE jobs ADD COLUMN result_ttl_ms bigint;
    -- Only jobs given a TTL are in it, ordered by the time they go.
    CREATE INDEX jobs_result_expiry ON jobs ((completed_at + result_ttl_ms))
        WHERE result_ttl_ms IS NOT NULL;
    "#,
    // 9: rate limits and concurrency caps. A limited task's row holds its token bucket
    // (one token at most; `refilled_at` is when `tokens` was last counted, server clock);
    // claims lock the row while they start the task's jobs. Running jobs are counted
    // through `jobs_by_status`, so the hot path pays for no extra index.
    r#"
    CREATE TABLE task_limits (
        task_name      text             PRIMARY KEY,
        rate_count     bigint,
        rate_period_ms bigint,
        max_concurrent bigint,
        tokens         double precision NOT NULL DEFAULT 1,
        refilled_at    bigint           NOT NULL DEFAULT 0
    );
    "#,
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock that serializes migrations of one schema (any 64-bit number fixed per
/// schema name; FNV-1a keeps it stable across builds).
fn lock_key(schema: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "taskito-migrate:".bytes().chain(schema.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// How long a migration waits for a lock: another process migrating, or a lock on a table.
const MIGRATION_LOCK_TIMEOUT: &str = "120s";
/// How long one migration statement may run.
const MIGRATION_STATEMENT_TIMEOUT: &str = "30min";

/// Creates the schema if missing and applies the migrations it lacks; refuses a schema
/// newer than this build.
pub fn migrate(client: &mut Client, settings: &PgSettings) -> Result<()> {
    let err = |e: postgres::Error| settings.error(e);
    let schema = quote_ident(&settings.schema);
    // Fast path, no lock: an up-to-date schema is the common case.
    let table = format!("{}.schema_version", schema);
    let exists: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&table])
        .map_err(err)?
        .get(0);
    if exists.is_some() && current(client, &table).map_err(err)? == VERSION {
        return Ok(());
    }
    let mut tx = client.transaction().map_err(err)?;
    // Migrations wait for other starters (the advisory lock) and for locks on existing
    // tables, and may rewrite big tables: longer limits than the session's.
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'; \
         SET LOCAL statement_timeout = '{MIGRATION_STATEMENT_TIMEOUT}'"
    ))
    .map_err(err)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&lock_key(&settings.schema)],
    )
    .map_err(err)?;
    // CREATE ... IF NOT EXISTS is not safe against a concurrent creator; the lock is.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {table} (version bigint NOT NULL);"
    ))
    .map_err(err)?;
    let found: Option<i64> = tx
        .query_one(&format!("SELECT max(version) FROM {table}"), &[])
        .map_err(err)?
        .get(0);
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Err(Error::SchemaTooNew {
            path: format!("{} schema {}", settings.target, settings.schema),
            found,
            known: VERSION,
        });
    }
    tx.batch_execute(&format!("SET LOCAL search_path TO {schema}"))
        .map_err(err)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            &format!("INSERT INTO {table} (version) VALUES ($1)"),
            &[&(index as i64 + 1)],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(())
}

fn current(client: &mut Client, table: &str) -> std::result::Result<i64, postgres::Error> {
    let v: Option<i64> = client
        .query_one(&format!("SELECT max(version) FROM {table}"), &[])?
        .get(0);
    Ok(v.unwrap_or(0))
}
