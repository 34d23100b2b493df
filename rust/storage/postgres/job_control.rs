//! Controls over a job's life besides running it, on PostgreSQL: cooperative cancel of a
//! running job, expiry of jobs not started in time, and replay of a stored job. The same
//! rules as SQLite (`storage/job_control.rs`). Expiry is also checked by the claim itself
//! (`claim.rs`), which cancels a job picked after its time instead of handing it out.

use postgres::Transaction;

use super::links::enqueue_linked;
use super::pool::{Conn, PgSettings};
use super::rows::now_ms_sql;
use super::rows::stored_job;
use crate::error::{Error, Result};
use crate::job::{JobLinks, NewJob};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;

/// Most expired jobs cancelled by one sweep transaction.
const EXPIRE_BATCH: i64 = 500;

/// Flags a running job for cancellation; true if it was running.
pub fn request_cancel(c: &mut Conn, s: &PgSettings, id: &str) -> Result<bool> {
    let n = c
        .client
        .execute(
            concat!(
                "UPDATE jobs SET cancel_requested = true WHERE seq = $1 AND id = $2 AND status = ",
                job_status!(running)
            ),
            &[&seq_of(id), &id],
        )
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

/// Whether the job was asked to stop (one primary-key lookup).
pub fn cancel_requested(c: &mut Conn, s: &PgSettings, id: &str) -> Result<bool> {
    let row = c
        .client
        .query_opt(
            "SELECT cancel_requested FROM jobs WHERE seq = $1 AND id = $2",
            &[&seq_of(id), &id],
        )
        .map_err(|e| s.error(e))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// Ends a failed run as `cancelled` when its job was asked to stop (fenced by the claim
/// token): not retried, no dead letter; dependents are cancelled by the trigger. Returns
/// whether it did; only then is the caller's failure write skipped.
pub fn finish_cancelled(
    tx: &mut Transaction<'_>,
    id: &str,
    token: i64,
    error: &str,
    thread_id: &str,
) -> std::result::Result<bool, postgres::Error> {
    let n = tx.execute(
        concat!(
            "UPDATE jobs SET status = ",
            job_status!(cancelled),
            ", error = $3, completed_at = ",
            now_ms_sql!(),
            ", worker_id = $4, claim_token = NULL \
             WHERE seq = $1 AND claim_token = $2 AND status = ",
            job_status!(running),
            " AND cancel_requested"
        ),
        &[&seq_of(id), &token, &error, &thread_id],
    )?;
    Ok(n > 0)
}

/// Cancels pending or waiting jobs whose expiry time has passed (server clock); returns
/// how many. Jobs another transaction holds are left to the next sweep.
pub fn expire_due(c: &mut Conn, s: &PgSettings) -> Result<usize> {
    let err = |e| s.error(e);
    // Read first: nearly every sweep finds nothing and should write nothing.
    let any = c
        .client
        .query_opt(
            concat!(
                "SELECT 1 FROM jobs WHERE expires_at > 0 AND expires_at <= ",
                now_ms_sql!(),
                " LIMIT 1"
            ),
            &[],
        )
        .map_err(err)?;
    if any.is_none() {
        return Ok(0);
    }
    let mut tx = c.client.transaction().map_err(err)?;
    let n = tx
        .execute(
            concat!(
                "WITH due AS (SELECT seq FROM jobs WHERE expires_at > 0 AND expires_at <= ",
                now_ms_sql!(),
                " AND status IN (",
                job_status!(pending),
                ", ",
                job_status!(waiting),
                ") LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs AS j SET status = ",
                job_status!(cancelled),
                ", completed_at = ",
                now_ms_sql!(),
                ", owner = NULL, claim_token = NULL, started_at = NULL, \
                 expires_at = -j.expires_at, \
                 error = 'expired: not started before its expiry time' \
                 FROM due WHERE j.seq = due.seq AND j.status IN (",
                job_status!(pending),
                ", ",
                job_status!(waiting),
                ")"
            ),
            &[&EXPIRE_BATCH],
        )
        .map_err(err)?;
    // Out of the expiry index: due jobs that can no longer expire (cancelled or ended
    // before their time came).
    tx.execute(
        concat!(
            "WITH done AS (SELECT seq FROM jobs WHERE expires_at > 0 AND expires_at <= ",
            now_ms_sql!(),
            " AND status NOT IN (0, 6) LIMIT $1 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs AS j SET expires_at = -j.expires_at FROM done WHERE j.seq = done.seq"
        ),
        &[&EXPIRE_BATCH],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(n as usize)
}

/// Enqueues a copy of job `id`: same task, payload, options, metadata and notes, a fresh
/// expiry window of the same length, no dependencies. Returns the new id.
pub fn replay(
    c: &mut Conn,
    s: &PgSettings,
    id: &str,
    client_now: i64,
    notify: Option<&str>,
) -> Result<String> {
    let row = c
        .client
        .query_opt(
            "SELECT task_name, queue, payload, priority, max_retries, retry_backoff, \
             timeout_ms, metadata, notes, abs(expires_at) - created_at, result_ttl_ms \
             FROM jobs WHERE seq = $1 AND id = $2",
            &[&seq_of(id), &id],
        )
        .map_err(|e| s.error(e))?
        .ok_or_else(|| Error::NotFound {
            kind: "job",
            id: id.to_string(),
        })?;
    let job = NewJob {
        result_ttl_ms: row.get(10),
        ..stored_job(&row, client_now)
    };
    let window: Option<i64> = row.get(9);
    let links = JobLinks {
        notes: row.get(8),
        expires_at: window.map(|w| client_now + w.max(0)),
        ..JobLinks::default()
    };
    let ids = enqueue_linked(c, s, &[job], &[links], &[], client_now, notify)?;
    ids.into_iter()
        .next()
        .ok_or_else(|| Error::invalid("id", "the replay was not stored"))
}
