//! The ground floor of the PostgreSQL store: the statements and row helpers every area
//! builds on (the server's clock, the enqueue statement, a job row, the error history and
//! the dead letter of a job). Area files import from here; this file imports no area.

use postgres::{GenericClient, Row, Statement, Transaction};

use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::job::{ClaimedJob, JobRecord, JobStatus, NewJob};
use crate::storage::ids::{self, seq_of};
use crate::storage::rules::job_status;

/// The server's clock in epoch milliseconds, as of the start of the transaction.
macro_rules! now_ms_sql {
    () => {
        "(extract(epoch from now()) * 1000)::bigint"
    };
}
pub(crate) use now_ms_sql;

/// The one statement of an enqueue: sequence numbers, the rows, the queue names and the
/// wake-up notifications (once per queue), in one round trip. Rows come back in input order
/// with their id and whether they were inserted (false: a live job holds the unique key).
pub(super) const ENQUEUE: &str = concat!(
    "WITH input AS ( \
       SELECT nextval('jobs_seq') AS s, u.* FROM unnest($1::text[], $2::text[], $3::bytea[], \
         $4::bigint[], $5::bigint[], $6::bigint[], $7::float8[], $8::bigint[], $9::text[], \
         $10::text[], $11::text[], $13::bigint[]) \
         WITH ORDINALITY AS u(q, t, p, pr, d, mr, rb, tm, uk, md, px, rt, ord)), \
     ins AS ( \
       INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, \
         scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key, metadata, \
         result_ttl_ms) \
       SELECT s, px || lpad(to_hex(s), 12, '0'), q, t, p, ",
    job_status!(pending),
    ", pr, ",
    now_ms_sql!(),
    ", ",
    now_ms_sql!(),
    " + d, mr, rb, tm, uk, md, rt FROM input ORDER BY ord \
       ON CONFLICT (unique_key) WHERE unique_key > '' AND status IN (",
    job_status!(pending),
    ", ",
    job_status!(running),
    ", ",
    job_status!(waiting),
    ") DO NOTHING \
       RETURNING seq), \
     noted AS (INSERT INTO queues (name) SELECT DISTINCT q FROM input ON CONFLICT DO NOTHING) \
     SELECT i.px || lpad(to_hex(i.s), 12, '0'), ins.seq IS NOT NULL, \
       (SELECT count(pg_notify($12, dq.q)) FROM (SELECT DISTINCT q FROM input) AS dq \
        WHERE $12::text IS NOT NULL) \
     FROM input AS i LEFT JOIN ins ON ins.seq = i.s ORDER BY i.ord"
);

/// Inserts jobs with one statement and returns their ids (for a `unique_key` that a pending
/// or running job holds, that job's id); notifies listening workers once per queue when
/// `notify` names the channel. Runs in the caller's transaction, if any.
pub fn enqueue_in(
    client: &mut impl GenericClient,
    stmt: &Statement,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<String>> {
    let rows = enqueue_marked(client, stmt, settings, jobs, client_now, notify)?;
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// `enqueue_in`, telling for each job whether it was inserted (false: a live job holds its
/// unique key, and the id is that job's).
pub fn enqueue_marked(
    client: &mut impl GenericClient,
    stmt: &Statement,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
) -> Result<Vec<(String, bool)>> {
    let err = |e| settings.error(e);
    let q: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    let t: Vec<&str> = jobs.iter().map(|j| j.task_name.as_str()).collect();
    let p: Vec<&[u8]> = jobs.iter().map(|j| j.payload.as_slice()).collect();
    let pr: Vec<i64> = jobs.iter().map(|j| j.priority).collect();
    let d: Vec<i64> = jobs.iter().map(|j| j.scheduled_at - client_now).collect();
    let mr: Vec<i64> = jobs.iter().map(|j| j.max_retries).collect();
    let rb: Vec<f64> = jobs.iter().map(|j| j.retry_backoff).collect();
    let tm: Vec<i64> = jobs.iter().map(|j| j.timeout_ms).collect();
    let uk: Vec<Option<&str>> = jobs.iter().map(|j| j.unique_key.as_deref()).collect();
    let md: Vec<Option<&str>> = jobs.iter().map(|j| j.metadata.as_deref()).collect();
    let rt: Vec<Option<i64>> = jobs.iter().map(|j| j.result_ttl_ms).collect();
    // The id's time prefix is the caller's clock: it only spreads ids, it orders nothing.
    let px: Vec<String> = jobs.iter().map(|_| ids::prefix(client_now)).collect();
    let rows = client
        .query(
            stmt,
            &[
                &q, &t, &p, &pr, &d, &mr, &rb, &tm, &uk, &md, &px, &notify, &rt,
            ],
        )
        .map_err(err)?;
    let mut out = Vec::with_capacity(rows.len());
    for (row, job) in rows.iter().zip(jobs) {
        if row.get::<_, bool>(1) {
            out.push((row.get(0), true));
            continue;
        }
        let key = job.unique_key.as_deref().unwrap_or_default();
        let existing = client
            .query_opt(
                concat!(
                    "SELECT id FROM jobs WHERE unique_key = $1 AND unique_key > '' \
                 AND status IN (",
                    job_status!(pending),
                    ", ",
                    job_status!(running),
                    ", ",
                    job_status!(waiting),
                    ")"
                ),
                &[&key],
            )
            .map_err(err)?;
        // The holder may have finished in between: its id is still the answer.
        out.push((
            existing.map(|r| r.get(0)).unwrap_or_else(|| row.get(0)),
            false,
        ));
    }
    Ok(out)
}

/// The enqueue statement, prepared once per connection.
pub fn enqueue_statement(conn: &mut Conn, settings: &PgSettings) -> Result<Statement> {
    conn.prepare(ENQUEUE).map_err(|e| settings.error(e))
}

pub fn new_token() -> i64 {
    fastrand::i64(1..i64::MAX)
}

/// What a claim returns of each job it took (`j` is the jobs table), as `claimed_rows` reads it.
macro_rules! claimed_columns {
    () => {
        "j.id, j.task_name, j.queue, j.payload, j.retry_count, j.max_retries, \
         j.retry_backoff, j.timeout_ms, j.priority, j.scheduled_at, j.seq, j.pass_result, \
         j.eager_start"
    };
}
pub(crate) use claimed_columns;

macro_rules! job_columns {
    () => {
        "id, queue, task_name, status, priority, retry_count, max_retries, created_at, \
         scheduled_at, started_at, completed_at, error, progress, worker_id, unique_key, \
         metadata, timeout_ms, notes"
    };
}
pub(crate) use job_columns;

pub(super) fn job_row(r: &Row) -> JobRecord {
    JobRecord {
        id: r.get(0),
        queue: r.get(1),
        task_name: r.get(2),
        status: JobStatus::shown(
            r.get::<_, i16>(3) as i64,
            r.get::<_, Option<String>>(13).is_some(),
        ),
        priority: r.get(4),
        retry_count: r.get(5),
        max_retries: r.get(6),
        created_at: r.get(7),
        scheduled_at: r.get(8),
        started_at: r.get(9),
        completed_at: r.get(10),
        error: r.get(11),
        progress: r.get(12),
        worker_id: r.get(13),
        unique_key: r.get(14),
        metadata: r.get(15),
        notes: r.get(17),
        timeout_ms: r.get(16),
    }
}

/// A job to enqueue again from a stored one, read as `task_name, queue, payload, priority,
/// max_retries, retry_backoff, timeout_ms, metadata`: due at `scheduled_at`, without a key.
pub(super) fn stored_job(row: &Row, scheduled_at: i64) -> NewJob {
    NewJob {
        task_name: row.get(0),
        queue: row.get(1),
        payload: row.get(2),
        priority: row.get(3),
        scheduled_at,
        max_retries: row.get(4),
        retry_backoff: row.get(5),
        timeout_ms: row.get(6),
        unique_key: None,
        result_ttl_ms: None,
        metadata: row.get(7),
    }
}

pub(super) fn insert_error(
    tx: &mut Transaction<'_>,
    id: &str,
    attempt: i64,
    error: &str,
    traceback: &str,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        concat!(
            "INSERT INTO job_errors (job_id, attempt, error, traceback, failed_at) \
             VALUES ($1, $2, $3, $4, ",
            now_ms_sql!(),
            ")"
        ),
        &[&id, &attempt, &error, &traceback],
    )?;
    Ok(())
}

/// Copies a job that failed for good into the dead-letter table (one letter per job).
/// `metadata`, when given (a retry rule's reason), replaces the job's own.
pub(super) fn write_dead_letter(
    tx: &mut Transaction<'_>,
    id: &str,
    metadata: Option<&str>,
) -> std::result::Result<(), postgres::Error> {
    tx.execute(
        "DELETE FROM dead_letters WHERE original_job_id = $1",
        &[&id],
    )?;
    tx.execute(
        concat!(
            "INSERT INTO dead_letters (id, original_job_id, task_name, queue, payload, \
             priority, max_retries, retry_backoff, timeout_ms, metadata, error, \
             retry_count, failed_at, notes) \
             SELECT $2, id, task_name, queue, payload, priority, max_retries, \
             retry_backoff, timeout_ms, coalesce($3, metadata), error, retry_count, ",
            now_ms_sql!(),
            ", notes FROM jobs WHERE seq = $1"
        ),
        &[&seq_of(id), &uuid::Uuid::now_v7().to_string(), &metadata],
    )?;
    Ok(())
}

/// Claimed rows in claim order, each with how it takes its parents' results.
/// `claimed_at`: an instant before the claim's statement was sent; `None` for a claim made
/// at an unknown earlier time, whose jobs then record their start before running.
pub(super) fn claimed_rows<'a>(
    rows: impl Iterator<Item = &'a postgres::Row>,
    token: i64,
    claimed_at: Option<std::time::Instant>,
) -> Vec<(ClaimedJob, i16)> {
    let mut found: Vec<(i64, i64, i64, i16, ClaimedJob)> = rows
        .map(|r| {
            (
                r.get(8),
                r.get(9),
                r.get(10),
                r.get(11),
                claimed_job(r, token, 12, claimed_at),
            )
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found.into_iter().map(|f| (f.4, f.3)).collect()
}

/// A claimed job from the first eight columns of a claim's row and its `eager_start`
/// column; `claimed_at` as for `claimed_rows`.
pub(super) fn claimed_job(
    r: &postgres::Row,
    token: i64,
    eager_start: usize,
    claimed_at: Option<std::time::Instant>,
) -> ClaimedJob {
    ClaimedJob {
        id: r.get(0),
        task_name: r.get(1),
        queue: r.get(2),
        payload: r.get(3),
        retry_count: r.get(4),
        max_retries: r.get(5),
        retry_backoff: r.get(6),
        timeout_ms: r.get(7),
        claim_token: token,
        parents: None,
        claimed_at: claimed_at.unwrap_or_else(std::time::Instant::now),
        eager_start: claimed_at.is_none() || r.get::<_, bool>(eager_start),
    }
}
