//! Inspection on PostgreSQL: jobs, counts, error history, cancel, progress and dead letters.

use postgres::types::ToSql;
use postgres::Row;

use super::pool::{Conn, PgSettings};
use super::rows::{enqueue_in, enqueue_statement, job_columns, job_row, now_ms_sql, stored_job};
use crate::error::{Error, Result};
use crate::job::{DeadLetter, ErrorRecord, JobFilter, JobRecord, JobStatus, StoredOutcome};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::rules::status_sql;
use crate::storage::{move_unstarted, QueueCounts, CANCEL_CLAIMED_AFTER_MS};

/// One row by id: from the jobs table (the common case), else from the archive, where a
/// job moved by `archive()` stays readable.
fn by_id(
    c: &mut Conn,
    s: &PgSettings,
    live: &'static str,
    archived: &'static str,
    id: &str,
) -> Result<Option<Row>> {
    for sql in [live, archived] {
        let stmt = c.prepare(sql).map_err(|e| s.error(e))?;
        let row = c
            .client
            .query_opt(&stmt, &[&id, &seq_of(id)])
            .map_err(|e| s.error(e))?;
        if row.is_some() {
            return Ok(row);
        }
    }
    Ok(None)
}

pub fn get_job(c: &mut Conn, s: &PgSettings, id: &str) -> Result<Option<JobRecord>> {
    let row = by_id(
        c,
        s,
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE seq = $2 AND id = $1"
        ),
        concat!(
            "SELECT ",
            job_columns!(),
            " FROM archived_jobs WHERE seq = $2 AND id = $1"
        ),
        id,
    )?;
    Ok(row.as_ref().map(job_row))
}

pub fn status(c: &mut Conn, s: &PgSettings, id: &str) -> Result<Option<JobStatus>> {
    let row = by_id(
        c,
        s,
        "SELECT status, worker_id IS NOT NULL FROM jobs WHERE seq = $2 AND id = $1",
        "SELECT status, worker_id IS NOT NULL FROM archived_jobs WHERE seq = $2 AND id = $1",
        id,
    )?;
    Ok(row.map(|r| JobStatus::shown(r.get::<_, i16>(0) as i64, r.get(1))))
}

pub fn get_outcome(c: &mut Conn, s: &PgSettings, id: &str) -> Result<Option<StoredOutcome>> {
    let row = by_id(
        c,
        s,
        "SELECT status, result, error, worker_id IS NOT NULL FROM jobs \
         WHERE seq = $2 AND id = $1",
        "SELECT status, result, error, worker_id IS NOT NULL FROM archived_jobs \
         WHERE seq = $2 AND id = $1",
        id,
    )?;
    Ok(row.map(|r| StoredOutcome {
        status: JobStatus::shown(r.get::<_, i16>(0) as i64, r.get(3)),
        result: r.get(1),
        error: r.get(2),
    }))
}

pub fn list_jobs(c: &mut Conn, s: &PgSettings, f: &JobFilter) -> Result<Vec<JobRecord>> {
    let mut sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE true").to_string();
    let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(st) = f.status {
        sql.push_str(&format!(" AND {}", status_sql(st)));
    }
    if let Some(q) = &f.queue {
        args.push(q);
        sql.push_str(&format!(" AND queue = ${}", args.len()));
    }
    if let Some(t) = &f.task_name {
        args.push(t);
        sql.push_str(&format!(" AND task_name = ${}", args.len()));
    }
    if let Some(w) = &f.worker_id {
        args.push(w);
        let n = args.len();
        sql.push_str(&format!(" AND (worker_id = ${n} OR owner = ${n})"));
    }
    push_text_filters(&mut sql, &mut args, f);
    args.push(&f.limit);
    args.push(&f.offset);
    sql.push_str(&format!(
        " ORDER BY seq LIMIT ${} OFFSET ${}",
        args.len() - 1,
        args.len()
    ));
    let rows = c.client.query(&sql, &args).map_err(|e| s.error(e))?;
    Ok(rows.iter().map(job_row).collect())
}

/// Appends the filters of `list_jobs_filtered`: a pattern anywhere in the metadata or the
/// error (`ILIKE`, case-insensitive like SQLite's `LIKE`) and a creation-time range.
pub(super) fn push_text_filters<'a>(
    sql: &mut String,
    args: &mut Vec<&'a (dyn ToSql + Sync)>,
    f: &'a JobFilter,
) {
    for (column, pattern) in [("metadata", &f.metadata_like), ("error", &f.error_like)] {
        if let Some(p) = pattern {
            args.push(p);
            sql.push_str(&format!(
                " AND {column} ILIKE '%' || ${}::text || '%'",
                args.len()
            ));
        }
    }
    for (op, at) in [(">", &f.created_after), ("<", &f.created_before)] {
        if let Some(t) = at {
            args.push(t);
            sql.push_str(&format!(" AND created_at {op} ${}", args.len()));
        }
    }
}

pub fn counts(c: &mut Conn, s: &PgSettings) -> Result<QueueCounts> {
    let rows = c
        .client
        .query(
            "SELECT queue, status, count(*) FROM jobs GROUP BY queue, status",
            &[],
        )
        .map_err(|e| s.error(e))?;
    let counts: QueueCounts = rows
        .iter()
        .map(|r| {
            (
                r.get(0),
                JobStatus::from_i64(r.get::<_, i16>(1) as i64),
                r.get(2),
            )
        })
        .collect();
    // Claimed jobs not yet started are pending to users.
    let rows = c
        .client
        .query(
            concat!(
                "SELECT queue, count(*) FROM jobs WHERE status = ",
                job_status!(running),
                " AND worker_id IS NULL \
             GROUP BY queue"
            ),
            &[],
        )
        .map_err(|e| s.error(e))?;
    let unstarted = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(move_unstarted(counts, unstarted))
}

/// Ready jobs only; `scheduled_at` is shifted onto the caller's clock, so the caller's age
/// arithmetic (`now - scheduled_at`) holds whatever the clocks' disagreement.
pub fn oldest_pending(c: &mut Conn, s: &PgSettings, client_now: i64) -> Result<Vec<(String, i64)>> {
    let rows = c
        .client
        .query(
            concat!(
                "SELECT queue, min(scheduled_at) - ",
                now_ms_sql!(),
                " + $1 FROM jobs WHERE status = ",
                job_status!(pending),
                " AND scheduled_at <= ",
                now_ms_sql!(),
                " GROUP BY queue"
            ),
            &[&client_now],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub fn job_errors(c: &mut Conn, s: &PgSettings, id: &str) -> Result<Vec<ErrorRecord>> {
    let rows = c
        .client
        .query(
            // Stored as the run's number (1 for the first); shown as its index from 0.
            "SELECT id, job_id, attempt - 1, error, traceback, failed_at FROM job_errors \
             WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .map(|r| ErrorRecord {
            id: r.get(0),
            job_id: r.get(1),
            attempt: r.get(2),
            error: r.get(3),
            traceback: r.get(4),
            failed_at: r.get(5),
        })
        .collect())
}

pub fn cancel(c: &mut Conn, s: &PgSettings, id: &str) -> Result<bool> {
    let n = c
        .client
        .execute(
            concat!(
                "UPDATE jobs SET status = ",
                job_status!(cancelled),
                ", claim_token = NULL, completed_at = ",
                now_ms_sql!(),
                " WHERE seq = $2 AND id = $1 AND (status IN (",
                job_status!(pending),
                ", ",
                job_status!(waiting),
                ") OR (status = ",
                job_status!(running),
                " \
                 AND worker_id IS NULL AND started_at <= ",
                now_ms_sql!(),
                " - $3))"
            ),
            &[&id, &seq_of(id), &CANCEL_CLAIMED_AFTER_MS],
        )
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

pub fn set_progress(c: &mut Conn, s: &PgSettings, id: &str, progress: i64) -> Result<()> {
    c.client
        .execute(
            "UPDATE jobs SET progress = $2 WHERE seq = $3 AND id = $1",
            &[&id, &progress, &seq_of(id)],
        )
        .map_err(|e| s.error(e))?;
    Ok(())
}

pub fn dead_letters(
    c: &mut Conn,
    s: &PgSettings,
    limit: i64,
    offset: i64,
) -> Result<Vec<DeadLetter>> {
    let rows = c
        .client
        .query(
            "SELECT id, original_job_id, task_name, queue, error, retry_count, failed_at, \
             metadata FROM dead_letters ORDER BY seq DESC LIMIT $1 OFFSET $2",
            &[&limit, &offset],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .map(|r| DeadLetter {
            id: r.get(0),
            original_job_id: r.get(1),
            task_name: r.get(2),
            queue: r.get(3),
            error: r.get(4),
            retry_count: r.get(5),
            failed_at: r.get(6),
            metadata: r.get(7),
        })
        .collect())
}

/// Re-enqueues a dead letter as a new job, ready now, and removes the letter.
pub fn retry_dead(
    c: &mut Conn,
    s: &PgSettings,
    dead_id: &str,
    client_now: i64,
    notify: Option<&str>,
) -> Result<String> {
    let err = |e| s.error(e);
    let stmt = enqueue_statement(c, s)?;
    let mut tx = c.client.transaction().map_err(err)?;
    let row = tx
        .query_opt(
            "DELETE FROM dead_letters WHERE id = $1 RETURNING task_name, queue, payload, \
             priority, max_retries, retry_backoff, timeout_ms, metadata, notes",
            &[&dead_id],
        )
        .map_err(err)?
        .ok_or_else(|| Error::NotFound {
            kind: "dead letter",
            id: dead_id.to_string(),
        })?;
    let job = stored_job(&row, client_now);
    let ids = enqueue_in(
        &mut tx,
        &stmt,
        s,
        std::slice::from_ref(&job),
        client_now,
        notify,
    )?;
    let id = ids.into_iter().next().unwrap_or_default();
    // Notes survive the round trip through the dead-letter queue.
    let notes: Option<String> = row.get(8);
    if notes.is_some() {
        tx.execute(
            "UPDATE jobs SET notes = $2 WHERE seq = $1",
            &[&seq_of(&id), &notes],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(id)
}

/// Deletes dead letters older than `age_ms` by the server's clock.
pub fn purge_dead(c: &mut Conn, s: &PgSettings, age_ms: i64) -> Result<usize> {
    let n = c
        .client
        .execute(
            concat!(
                "DELETE FROM dead_letters WHERE failed_at <= ",
                now_ms_sql!(),
                " - $1"
            ),
            &[&age_ms],
        )
        .map_err(|e| s.error(e))?;
    Ok(n as usize)
}
