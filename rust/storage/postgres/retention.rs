//! On PostgreSQL: operator actions on single jobs and dead letters, task log lines,
//! retention sweeps and their dry runs, and the archive of finished jobs. Cut-offs the
//! engine computes on its clock (`now - window`) are applied as ages on the server's.

use postgres::GenericClient;

use super::claim::now_ms_sql;
use super::inspect::{job_columns, job_row};
use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::job::{JobRecord, TaskLog};
use crate::retention::{Retention, RetentionCounts, RetentionReport};
use crate::storage::ids::seq_of;

pub fn delete_dead(c: &mut Conn, s: &PgSettings, dead_id: &str) -> Result<bool> {
    let n = c
        .client
        .execute("DELETE FROM dead_letters WHERE id = $1", &[&dead_id])
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

/// Puts a running job back to `pending` and ends its claim (fenced); keeps its retry count.
pub fn requeue_job(c: &mut Conn, s: &PgSettings, id: &str) -> Result<bool> {
    let n = c
        .client
        .execute(
            "UPDATE jobs SET status = 0, owner = NULL, claim_token = NULL, started_at = NULL, \
             worker_id = NULL, cancel_requested = false WHERE seq = $2 AND id = $1 AND status = 1",
            &[&id, &seq_of(id)],
        )
        .map_err(|e| s.error(e))?;
    Ok(n > 0)
}

pub fn write_task_log(c: &mut Conn, s: &PgSettings, log: &TaskLog) -> Result<()> {
    let stmt = c
        .prepare(
            "INSERT INTO task_logs (job_id, task_name, level, message, extra, logged_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .map_err(|e| s.error(e))?;
    c.client
        .execute(
            &stmt,
            &[
                &log.job_id,
                &log.task_name,
                &log.level,
                &log.message,
                &log.extra,
                &log.logged_at,
            ],
        )
        .map_err(|e| s.error(e))?;
    Ok(())
}

fn log_row(r: &postgres::Row) -> TaskLog {
    TaskLog {
        job_id: r.get(0),
        task_name: r.get(1),
        level: r.get(2),
        message: r.get(3),
        extra: r.get(4),
        logged_at: r.get(5),
    }
}

pub fn task_logs(c: &mut Conn, s: &PgSettings, job_id: &str) -> Result<Vec<TaskLog>> {
    let rows = c
        .client
        .query(
            "SELECT job_id, task_name, level, message, extra, logged_at FROM task_logs \
             WHERE job_id = $1 ORDER BY id",
            &[&job_id],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(log_row).collect())
}

pub fn query_task_logs(
    c: &mut Conn,
    s: &PgSettings,
    task_name: Option<&str>,
    level: Option<&str>,
    since: i64,
    limit: i64,
) -> Result<Vec<TaskLog>> {
    let rows = c
        .client
        .query(
            "SELECT job_id, task_name, level, message, extra, logged_at FROM task_logs \
             WHERE logged_at >= $1 AND ($2::text IS NULL OR task_name = $2) \
             AND ($3::text IS NULL OR level = $3) ORDER BY logged_at DESC, id DESC LIMIT $4",
            &[&since, &task_name, &level, &limit],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(log_row).collect())
}

/// The kinds of rows and the time column their window is measured on; `$1` is an age.
/// Finished jobs: a job given its own `result_ttl` goes by that alone (`expire_results`).
const FINISHED_JOBS: &str =
    "FROM jobs WHERE status >= 2 AND result_ttl_ms IS NULL AND completed_at < ";
const ARCHIVED_JOBS: &str = "FROM archived_jobs WHERE completed_at < ";
const DEAD_LETTERS: &str = "FROM dead_letters WHERE failed_at < ";
const TASK_LOGS: &str = "FROM task_logs WHERE logged_at < ";
const JOB_ERRORS: &str = "FROM job_errors WHERE failed_at < ";
const SERVER_CUTOFF: &str = concat!(now_ms_sql!(), " - $1");

fn run(
    c: &mut impl GenericClient,
    verb: &str,
    from: &str,
    age: i64,
) -> std::result::Result<i64, postgres::Error> {
    let sql = format!("{verb} {from}{SERVER_CUTOFF}");
    if verb == "DELETE" {
        Ok(c.execute(&sql, &[&age])? as i64)
    } else {
        Ok(c.query_one(&sql, &[&age])?.get(0))
    }
}

/// Applies `verb` (a count or a delete) to every kind with a window. Task log lines carry
/// the worker's clock, so their cut-off is taken on the caller's clock.
fn each(
    c: &mut impl GenericClient,
    r: &Retention,
    verb: &str,
) -> std::result::Result<RetentionCounts, postgres::Error> {
    let mut out = RetentionCounts::default();
    if let Some(w) = r.archived_jobs {
        out.archived_jobs = run(c, verb, FINISHED_JOBS, w)? + run(c, verb, ARCHIVED_JOBS, w)?;
    }
    if let Some(w) = r.dead_letter {
        out.dead_letter = run(c, verb, DEAD_LETTERS, w)?;
    }
    if let Some(w) = r.task_logs {
        let before = crate::retention::cutoff(crate::job::now_ms(), w);
        let sql = format!("{verb} {TASK_LOGS}$1");
        out.task_logs = if verb == "DELETE" {
            c.execute(&sql, &[&before])? as i64
        } else {
            c.query_one(&sql, &[&before])?.get(0)
        };
    }
    if let Some(w) = r.job_errors {
        out.job_errors = run(c, verb, JOB_ERRORS, w)?;
    }
    Ok(out)
}

/// Deletes finished jobs whose own result TTL has run out, by the server's clock; returns
/// how many. A range scan of `jobs_result_expiry`, which holds only jobs given a TTL
/// (`+status` keeps the planner off `jobs_by_status`, which would walk every finished job).
pub fn expire_results(c: &mut Conn, s: &PgSettings) -> Result<usize> {
    let n = c
        .client
        .execute(
            concat!(
                "DELETE FROM jobs WHERE result_ttl_ms IS NOT NULL \
                 AND (completed_at + result_ttl_ms) < ",
                now_ms_sql!(),
                " AND +status BETWEEN 2 AND 5"
            ),
            &[],
        )
        .map_err(|e| s.error(e))?;
    Ok(n as usize)
}

pub fn preview(c: &mut Conn, s: &PgSettings, r: &Retention) -> Result<RetentionCounts> {
    each(&mut c.client, r, "SELECT count(*)").map_err(|e| s.error(e))
}

/// Deletes what the windows say is too old, in one transaction, and records the windows.
pub fn sweep(c: &mut Conn, s: &PgSettings, r: &Retention, now: i64) -> Result<RetentionCounts> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let out = each(&mut tx, r, "DELETE").map_err(err)?;
    tx.execute(
        "INSERT INTO retention_report (id, archived_jobs, dead_letter, task_logs, task_metrics, \
         job_errors, defaulted, reported_at) VALUES (1, $1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (id) DO UPDATE SET archived_jobs = excluded.archived_jobs, \
         dead_letter = excluded.dead_letter, task_logs = excluded.task_logs, \
         task_metrics = excluded.task_metrics, job_errors = excluded.job_errors, \
         defaulted = excluded.defaulted, reported_at = excluded.reported_at",
        &[
            &r.archived_jobs,
            &r.dead_letter,
            &r.task_logs,
            &r.task_metrics,
            &r.job_errors,
            &r.defaulted,
            &now,
        ],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(out)
}

pub fn report(c: &mut Conn, s: &PgSettings) -> Result<Option<RetentionReport>> {
    let row = c
        .client
        .query_opt(
            "SELECT archived_jobs, dead_letter, task_logs, task_metrics, job_errors, defaulted, \
             reported_at FROM retention_report WHERE id = 1",
            &[],
        )
        .map_err(|e| s.error(e))?;
    Ok(row.map(|r| RetentionReport {
        windows: Retention {
            archived_jobs: r.get(0),
            dead_letter: r.get(1),
            task_logs: r.get(2),
            task_metrics: r.get(3),
            job_errors: r.get(4),
            defaulted: r.get(5),
        },
        reported_at: r.get(6),
    }))
}

macro_rules! archive_columns {
    () => {
        "seq, id, queue, task_name, status, priority, retry_count, max_retries, created_at, \
         scheduled_at, started_at, completed_at, error, progress, worker_id, unique_key, \
         metadata, timeout_ms, result, notes"
    };
}

/// Moves finished jobs completed more than `age` ms ago (server clock) to the archive.
pub fn archive(c: &mut Conn, s: &PgSettings, age: i64) -> Result<usize> {
    let err = |e| s.error(e);
    let n = c
        .client
        .execute(
            concat!(
                "WITH moved AS (DELETE FROM jobs WHERE status >= 2 AND completed_at < ",
                now_ms_sql!(),
                " - $1 RETURNING ",
                archive_columns!(),
                ") INSERT INTO archived_jobs (",
                archive_columns!(),
                ", archived_at) SELECT ",
                archive_columns!(),
                ", ",
                now_ms_sql!(),
                " FROM moved ON CONFLICT (seq) DO NOTHING"
            ),
            &[&age],
        )
        .map_err(err)?;
    Ok(n as usize)
}

pub fn list_archived(
    c: &mut Conn,
    s: &PgSettings,
    limit: i64,
    offset: i64,
) -> Result<Vec<JobRecord>> {
    let rows = c
        .client
        .query(
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM archived_jobs ORDER BY seq DESC LIMIT $1 OFFSET $2"
            ),
            &[&limit, &offset],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(job_row).collect())
}

pub fn list_archived_after(
    c: &mut Conn,
    s: &PgSettings,
    limit: i64,
    after: Option<i64>,
) -> Result<Vec<JobRecord>> {
    let rows = c
        .client
        .query(
            concat!(
                "SELECT ",
                job_columns!(),
                " FROM archived_jobs WHERE seq < $2 ORDER BY seq DESC LIMIT $1"
            ),
            &[&limit, &after.unwrap_or(i64::MAX)],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows.iter().map(job_row).collect())
}

/// Deletes complete jobs finished more than `age` ms ago, with their errors and logs.
pub fn purge_completed(c: &mut Conn, s: &PgSettings, age: i64) -> Result<usize> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let gone = tx
        .query(
            concat!(
                "DELETE FROM jobs WHERE status = 2 AND completed_at < ",
                now_ms_sql!(),
                " - $1 RETURNING id, seq"
            ),
            &[&age],
        )
        .map_err(err)?;
    let ids: Vec<String> = gone.iter().map(|r| r.get(0)).collect();
    let seqs: Vec<i64> = gone.iter().map(|r| r.get(1)).collect();
    if !ids.is_empty() {
        tx.execute("DELETE FROM job_errors WHERE job_id = ANY($1)", &[&ids])
            .map_err(err)?;
        tx.execute(
            "DELETE FROM job_dependencies WHERE job_seq = ANY($1) OR depends_on_seq = ANY($1)",
            &[&seqs],
        )
        .map_err(err)?;
        tx.execute("DELETE FROM task_logs WHERE job_id = ANY($1)", &[&ids])
            .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(ids.len())
}
