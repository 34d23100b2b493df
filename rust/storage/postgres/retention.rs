//! On PostgreSQL: operator actions on single jobs and dead letters, task log lines,
//! retention sweeps and their dry runs, and the archive of finished jobs. Cut-offs the
//! engine computes on its clock (`now - window`) are applied as ages on the server's.

use postgres::GenericClient;

use super::pool::{Conn, PgSettings};
use super::rows::{job_columns, job_row, now_ms_sql};
use crate::error::Result;
use crate::job::JobRecord;
use crate::retention::{Retention, RetentionCounts, RetentionReport};
use crate::storage::rules::job_status;

/// The kinds of rows and the time column their window is measured on; `$1` is an age.
/// Finished jobs: a job given its own `result_ttl` goes by that alone (`expire_results`).
const FINISHED_JOBS: &str = concat!(
    "FROM jobs WHERE status >= ",
    job_status!(complete),
    " AND result_ttl_ms IS NULL AND completed_at < "
);
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
                " AND +status BETWEEN ",
                job_status!(complete),
                " AND ",
                job_status!(cancelled)
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
                "WITH moved AS (DELETE FROM jobs WHERE status >= ",
                job_status!(complete),
                " AND completed_at < ",
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
                "DELETE FROM jobs WHERE status = ",
                job_status!(complete),
                " AND completed_at < ",
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

/// Deletes finished jobs (and their error history) completed more than `age_ms` ago.
pub fn purge_finished(c: &mut Conn, s: &PgSettings, age_ms: i64) -> Result<usize> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let gone = tx
        .query(
            concat!(
                "DELETE FROM jobs WHERE status >= ",
                job_status!(complete),
                " AND completed_at <= ",
                now_ms_sql!(),
                " - $1 RETURNING id, seq"
            ),
            &[&age_ms],
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
