//! Retention sweeps and their dry runs, the archive of finished jobs, and the record of the
//! windows the last sweep used. Each kind of row goes by its own window and time column;
//! an automatic sweep does not cascade (a job's errors and logs have windows of their own).

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::rows::{job_row, JOB_COLUMNS};
use crate::error::Result;
use crate::job::JobRecord;
use crate::retention::{cutoff, Retention, RetentionCounts, RetentionReport};
use crate::storage::rules::job_status;

/// The kinds of rows, their tables and the time column their window is measured on.
const FINISHED_JOBS: &str = concat!(
    "FROM jobs WHERE status >= ",
    job_status!(complete),
    " AND completed_at < ?1"
);
/// Finished jobs the queue's window applies to: a job given its own `result_ttl` goes by
/// that alone (`expire_results`).
const SWEPT_JOBS: &str = concat!(
    "FROM jobs WHERE status >= ",
    job_status!(complete),
    " AND completed_at < ?1 AND result_ttl_ms IS NULL"
);
const ARCHIVED_JOBS: &str = "FROM archived_jobs WHERE completed_at < ?1";
const DEAD_LETTERS: &str = "FROM dead_letters WHERE failed_at < ?1";
const TASK_LOGS: &str = "FROM task_logs WHERE logged_at < ?1";
const JOB_ERRORS: &str = "FROM job_errors WHERE failed_at < ?1";

fn count(c: &Connection, from: &str, before: i64) -> Result<i64> {
    Ok(c.prepare_cached(&format!("SELECT COUNT(*) {from}"))?
        .query_row(params![before], |r| r.get(0))?)
}

fn delete(c: &Connection, from: &str, before: i64) -> Result<i64> {
    Ok(c.prepare_cached(&format!("DELETE {from}"))?
        .execute(params![before])? as i64)
}

/// Applies `f` (count or delete) to every kind with a window.
fn each(
    c: &Connection,
    r: &Retention,
    now: i64,
    f: impl Fn(&Connection, &str, i64) -> Result<i64>,
) -> Result<RetentionCounts> {
    let mut out = RetentionCounts::default();
    if let Some(w) = r.archived_jobs {
        let before = cutoff(now, w);
        out.archived_jobs = f(c, SWEPT_JOBS, before)? + f(c, ARCHIVED_JOBS, before)?;
    }
    if let Some(w) = r.dead_letter {
        out.dead_letter = f(c, DEAD_LETTERS, cutoff(now, w))?;
    }
    if let Some(w) = r.task_logs {
        out.task_logs = f(c, TASK_LOGS, cutoff(now, w))?;
    }
    if let Some(w) = r.job_errors {
        out.job_errors = f(c, JOB_ERRORS, cutoff(now, w))?;
    }
    Ok(out)
}

/// Finished jobs whose own result TTL has run out by `?1`: a range scan of
/// `jobs_result_expiry`, which holds only jobs given a TTL (`+status` keeps the planner off
/// `jobs_by_status`, which would walk every finished job).
const EXPIRED_RESULTS: &str = concat!(
    "FROM jobs WHERE result_ttl_ms IS NOT NULL \
     AND completed_at + result_ttl_ms < ?1 AND +status BETWEEN ",
    job_status!(complete),
    " AND ",
    job_status!(cancelled)
);

/// Deletes finished jobs whose own result TTL has run out; returns how many.
pub fn expire_results(c: &mut Connection, now: i64) -> Result<usize> {
    // Read first: nearly every sweep finds nothing and should not take the write lock.
    let due = c
        .prepare_cached(&format!("SELECT 1 {EXPIRED_RESULTS} LIMIT 1"))?
        .query_row(params![now], |_| Ok(()))
        .optional()?;
    if due.is_none() {
        return Ok(0);
    }
    Ok(c.prepare_cached(&format!("DELETE {EXPIRED_RESULTS}"))?
        .execute(params![now])?)
}

/// What a sweep would delete now (no write).
pub fn preview(c: &Connection, r: &Retention, now: i64) -> Result<RetentionCounts> {
    each(c, r, now, count)
}

/// Deletes what the windows say is too old, in one transaction, and records the windows
/// used for `effective_retention()`.
pub fn sweep(c: &mut Connection, r: &Retention, now: i64) -> Result<RetentionCounts> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = each(&tx, r, now, delete)?;
    save_report(
        &tx,
        &RetentionReport {
            windows: *r,
            reported_at: now,
        },
    )?;
    tx.commit()?;
    Ok(out)
}

fn save_report(c: &Connection, report: &RetentionReport) -> Result<()> {
    let w = &report.windows;
    c.prepare_cached(
        "INSERT INTO retention_report (id, archived_jobs, dead_letter, task_logs, task_metrics, \
         job_errors, defaulted, reported_at) VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (id) DO UPDATE SET archived_jobs = excluded.archived_jobs, \
         dead_letter = excluded.dead_letter, task_logs = excluded.task_logs, \
         task_metrics = excluded.task_metrics, job_errors = excluded.job_errors, \
         defaulted = excluded.defaulted, reported_at = excluded.reported_at",
    )?
    .execute(params![
        w.archived_jobs,
        w.dead_letter,
        w.task_logs,
        w.task_metrics,
        w.job_errors,
        w.defaulted,
        report.reported_at
    ])?;
    Ok(())
}

/// The windows of the last sweep, if any worker has swept.
pub fn report(c: &Connection) -> Result<Option<RetentionReport>> {
    Ok(c.prepare_cached(
        "SELECT archived_jobs, dead_letter, task_logs, task_metrics, job_errors, defaulted, \
         reported_at FROM retention_report WHERE id = 1",
    )?
    .query_row([], |r| {
        Ok(RetentionReport {
            windows: Retention {
                archived_jobs: r.get(0)?,
                dead_letter: r.get(1)?,
                task_logs: r.get(2)?,
                task_metrics: r.get(3)?,
                job_errors: r.get(4)?,
                defaulted: r.get(5)?,
            },
            reported_at: r.get(6)?,
        })
    })
    .optional()?)
}

/// The columns an archived job keeps: everything the inspection API shows, plus its result.
const ARCHIVE_COLUMNS: &str = "seq, id, queue, task_name, status, priority, retry_count, \
    max_retries, created_at, scheduled_at, started_at, completed_at, error, progress, \
    worker_id, unique_key, metadata, timeout_ms, result, notes";

/// Moves finished jobs completed before `before` to the archive; returns how many.
pub fn archive(c: &mut Connection, before: i64, now: i64) -> Result<usize> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO archived_jobs ({ARCHIVE_COLUMNS}, archived_at) \
         SELECT {ARCHIVE_COLUMNS}, ?2 {FINISHED_JOBS}"
    ))?
    .execute(params![before, now])?;
    let n = tx
        .prepare_cached(&format!("DELETE {FINISHED_JOBS}"))?
        .execute(params![before])?;
    tx.commit()?;
    Ok(n)
}

/// Archived jobs, newest first, by offset.
pub fn list_archived(c: &Connection, limit: i64, offset: i64) -> Result<Vec<JobRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM archived_jobs ORDER BY seq DESC LIMIT ?1 OFFSET ?2"
    ))?;
    let rows = stmt.query_map(params![limit, offset], job_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Archived jobs older (in insertion order) than the one with seq `after`, newest first:
/// the keyset page after a cursor.
pub fn list_archived_after(
    c: &Connection,
    limit: i64,
    after: Option<i64>,
) -> Result<Vec<JobRecord>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM archived_jobs WHERE seq < ?2 ORDER BY seq DESC LIMIT ?1"
    ))?;
    let rows = stmt.query_map(params![limit, after.unwrap_or(i64::MAX)], job_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Deletes complete jobs finished before `before`, with their errors and logs; returns
/// how many jobs.
pub fn purge_completed(c: &mut Connection, before: i64) -> Result<usize> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    const DONE: &str = concat!(
        "SELECT id FROM jobs WHERE status = ",
        job_status!(complete),
        " AND completed_at < ?1"
    );
    tx.prepare_cached(&format!("DELETE FROM job_errors WHERE job_id IN ({DONE})"))?
        .execute(params![before])?;
    tx.prepare_cached(&format!("DELETE FROM task_logs WHERE job_id IN ({DONE})"))?
        .execute(params![before])?;
    let n = tx
        .prepare_cached(concat!(
            "DELETE FROM jobs WHERE status = ",
            job_status!(complete),
            " AND completed_at < ?1"
        ))?
        .execute(params![before])?;
    tx.commit()?;
    Ok(n)
}
pub fn purge_finished(c: &mut Connection, before: i64) -> Result<usize> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(concat!(
        "DELETE FROM job_errors WHERE job_id IN \
         (SELECT id FROM jobs WHERE status >= ",
        job_status!(complete),
        " AND completed_at <= ?1)"
    ))?
    .execute(params![before])?;
    tx.prepare_cached(concat!(
        "DELETE FROM task_logs WHERE job_id IN \
         (SELECT id FROM jobs WHERE status >= ",
        job_status!(complete),
        " AND completed_at <= ?1)"
    ))?
    .execute(params![before])?;
    // Both ends: a finished job's parents and children are finished too (a waiting child
    // of a failed parent was cancelled with it).
    tx.prepare_cached(concat!(
        "DELETE FROM job_dependencies WHERE job_seq IN \
         (SELECT seq FROM jobs WHERE status >= ",
        job_status!(complete),
        " AND completed_at <= ?1) \
         OR depends_on_seq IN (SELECT seq FROM jobs WHERE status >= ",
        job_status!(complete),
        " AND completed_at <= ?1)"
    ))?
    .execute(params![before])?;
    let n = tx
        .prepare_cached(concat!(
            "DELETE FROM jobs WHERE status >= ",
            job_status!(complete),
            " AND completed_at <= ?1"
        ))?
        .execute(params![before])?;
    tx.commit()?;
    Ok(n)
}
