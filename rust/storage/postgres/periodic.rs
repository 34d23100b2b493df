//! Periodic schedules on PostgreSQL. As on SQLite, a fire is claimed in storage: one
//! transaction moves `next_run` from the due time to the next one (only while it still
//! holds that due time; a second firer waits on the row and then finds it moved) and
//! inserts the job. Due times are judged by the server's clock, so a host whose clock runs
//! ahead never fires a schedule early.

use super::pool::{Conn, PgSettings};
use super::rows::{enqueue_in, enqueue_statement, now_ms_sql};
use crate::error::Result;
use crate::job::NewJob;
use crate::schedule::Schedule;
use crate::storage::rules::{json_string, next_or_err, not_found};
use crate::storage::{PeriodicInfo, PeriodicSpec};

/// The server's clock (epoch ms) as of the start of the transaction.
fn server_now(tx: &mut postgres::Transaction<'_>) -> std::result::Result<i64, postgres::Error> {
    Ok(tx.query_one(concat!("SELECT ", now_ms_sql!()), &[])?.get(0))
}

/// Stores or updates schedules. A schedule whose cron or zone changed is due again from
/// now; one that only changed its call keeps its next due time (and its paused state).
pub fn register(c: &mut Conn, s: &PgSettings, specs: &[PeriodicSpec]) -> Result<()> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let now = server_now(&mut tx).map_err(err)?;
    for spec in specs {
        let schedule = Schedule::parse(&spec.cron_expr, Some(&spec.timezone))?;
        let tz = schedule.timezone();
        let stored = tx
            .query_opt(
                "SELECT cron_expr, timezone FROM periodic WHERE name = $1 FOR UPDATE",
                &[&spec.name],
            )
            .map_err(err)?
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)));
        let reschedule = stored
            .as_ref()
            .is_none_or(|(cron, zone)| cron != &spec.cron_expr || zone != tz);
        let next_run: Option<i64> = if reschedule {
            Some(next_or_err(&schedule, &spec.name, now)?)
        } else {
            None
        };
        tx.execute(
            "INSERT INTO periodic (name, task_name, cron_expr, timezone, queue, payload, \
             priority, max_retries, retry_backoff, timeout_ms, next_run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, coalesce($11::bigint, 0)) \
             ON CONFLICT (name) DO UPDATE SET task_name = excluded.task_name, \
             cron_expr = excluded.cron_expr, timezone = excluded.timezone, \
             queue = excluded.queue, payload = excluded.payload, \
             priority = excluded.priority, max_retries = excluded.max_retries, \
             retry_backoff = excluded.retry_backoff, timeout_ms = excluded.timeout_ms, \
             next_run = coalesce($11::bigint, periodic.next_run)",
            &[
                &spec.name,
                &spec.task_name,
                &spec.cron_expr,
                &tz,
                &spec.queue,
                &spec.payload,
                &spec.priority,
                &spec.max_retries,
                &spec.retry_backoff,
                &spec.timeout_ms,
                &next_run,
            ],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(())
}

pub fn list(c: &mut Conn, s: &PgSettings) -> Result<Vec<PeriodicInfo>> {
    let rows = c
        .client
        .query(
            "SELECT name, task_name, cron_expr, timezone, queue, enabled, last_run, next_run \
             FROM periodic ORDER BY name",
            &[],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .map(|r| PeriodicInfo {
            name: r.get(0),
            task_name: r.get(1),
            cron_expr: r.get(2),
            timezone: r.get(3),
            queue: r.get(4),
            enabled: r.get(5),
            last_run: r.get(6),
            next_run: r.get(7),
        })
        .collect())
}

/// Pauses or resumes a schedule. A resumed schedule is due at its next time after now:
/// the times it missed while paused are not caught up.
pub fn set_enabled(c: &mut Conn, s: &PgSettings, name: &str, enabled: bool) -> Result<()> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let now = server_now(&mut tx).map_err(err)?;
    let Some(row) = tx
        .query_opt(
            "SELECT cron_expr, timezone, enabled FROM periodic WHERE name = $1 FOR UPDATE",
            &[&name],
        )
        .map_err(err)?
    else {
        return Err(not_found(name));
    };
    let (cron, tz, was): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
    if enabled && !was {
        let next = next_or_err(&Schedule::parse(&cron, Some(&tz))?, name, now)?;
        tx.execute(
            "UPDATE periodic SET enabled = true, next_run = $2 WHERE name = $1",
            &[&name, &next],
        )
        .map_err(err)?;
    } else if !enabled {
        tx.execute(
            "UPDATE periodic SET enabled = false WHERE name = $1",
            &[&name],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(())
}

pub fn delete(c: &mut Conn, s: &PgSettings, name: &str) -> Result<()> {
    let n = c
        .client
        .execute("DELETE FROM periodic WHERE name = $1", &[&name])
        .map_err(|e| s.error(e))?;
    if n == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

/// Fires every schedule due by the server's clock in one transaction: each moves to its
/// first due time after now (several missed times give one catch-up job, not a burst) and
/// enqueues one job scheduled at the due time it claimed, carrying
/// `{"periodic": name, "due": ms}` as metadata. Returns the jobs enqueued and the earliest
/// due time left.
pub fn fire_due(
    c: &mut Conn,
    s: &PgSettings,
    notify: Option<&str>,
) -> Result<(usize, Option<i64>)> {
    let err = |e| s.error(e);
    let due_stmt = c
        .prepare(concat!(
            "SELECT name, task_name, cron_expr, timezone, queue, payload, priority, \
             max_retries, retry_backoff, timeout_ms, next_run, ",
            now_ms_sql!(),
            " FROM periodic WHERE enabled AND next_run <= ",
            now_ms_sql!()
        ))
        .map_err(err)?;
    let next_stmt = c
        .prepare("SELECT min(next_run) FROM periodic WHERE enabled")
        .map_err(err)?;
    // Between due times this is one indexed read, outside any transaction.
    let due = c.client.query(&due_stmt, &[]).map_err(err)?;
    if due.is_empty() {
        let next: Option<i64> = c.client.query_one(&next_stmt, &[]).map_err(err)?.get(0);
        return Ok((0, next));
    }
    let enqueue = enqueue_statement(c, s)?;
    let mut tx = c.client.transaction().map_err(err)?;
    let now = server_now(&mut tx).map_err(err)?;
    let mut fired = 0;
    for row in &due {
        let name: String = row.get(0);
        let spec = PeriodicSpec {
            name: name.clone(),
            task_name: row.get(1),
            cron_expr: row.get(2),
            timezone: row.get(3),
            queue: row.get(4),
            payload: row.get(5),
            priority: row.get(6),
            max_retries: row.get(7),
            retry_backoff: row.get(8),
            timeout_ms: row.get(9),
        };
        let due_at: i64 = row.get(10);
        let next = Schedule::parse(&spec.cron_expr, Some(&spec.timezone))
            .ok()
            .and_then(|sch| sch.next_after(now));
        let Some(next) = next else {
            // Never matching again: stop it rather than fire it on every turn.
            log::error!("periodic schedule {name:?} has no next due time; pausing it");
            tx.execute(
                "UPDATE periodic SET enabled = false WHERE name = $1",
                &[&name],
            )
            .map_err(err)?;
            continue;
        };
        let claimed = tx
            .execute(
                "UPDATE periodic SET next_run = $3, last_run = $4 \
                 WHERE name = $1 AND next_run = $2 AND enabled",
                &[&name, &due_at, &next, &now],
            )
            .map_err(err)?;
        if claimed == 0 {
            continue;
        }
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
        // `now` is the server's clock of this transaction: the job is due at `due_at` exactly.
        enqueue_in(&mut tx, &enqueue, s, &[job], now, notify)?;
        fired += 1;
    }
    let earliest: Option<i64> = tx.query_one(&next_stmt, &[]).map_err(err)?.get(0);
    tx.commit().map_err(err)?;
    Ok((fired, earliest))
}
