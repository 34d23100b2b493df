//! SQL for reading and changing single jobs outside the hot path: inspection, counts, cancel,
//! progress and dead letters.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::links::after_outcome;
use super::rows::{insert_job, job_row, next_seq, note_queue, JOB_COLUMNS};
use crate::error::{Error, Result};
use crate::job::{DeadLetter, ErrorRecord, JobFilter, JobRecord, JobStatus, NewJob, StoredOutcome};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::rules::status_sql;
use crate::storage::{move_unstarted, QueueCounts, CANCEL_CLAIMED_AFTER_MS};

pub fn get_job(c: &Connection, id: &str) -> Result<Option<JobRecord>> {
    for table in ["jobs", "archived_jobs"] {
        let found = c
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM {table} WHERE seq = ?2 AND id = ?1"
            ))?
            .query_row(params![id, seq_of(id)], job_row)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

pub fn status(c: &Connection, id: &str) -> Result<Option<JobStatus>> {
    for table in ["jobs", "archived_jobs"] {
        let found = c
            .prepare_cached(&format!(
                "SELECT status, worker_id IS NOT NULL FROM {table} WHERE seq = ?2 AND id = ?1"
            ))?
            .query_row(params![id, seq_of(id)], |r| {
                Ok(JobStatus::shown(r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

pub fn get_outcome(c: &Connection, id: &str) -> Result<Option<StoredOutcome>> {
    for table in ["jobs", "archived_jobs"] {
        let found = c
            .prepare_cached(&format!(
                "SELECT status, result, error, worker_id IS NOT NULL FROM {table} \
                 WHERE seq = ?2 AND id = ?1"
            ))?
            .query_row(params![id, seq_of(id)], |r| {
                Ok(StoredOutcome {
                    status: JobStatus::shown(r.get(0)?, r.get(3)?),
                    result: r.get(1)?,
                    error: r.get(2)?,
                })
            })
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

pub fn list_jobs(c: &Connection, f: &JobFilter) -> Result<Vec<JobRecord>> {
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(s) = f.status {
        sql.push_str(&format!(" AND {}", status_sql(s)));
    }
    if let Some(q) = &f.queue {
        args.push(q.clone().into());
        sql.push_str(&format!(" AND queue = ?{}", args.len()));
    }
    if let Some(t) = &f.task_name {
        args.push(t.clone().into());
        sql.push_str(&format!(" AND task_name = ?{}", args.len()));
    }
    if let Some(w) = &f.worker_id {
        // A thread id matches the jobs that thread ran; a worker (process) id matches every
        // job its threads hold or ran.
        args.push(w.clone().into());
        let n = args.len();
        sql.push_str(&format!(" AND (worker_id = ?{n} OR owner = ?{n})"));
    }
    push_text_filters(&mut sql, &mut args, f);
    args.push(f.limit.into());
    args.push(f.offset.into());
    sql.push_str(&format!(
        " ORDER BY seq LIMIT ?{} OFFSET ?{}",
        args.len() - 1,
        args.len()
    ));
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), job_row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Appends the filters of `list_jobs_filtered`: a pattern anywhere in the metadata or the
/// error (SQLite's `LIKE`: ASCII case-insensitive) and a creation-time range. None is
/// indexed; callers bound the rows read by other means (seq range, limit).
pub(super) fn push_text_filters(
    sql: &mut String,
    args: &mut Vec<rusqlite::types::Value>,
    f: &JobFilter,
) {
    for (column, pattern) in [("metadata", &f.metadata_like), ("error", &f.error_like)] {
        if let Some(p) = pattern {
            args.push(p.clone().into());
            sql.push_str(&format!(" AND {column} LIKE '%' || ?{} || '%'", args.len()));
        }
    }
    for (op, at) in [(">", f.created_after), ("<", f.created_before)] {
        if let Some(t) = at {
            args.push(t.into());
            sql.push_str(&format!(" AND created_at {op} ?{}", args.len()));
        }
    }
}

pub fn counts(c: &Connection) -> Result<QueueCounts> {
    // Counted from the status index alone; only the running rows (few) are read to tell
    // the claimed-ahead ones, which users see pending, from those that started.
    let mut stmt =
        c.prepare_cached("SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status")?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, JobStatus::from_i64(r.get(1)?), r.get(2)?))
    })?;
    let counts: QueueCounts = rows.collect::<std::result::Result<_, _>>()?;
    let mut stmt = c.prepare_cached(concat!(
        "SELECT queue, COUNT(*) FROM jobs WHERE status = ",
        job_status!(running),
        " AND worker_id IS NULL GROUP BY queue"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let unstarted: Vec<(String, i64)> = rows.collect::<std::result::Result<_, _>>()?;
    Ok(move_unstarted(counts, unstarted))
}

pub fn oldest_pending(c: &Connection, now: i64) -> Result<Vec<(String, i64)>> {
    // Ready jobs only, aged from when they became ready: a job delayed until tomorrow is
    // not a backlog.
    let mut stmt = c.prepare_cached(concat!(
        "SELECT queue, MIN(scheduled_at) FROM jobs WHERE status = ",
        job_status!(pending),
        " AND scheduled_at <= ?1 \
         GROUP BY queue"
    ))?;
    let rows = stmt.query_map(params![now], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn job_errors(c: &Connection, id: &str) -> Result<Vec<ErrorRecord>> {
    // Stored as the run's number (1 for the first run); shown as its index from 0, as the
    // public API numbers attempts (max_retries=3 gives 0..=3).
    let mut stmt = c.prepare_cached(
        "SELECT id, job_id, attempt - 1, error, traceback, failed_at FROM job_errors \
         WHERE job_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![id], |r| {
        Ok(ErrorRecord {
            id: r.get(0)?,
            job_id: r.get(1)?,
            attempt: r.get(2)?,
            error: r.get(3)?,
            traceback: r.get(4)?,
            failed_at: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn cancel(c: &mut Connection, id: &str, now: i64) -> Result<bool> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let done: Option<i64> = tx
        .prepare_cached(concat!(
            "UPDATE jobs SET status = ",
            job_status!(cancelled),
            ", completed_at = ?2, claim_token = NULL \
             WHERE seq = ?3 AND id = ?1 \
             AND (status IN (",
            job_status!(pending),
            ", ",
            job_status!(waiting),
            ") OR (status = ",
            job_status!(running),
            " AND worker_id IS NULL AND started_at <= ?4)) \
             RETURNING has_dependents"
        ))?
        .query_row(
            params![id, now, seq_of(id), now - CANCEL_CLAIMED_AFTER_MS],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(has_dependents) = done {
        after_outcome(
            &tx,
            seq_of(id),
            JobStatus::Cancelled as i64,
            has_dependents != 0,
            now,
        )?;
    }
    tx.commit()?;
    Ok(done.is_some())
}

pub fn set_progress(c: &Connection, id: &str, progress: i64) -> Result<()> {
    c.prepare_cached("UPDATE jobs SET progress = ?2 WHERE seq = ?3 AND id = ?1")?
        .execute(params![id, progress, seq_of(id)])?;
    Ok(())
}

pub fn dead_letters(c: &Connection, limit: i64, offset: i64) -> Result<Vec<DeadLetter>> {
    let mut stmt = c.prepare_cached(
        "SELECT id, original_job_id, task_name, queue, error, retry_count, failed_at, metadata \
         FROM dead_letters ORDER BY seq DESC LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt.query_map(params![limit, offset], |r| {
        Ok(DeadLetter {
            id: r.get(0)?,
            original_job_id: r.get(1)?,
            task_name: r.get(2)?,
            queue: r.get(3)?,
            error: r.get(4)?,
            retry_count: r.get(5)?,
            failed_at: r.get(6)?,
            metadata: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

pub fn retry_dead(c: &mut Connection, dead_id: &str, now: i64) -> Result<String> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let job = tx
        .prepare_cached(
            "SELECT task_name, queue, payload, priority, max_retries, retry_backoff, \
             timeout_ms, metadata FROM dead_letters WHERE id = ?1",
        )?
        .query_row(params![dead_id], |r| {
            Ok(NewJob {
                task_name: r.get(0)?,
                queue: r.get(1)?,
                payload: r.get(2)?,
                priority: r.get(3)?,
                scheduled_at: now,
                max_retries: r.get(4)?,
                retry_backoff: r.get(5)?,
                timeout_ms: r.get(6)?,
                unique_key: None,
                result_ttl_ms: None,
                metadata: r.get(7)?,
            })
        })
        .optional()?
        .ok_or_else(|| Error::NotFound {
            kind: "dead letter",
            id: dead_id.to_string(),
        })?;
    note_queue(&tx, &job.queue)?;
    let id = insert_job(&tx, &job, now, &mut next_seq(&tx)?)?;
    // Notes survive the round trip through the dead-letter queue.
    tx.prepare_cached(
        "UPDATE jobs SET notes = (SELECT notes FROM dead_letters WHERE id = ?1) WHERE seq = ?2",
    )?
    .execute(params![dead_id, seq_of(&id)])?;
    tx.prepare_cached("DELETE FROM dead_letters WHERE id = ?1")?
        .execute(params![dead_id])?;
    tx.commit()?;
    Ok(id)
}

pub fn purge_dead(c: &Connection, before: i64) -> Result<usize> {
    Ok(
        c.prepare_cached("DELETE FROM dead_letters WHERE failed_at <= ?1")?
            .execute(params![before])?,
    )
}
