//! Controls over a job's life besides running it: cooperative cancel of a running job,
//! expiry of jobs not started in time, and replay of a stored job.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::links::{after_outcome, enqueue_linked};
use crate::error::{Error, Result};
use crate::job::{JobLinks, JobStatus, NewJob};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;

/// Most expired jobs cancelled by one sweep transaction.
const EXPIRE_BATCH: i64 = 500;

/// Flags a running job for cancellation; true if it was running.
pub fn request_cancel(c: &Connection, id: &str) -> Result<bool> {
    Ok(c.prepare_cached(concat!(
        "UPDATE jobs SET cancel_requested = 1 WHERE seq = ?1 AND id = ?2 AND status = ",
        job_status!(running)
    ))?
    .execute(params![seq_of(id), id])?
        > 0)
}

/// Whether the job was asked to stop (one rowid lookup).
pub fn cancel_requested(c: &Connection, id: &str) -> Result<bool> {
    Ok(
        c.prepare_cached("SELECT cancel_requested FROM jobs WHERE seq = ?1 AND id = ?2")?
            .query_row(params![seq_of(id), id], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0)
            != 0,
    )
}

/// Ends a failed run as `cancelled` when its job was asked to stop (fenced by the claim
/// token, like every write that ends a claim): not retried, no dead letter. Returns
/// whether it did; only then is the caller's failure write skipped.
pub fn finish_cancelled(
    c: &Connection,
    id: &str,
    token: i64,
    error: &str,
    thread_id: &str,
    now: i64,
) -> Result<bool> {
    let seq = seq_of(id);
    let done: Option<i64> = c
        .prepare_cached(concat!(
            "UPDATE jobs SET status = ",
            job_status!(cancelled),
            ", error = ?3, completed_at = ?4, worker_id = ?5, \
             claim_token = NULL \
             WHERE seq = ?1 AND claim_token = ?2 AND status = ",
            job_status!(running),
            " AND cancel_requested = 1 \
             RETURNING has_dependents"
        ))?
        .query_row(params![seq, token, error, now, thread_id], |r| r.get(0))
        .optional()?;
    match done {
        Some(has_dependents) => {
            after_outcome(
                c,
                seq,
                JobStatus::Cancelled as i64,
                has_dependents != 0,
                now,
            )?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Cancels one job that expired before it started (inside the caller's transaction).
pub fn expire(c: &Connection, seq: i64, now: i64) -> Result<bool> {
    let done: Option<i64> = c
        .prepare_cached(concat!(
            "UPDATE jobs SET status = ",
            job_status!(cancelled),
            ", completed_at = ?2, owner = NULL, claim_token = NULL, \
             started_at = NULL, expires_at = -abs(expires_at), \
             error = 'expired: not started before its expiry time' \
             WHERE seq = ?1 AND status IN (",
            job_status!(pending),
            ", ",
            job_status!(running),
            ", ",
            job_status!(waiting),
            ") RETURNING has_dependents"
        ))?
        .query_row(params![seq, now], |r| r.get(0))
        .optional()?;
    if let Some(has_dependents) = done {
        after_outcome(
            c,
            seq,
            JobStatus::Cancelled as i64,
            has_dependents != 0,
            now,
        )?;
    }
    Ok(done.is_some())
}

/// Cancels pending or waiting jobs whose expiry time has passed; returns how many.
pub fn expire_due(c: &mut Connection, now: i64) -> Result<usize> {
    let due = |c: &Connection, limit: i64| -> Result<Vec<(i64, i64)>> {
        let mut stmt = c.prepare_cached(
            "SELECT seq, status FROM jobs INDEXED BY jobs_expiring \
             WHERE expires_at > 0 AND expires_at <= ?1 LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![now, limit], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    };
    // Read first: nearly every sweep finds nothing and should not take the write lock.
    if due(c, 1)?.is_empty() {
        return Ok(0);
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut n = 0;
    for (seq, status) in due(&tx, EXPIRE_BATCH)? {
        if matches!(status, 0 | 6) && expire(&tx, seq, now)? {
            n += 1;
        }
        // Out of the index whatever happened: it holds only jobs that may still expire.
        tx.prepare_cached("UPDATE jobs SET expires_at = -abs(expires_at) WHERE seq = ?1")?
            .execute(params![seq])?;
    }
    tx.commit()?;
    Ok(n)
}

/// A claimed job has started: it can no longer expire. The time is kept, negated (out of
/// the expiry index), for `replay`.
pub fn started(c: &Connection, seq: i64) -> Result<()> {
    c.prepare_cached("UPDATE jobs SET expires_at = -expires_at WHERE seq = ?1 AND expires_at > 0")?
        .execute(params![seq])?;
    Ok(())
}

/// Enqueues a copy of job `id`: same task, payload, options, metadata and notes, a fresh
/// expiry window of the same length, no dependencies. Returns the new id.
pub fn replay(c: &mut Connection, id: &str, now: i64) -> Result<String> {
    let found = c
        .prepare_cached(
            "SELECT task_name, queue, payload, priority, max_retries, retry_backoff, \
             timeout_ms, metadata, notes, abs(expires_at) - created_at, result_ttl_ms \
             FROM jobs WHERE seq = ?1 AND id = ?2",
        )?
        .query_row(params![seq_of(id), id], |r| {
            let job = NewJob {
                task_name: r.get(0)?,
                queue: r.get(1)?,
                payload: r.get(2)?,
                priority: r.get(3)?,
                scheduled_at: now,
                max_retries: r.get(4)?,
                retry_backoff: r.get(5)?,
                timeout_ms: r.get(6)?,
                unique_key: None,
                result_ttl_ms: r.get(10)?,
                metadata: r.get(7)?,
            };
            let window: Option<i64> = r.get(9)?;
            let links = JobLinks {
                notes: r.get(8)?,
                expires_at: window.map(|w| now + w.max(0)),
                ..JobLinks::default()
            };
            Ok((job, links))
        })
        .optional()?;
    let (job, links) = found.ok_or_else(|| Error::NotFound {
        kind: "job",
        id: id.to_string(),
    })?;
    let ids = enqueue_linked(c, &[job], &[links], &[], now)?;
    Ok(ids.into_iter().next().expect("one job in, one id out"))
}
