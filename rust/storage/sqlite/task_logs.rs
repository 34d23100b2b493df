//! Log lines a task writes about its own job (`current_job.log`), kept with the job and
//! read back by job or by task, level and age.

use rusqlite::{params, Connection};

use crate::error::Result;
use crate::job::TaskLog;

pub fn write(c: &Connection, log: &TaskLog) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO task_logs (job_id, task_name, level, message, extra, logged_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        log.job_id,
        log.task_name,
        log.level,
        log.message,
        log.extra,
        log.logged_at
    ])?;
    Ok(())
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TaskLog> {
    Ok(TaskLog {
        job_id: r.get(0)?,
        task_name: r.get(1)?,
        level: r.get(2)?,
        message: r.get(3)?,
        extra: r.get(4)?,
        logged_at: r.get(5)?,
    })
}

const COLUMNS: &str = "job_id, task_name, level, message, extra, logged_at";

/// Every line of one job, oldest first.
pub fn for_job(c: &Connection, job_id: &str) -> Result<Vec<TaskLog>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM task_logs WHERE job_id = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![job_id], row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Lines logged at or after `since`, newest first, optionally of one task and one level.
pub fn query(
    c: &Connection,
    task_name: Option<&str>,
    level: Option<&str>,
    since: i64,
    limit: i64,
) -> Result<Vec<TaskLog>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM task_logs WHERE logged_at >= ?1 \
         AND (?2 IS NULL OR task_name = ?2) AND (?3 IS NULL OR level = ?3) \
         ORDER BY logged_at DESC, id DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(params![since, task_name, level, limit], row)?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
