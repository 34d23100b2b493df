//! The worker registry on PostgreSQL, recovery of jobs whose worker died, and clean-up.
//! Heartbeats and staleness are judged by the server's clock alone, so a host whose clock
//! is off neither looks dead nor declares live hosts dead.

use super::claim::{insert_error, now_ms_sql, write_dead_letter};
use super::pool::{Conn, PgSettings};
use crate::error::Result;
use crate::job::WorkerInfo;
use crate::storage::ids::seq_of;
use crate::storage::inspect::MAX_RECOVERIES;

pub fn register_worker(c: &mut Conn, s: &PgSettings, w: &WorkerInfo) -> Result<()> {
    c.client
        .execute(
            concat!(
                "INSERT INTO workers (worker_id, hostname, pid, queues, started_at, \
                 last_heartbeat, status) VALUES ($1, $2, $3, $4, ",
                now_ms_sql!(),
                ", ",
                now_ms_sql!(),
                ", 'active') \
                 ON CONFLICT (worker_id) DO UPDATE SET hostname = excluded.hostname, \
                 pid = excluded.pid, queues = excluded.queues, started_at = excluded.started_at, \
                 last_heartbeat = excluded.last_heartbeat, status = 'active'"
            ),
            &[&w.worker_id, &w.hostname, &w.pid, &w.queues],
        )
        .map_err(|e| s.error(e))?;
    Ok(())
}

pub fn heartbeat(c: &mut Conn, s: &PgSettings, worker_id: &str) -> Result<()> {
    let stmt = c
        .prepare(concat!(
            "UPDATE workers SET last_heartbeat = ",
            now_ms_sql!(),
            ", status = 'active' WHERE worker_id = $1"
        ))
        .map_err(|e| s.error(e))?;
    c.client
        .execute(&stmt, &[&worker_id])
        .map_err(|e| s.error(e))?;
    Ok(())
}

pub fn deregister_worker(c: &mut Conn, s: &PgSettings, worker_id: &str) -> Result<()> {
    c.client
        .execute(
            concat!(
                "UPDATE workers SET status = 'stopped', last_heartbeat = ",
                now_ms_sql!(),
                " WHERE worker_id = $1"
            ),
            &[&worker_id],
        )
        .map_err(|e| s.error(e))?;
    Ok(())
}

/// Marks workers silent for `stale_ms` (server clock) dead and puts their running jobs
/// back; a job that lost its worker more than `MAX_RECOVERIES` times is dead-lettered.
/// One process recovers at a time (a transaction-scoped advisory lock); the others skip.
pub fn recover_stale(c: &mut Conn, s: &PgSettings, stale_ms: i64) -> Result<usize> {
    let err = |e| s.error(e);
    let probe = c
        .prepare(concat!(
            "SELECT (SELECT count(*) FROM workers WHERE status = 'active' AND last_heartbeat < ",
            now_ms_sql!(),
            " - $1) + (SELECT count(*) FROM jobs WHERE status = 1 AND started_at < ",
            now_ms_sql!(),
            " - $1 AND (owner IS NULL OR owner NOT IN \
             (SELECT worker_id FROM workers WHERE status = 'active')))"
        ))
        .map_err(err)?;
    let suspects: i64 = c
        .client
        .query_one(&probe, &[&stale_ms])
        .map_err(err)?
        .get(0);
    if suspects == 0 {
        return Ok(0);
    }
    let mut tx = c.client.transaction().map_err(err)?;
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('taskito-recover:' || current_schema()))",
            &[],
        )
        .map_err(err)?
        .get(0);
    if !locked {
        return Ok(0);
    }
    tx.execute(
        concat!(
            "UPDATE workers SET status = 'dead' WHERE status = 'active' AND last_heartbeat < ",
            now_ms_sql!(),
            " - $1"
        ),
        &[&stale_ms],
    )
    .map_err(err)?;
    let lost = tx
        .query(
            concat!(
                "UPDATE jobs SET recoveries = recoveries + 1 WHERE status = 1 \
                 AND (owner IS NULL OR owner NOT IN \
                 (SELECT worker_id FROM workers WHERE status = 'active')) \
                 AND (started_at < ",
                now_ms_sql!(),
                " - $1 OR owner IN (SELECT worker_id FROM workers WHERE status = 'dead')) \
                 RETURNING id, owner, recoveries"
            ),
            &[&stale_ms],
        )
        .map_err(err)?;
    for row in &lost {
        let id: String = row.get(0);
        let seq = seq_of(&id);
        let owner: Option<String> = row.get(1);
        let recoveries: i64 = row.get(2);
        let worker = owner.as_deref().unwrap_or("(unknown)");
        let dead = recoveries > MAX_RECOVERIES;
        let note = if dead {
            format!(
                "worker {worker} stopped heartbeating; the job lost its worker {recoveries} times \
                 and is dead-lettered"
            )
        } else {
            format!("worker {worker} stopped heartbeating; job put back to pending")
        };
        let attempt: i64 = tx
            .query_one("SELECT retry_count + 1 FROM jobs WHERE seq = $1", &[&seq])
            .map_err(err)?
            .get(0);
        insert_error(&mut tx, &id, attempt, &note, "").map_err(err)?;
        if dead {
            tx.execute(
                concat!(
                    "UPDATE jobs SET status = 4, error = $2, completed_at = ",
                    now_ms_sql!(),
                    ", claim_token = NULL WHERE seq = $1 AND status = 1"
                ),
                &[&seq, &note],
            )
            .map_err(err)?;
            write_dead_letter(&mut tx, &id).map_err(err)?;
        } else {
            tx.execute(
                "UPDATE jobs SET status = 0, owner = NULL, claim_token = NULL, \
                 started_at = NULL, worker_id = NULL WHERE seq = $1 AND status = 1",
                &[&seq],
            )
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(lost.len())
}

/// Deletes finished jobs (and their error history) completed more than `age_ms` ago.
pub fn purge_finished(c: &mut Conn, s: &PgSettings, age_ms: i64) -> Result<usize> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    let gone = tx
        .query(
            concat!(
                "DELETE FROM jobs WHERE status >= 2 AND completed_at <= ",
                now_ms_sql!(),
                " - $1 RETURNING id"
            ),
            &[&age_ms],
        )
        .map_err(err)?;
    let ids: Vec<String> = gone.iter().map(|r| r.get(0)).collect();
    if !ids.is_empty() {
        tx.execute("DELETE FROM job_errors WHERE job_id = ANY($1)", &[&ids])
            .map_err(err)?;
        tx.execute("DELETE FROM task_logs WHERE job_id = ANY($1)", &[&ids])
            .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(ids.len())
}

pub fn workers(c: &mut Conn, s: &PgSettings) -> Result<Vec<WorkerInfo>> {
    let rows = c
        .client
        .query(
            "SELECT worker_id, hostname, pid, queues, started_at, last_heartbeat, status \
             FROM workers ORDER BY started_at",
            &[],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .map(|r| WorkerInfo {
            worker_id: r.get(0),
            hostname: r.get(1),
            pid: r.get(2),
            queues: r.get(3),
            started_at: r.get(4),
            last_heartbeat: r.get(5),
            status: r.get(6),
        })
        .collect())
}
