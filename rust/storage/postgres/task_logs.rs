//! The lines tasks log about their jobs, on PostgreSQL: write, read one job's, query.

use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::job::TaskLog;

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
