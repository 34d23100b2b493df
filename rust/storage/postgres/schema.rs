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
    // 6: rate limits and concurrency caps. A limited task's row holds its token bucket
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
