//! The ground floor of the SQLite store: the row writes and reads every area builds on
//! (insert a job, hand out its seq, note its queue, write its error and dead letter, read a
//! job row). Area files import from here; this file imports no area.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;
use crate::job::{JobRecord, JobStatus, NewJob};
use crate::storage::ids;
use crate::storage::rules::job_status;

pub(super) fn new_token() -> i64 {
    // Never 0 or NULL-like: a token identifies one claim of one job.
    fastrand::i64(1..i64::MAX)
}

pub(super) fn insert_error(
    conn: &Connection,
    seq: i64,
    error: &str,
    traceback: &str,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_errors (job_id, attempt, error, traceback, failed_at) \
         SELECT id, retry_count + 1, ?2, ?3, ?4 FROM jobs WHERE seq = ?1",
    )?
    .execute(params![seq, error, traceback, now])?;
    Ok(())
}

/// Copies a job that failed for good into the dead-letter table. One letter per job: a
/// job run again by id that fails again replaces its old letter (its history stays in
/// job_errors). `metadata`, when given (a retry rule's reason), replaces the job's own.
pub(super) fn write_dead_letter(
    conn: &Connection,
    seq: i64,
    metadata: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM dead_letters WHERE original_job_id = (SELECT id FROM jobs WHERE seq = ?1)",
    )?
    .execute(params![seq])?;
    conn.prepare_cached(
        "INSERT INTO dead_letters (id, original_job_id, task_name, queue, payload, \
         priority, max_retries, retry_backoff, timeout_ms, metadata, error, \
         retry_count, failed_at, notes) \
         SELECT ?2, id, task_name, queue, payload, priority, max_retries, \
         retry_backoff, timeout_ms, coalesce(?4, metadata), error, retry_count, ?3, notes \
         FROM jobs WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        uuid::Uuid::now_v7().to_string(),
        now,
        metadata
    ])?;
    Ok(())
}

/// Records a queue name (a no-op read when it is known already).
pub(super) fn note_queue(conn: &Connection, queue: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
        .execute(params![queue])?;
    Ok(())
}

/// The seq the next inserted job gets. Call inside a write transaction: the lock makes
/// it safe to hand out `last + 1, last + 2, ...` (read from the rowid's end: O(log n)).
pub(super) fn next_seq(conn: &Connection) -> Result<i64> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT seq FROM jobs ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(last.unwrap_or(0) + 1)
}

/// Inserts one job inside the caller's write transaction with seq `*next` and returns its
/// id (for a `unique_key` that a pending or running job holds already, that job's id).
/// The caller records the queue with `note_queue`.
pub(super) fn insert_job(
    conn: &Connection,
    job: &NewJob,
    now: i64,
    next: &mut i64,
) -> Result<String> {
    let seq = *next;
    let id = format!("{}{seq:012x}", ids::prefix(now));
    let inserted = conn
        .prepare_cached(concat!(
            "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, \
             scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key, metadata, \
             result_ttl_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ",
            job_status!(pending),
            ", ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (unique_key) WHERE unique_key > '' AND status IN (",
            job_status!(pending),
            ", ",
            job_status!(running),
            ", ",
            job_status!(waiting),
            ") DO NOTHING"
        ))?
        .execute(params![
            seq,
            id,
            job.queue,
            job.task_name,
            job.payload,
            job.priority,
            now,
            job.scheduled_at,
            job.max_retries,
            job.retry_backoff,
            job.timeout_ms,
            job.unique_key,
            job.metadata,
            job.result_ttl_ms
        ])?;
    if inserted == 1 {
        *next += 1;
        return Ok(id);
    }
    // The unique_key index refused the row: return the live job holding the key.
    let key = job.unique_key.as_deref().unwrap_or_default();
    Ok(conn
        .prepare_cached(concat!(
            "SELECT id FROM jobs WHERE unique_key = ?1 AND unique_key > '' AND status IN (",
            job_status!(pending),
            ", ",
            job_status!(running),
            ", ",
            job_status!(waiting),
            ")"
        ))?
        .query_row(params![key], |r| r.get(0))?)
}

/// Inserts `jobs` inside the caller's write transaction; returns their ids.
pub(super) fn insert_jobs(tx: &Connection, jobs: &[NewJob], now: i64) -> Result<Vec<String>> {
    let mut noted: Option<&str> = None;
    for job in jobs {
        if noted != Some(job.queue.as_str()) {
            note_queue(tx, &job.queue)?;
            noted = Some(&job.queue);
        }
    }
    let mut next = next_seq(tx)?;
    jobs.iter()
        .map(|j| insert_job(tx, j, now, &mut next))
        .collect::<Result<Vec<_>>>()
}

pub(super) const JOB_COLUMNS: &str =
    "id, queue, task_name, status, priority, retry_count, max_retries, \
    created_at, scheduled_at, started_at, completed_at, error, progress, worker_id, unique_key, \
    metadata, timeout_ms, notes";

pub(super) fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        queue: r.get(1)?,
        task_name: r.get(2)?,
        status: JobStatus::shown(r.get(3)?, r.get::<_, Option<String>>(13)?.is_some()),
        priority: r.get(4)?,
        retry_count: r.get(5)?,
        max_retries: r.get(6)?,
        created_at: r.get(7)?,
        scheduled_at: r.get(8)?,
        started_at: r.get(9)?,
        completed_at: r.get(10)?,
        error: r.get(11)?,
        progress: r.get(12)?,
        worker_id: r.get(13)?,
        unique_key: r.get(14)?,
        metadata: r.get(15)?,
        timeout_ms: r.get(16)?,
        notes: r.get(17)?,
    })
}

// A job moved to the archive (`archive()`) stays readable by id: the jobs table is read
// first (the common case), the archive only for an id it does not hold.
