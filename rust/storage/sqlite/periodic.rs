//! Periodic schedules in SQLite. A fire is claimed in storage, not decided by a worker's
//! clock: one transaction moves `next_run` from the due time to the next one (only while it
//! still holds that due time) and inserts the job, so any number of worker processes on one
//! file fire each due time exactly once.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::rows::{insert_job, next_seq, note_queue};
use crate::error::Result;
use crate::job::NewJob;
use crate::schedule::Schedule;
use crate::storage::rules::{json_string, next_or_err, not_found};
use crate::storage::{PeriodicInfo, PeriodicSpec};

/// Stores or updates schedules. A schedule whose cron or zone changed is due again from
/// `now`; one that only changed its call keeps its next due time (and its paused state).
pub(super) fn register(conn: &mut Connection, specs: &[PeriodicSpec], now: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for spec in specs {
        let schedule = Schedule::parse(&spec.cron_expr, Some(&spec.timezone))?;
        let tz = schedule.timezone();
        let stored: Option<(String, String)> = tx
            .prepare_cached("SELECT cron_expr, timezone FROM periodic WHERE name = ?1")?
            .query_row(params![spec.name], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let reschedule = stored
            .as_ref()
            .is_none_or(|(cron, zone)| cron != &spec.cron_expr || zone != tz);
        let next_run: Option<i64> = if reschedule {
            Some(next_or_err(&schedule, &spec.name, now)?)
        } else {
            None
        };
        tx.prepare_cached(
            "INSERT INTO periodic (name, task_name, cron_expr, timezone, queue, payload, \
             priority, max_retries, retry_backoff, timeout_ms, next_run) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (name) DO UPDATE SET task_name = excluded.task_name, \
             cron_expr = excluded.cron_expr, timezone = excluded.timezone, \
             queue = excluded.queue, payload = excluded.payload, \
             priority = excluded.priority, max_retries = excluded.max_retries, \
             retry_backoff = excluded.retry_backoff, timeout_ms = excluded.timeout_ms, \
             next_run = coalesce(?12, next_run)",
        )?
        .execute(params![
            spec.name,
            spec.task_name,
            spec.cron_expr,
            tz,
            spec.queue,
            spec.payload,
            spec.priority,
            spec.max_retries,
            spec.retry_backoff,
            spec.timeout_ms,
            next_run.unwrap_or(0),
            next_run,
        ])?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn list(conn: &Connection) -> Result<Vec<PeriodicInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, task_name, cron_expr, timezone, queue, enabled, last_run, next_run \
         FROM periodic ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(PeriodicInfo {
            name: r.get(0)?,
            task_name: r.get(1)?,
            cron_expr: r.get(2)?,
            timezone: r.get(3)?,
            queue: r.get(4)?,
            enabled: r.get::<_, i64>(5)? != 0,
            last_run: r.get(6)?,
            next_run: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Pauses or resumes a schedule. A resumed schedule is due at its next time after `now`:
/// the times it missed while paused are not caught up.
pub(super) fn set_enabled(
    conn: &mut Connection,
    name: &str,
    enabled: bool,
    now: i64,
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row: Option<(String, String, i64)> = tx
        .prepare_cached("SELECT cron_expr, timezone, enabled FROM periodic WHERE name = ?1")?
        .query_row(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((cron, tz, was)) = row else {
        return Err(not_found(name));
    };
    if enabled && was == 0 {
        let next = next_or_err(&Schedule::parse(&cron, Some(&tz))?, name, now)?;
        tx.prepare_cached("UPDATE periodic SET enabled = 1, next_run = ?2 WHERE name = ?1")?
            .execute(params![name, next])?;
    } else if !enabled {
        tx.prepare_cached("UPDATE periodic SET enabled = 0 WHERE name = ?1")?
            .execute(params![name])?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn delete(conn: &Connection, name: &str) -> Result<()> {
    let n = conn
        .prepare_cached("DELETE FROM periodic WHERE name = ?1")?
        .execute(params![name])?;
    if n == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

/// The earliest due time of an enabled schedule (one read of `periodic_due`).
pub(super) fn next_due(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT min(next_run) FROM periodic WHERE enabled = 1")?
        .query_row([], |r| r.get(0))?)
}

/// Fires every schedule due at `now` in one transaction: each moves to its first due time
/// after `now` (several missed times give one catch-up job, not a burst) and enqueues one
/// job scheduled at the due time it claimed, carrying `{"periodic": name, "due": ms}` as
/// metadata. Returns the jobs enqueued and the earliest due time left.
pub(super) fn fire_due(conn: &mut Connection, now: i64) -> Result<(usize, Option<i64>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let due: Vec<(String, PeriodicSpec, i64)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT name, task_name, cron_expr, timezone, queue, payload, priority, \
             max_retries, retry_backoff, timeout_ms, next_run \
             FROM periodic WHERE enabled = 1 AND next_run <= ?1",
        )?;
        let rows = stmt.query_map(params![now], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PeriodicSpec {
                    name: r.get(0)?,
                    task_name: r.get(1)?,
                    cron_expr: r.get(2)?,
                    timezone: r.get(3)?,
                    queue: r.get(4)?,
                    payload: r.get(5)?,
                    priority: r.get(6)?,
                    max_retries: r.get(7)?,
                    retry_backoff: r.get(8)?,
                    timeout_ms: r.get(9)?,
                },
                r.get::<_, i64>(10)?,
            ))
        })?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    let mut fired = 0;
    let mut next_seq_no: Option<i64> = None;
    for (name, spec, due_at) in due {
        let next = Schedule::parse(&spec.cron_expr, Some(&spec.timezone))
            .ok()
            .and_then(|s| s.next_after(now));
        let Some(next) = next else {
            // Stored by an older build or never matching again: stop it rather than fire
            // it on every turn.
            log::error!("periodic schedule {name:?} has no next due time; pausing it");
            tx.prepare_cached("UPDATE periodic SET enabled = 0 WHERE name = ?1")?
                .execute(params![name])?;
            continue;
        };
        let claimed = tx
            .prepare_cached(
                "UPDATE periodic SET next_run = ?3, last_run = ?4 \
                 WHERE name = ?1 AND next_run = ?2 AND enabled = 1",
            )?
            .execute(params![name, due_at, next, now])?;
        if claimed == 0 {
            continue;
        }
        note_queue(&tx, &spec.queue)?;
        let seq = match next_seq_no.as_mut() {
            Some(s) => s,
            None => next_seq_no.insert(next_seq(&tx)?),
        };
        let job = NewJob {
            task_name: spec.task_name,
            queue: spec.queue,
            payload: spec.payload,
            priority: spec.priority,
            scheduled_at: due_at,
            max_retries: spec.max_retries,
            retry_backoff: spec.retry_backoff,
            timeout_ms: spec.timeout_ms,
            unique_key: None,
            result_ttl_ms: None,
            metadata: Some(format!(
                "{{\"periodic\": {}, \"due\": {due_at}}}",
                json_string(&name)
            )),
        };
        insert_job(&tx, &job, now, seq)?;
        fired += 1;
    }
    let earliest = next_due(&tx)?;
    tx.commit()?;
    Ok((fired, earliest))
}
