//! The worker registry in SQLite: register, heartbeat, deregister, and the recovery of the
//! jobs of workers that stopped beating.

use rusqlite::{params, Connection, TransactionBehavior};

use super::links::after_outcome;
use super::rows::write_dead_letter;
use crate::error::Result;
use crate::job::{JobStatus, WorkerBeat, WorkerInfo, WorkerKey};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::rules::recovery_note;

pub fn register_worker(c: &mut Connection, w: &WorkerInfo) -> Result<()> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Rows of earlier runs under this id that stopped cleanly say nothing any more; rows of
    // runs that died stay until their jobs are put back (recovery needs no row for that).
    tx.prepare_cached(
        "DELETE FROM workers WHERE worker_id = ?1 AND incarnation != ?2 AND status = 'stopped'",
    )?
    .execute(params![w.worker_id, w.incarnation])?;
    tx.prepare_cached(
        "INSERT INTO workers (worker_id, incarnation, hostname, pid, queues, started_at, \
         last_heartbeat, status, beats) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', 0) \
         ON CONFLICT (worker_id, incarnation) DO UPDATE SET hostname = excluded.hostname, \
         pid = excluded.pid, queues = excluded.queues, started_at = excluded.started_at, \
         last_heartbeat = excluded.last_heartbeat, status = 'active', beats = beats + 1",
    )?
    .execute(params![
        w.worker_id,
        w.incarnation,
        w.hostname,
        w.pid,
        w.queues,
        w.started_at,
        w.last_heartbeat
    ])?;
    tx.commit()?;
    Ok(())
}

pub fn heartbeat(c: &Connection, who: &WorkerKey, status: &str, now: i64) -> Result<()> {
    // A worker presumed dead that comes back is alive again; its old claims were already
    // fenced off by the recovery.
    c.prepare_cached(
        "UPDATE workers SET last_heartbeat = ?3, status = ?4, beats = beats + 1 \
         WHERE worker_id = ?1 AND incarnation = ?2",
    )?
    .execute(params![who.worker_id, who.incarnation, now, status])?;
    Ok(())
}

pub fn deregister_worker(c: &Connection, who: &WorkerKey, now: i64) -> Result<()> {
    c.prepare_cached(
        "UPDATE workers SET status = 'stopped', last_heartbeat = ?3 \
         WHERE worker_id = ?1 AND incarnation = ?2",
    )?
    .execute(params![who.worker_id, who.incarnation, now])?;
    Ok(())
}

pub fn worker_beats(c: &Connection) -> Result<Vec<WorkerBeat>> {
    let mut stmt = c.prepare_cached(
        "SELECT worker_id, incarnation, hostname, pid, beats FROM workers \
         WHERE status IN ('active', 'unhealthy')",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(WorkerBeat {
            key: WorkerKey::new(r.get::<_, String>(0)?, r.get(1)?),
            hostname: r.get(2)?,
            pid: r.get(3)?,
            beats: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Running jobs whose claiming incarnation has no live registry row. Rows written before
/// incarnations existed have incarnation 0 on both sides.
const ORPHANS: &str = concat!(
    "FROM jobs WHERE status = ",
    job_status!(running),
    " AND NOT EXISTS (SELECT 1 FROM workers w \
    WHERE w.worker_id = jobs.owner AND w.incarnation = COALESCE(jobs.incarnation, 0) \
    AND w.status IN ('active', 'unhealthy'))"
);

pub fn recover_workers(c: &mut Connection, dead: &[WorkerBeat], now: i64) -> Result<usize> {
    if dead.is_empty() {
        // Cheap read first: most checks find nothing and should not take the write lock.
        let orphans: i64 = c
            .prepare_cached(&format!("SELECT COUNT(*) {ORPHANS}"))?
            .query_row([], |r| r.get(0))?;
        if orphans == 0 {
            return Ok(0);
        }
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for w in dead {
        // Fenced by the counter: a worker that beat since it was judged is not dead.
        tx.prepare_cached(
            "UPDATE workers SET status = 'dead' WHERE worker_id = ?1 AND incarnation = ?2 \
             AND beats = ?3 AND status IN ('active', 'unhealthy')",
        )?
        .execute(params![w.key.worker_id, w.key.incarnation, w.beats])?;
    }
    let lost: Vec<(String, Option<String>, bool)> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT id, owner, worker_id IS NOT NULL {ORPHANS}"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<std::result::Result<_, _>>()?
    };
    for (id, owner, started) in &lost {
        let seq = seq_of(id);
        let worker = owner.as_deref().unwrap_or("(unknown)");
        // Only a run that started counts: a job claimed ahead that waited behind busy
        // workers did nothing to its worker. It starts eagerly from now on (see job.rs).
        let recoveries: i64 = tx
            .prepare_cached(
                "UPDATE jobs SET recoveries = recoveries + ?2, eager_start = eager_start | ?3 \
                 WHERE seq = ?1 RETURNING recoveries",
            )?
            .query_row(
                params![seq, i64::from(*started), i64::from(!started)],
                |r| r.get(0),
            )?;
        let (dead, note) = recovery_note(worker, recoveries, *started);
        tx.prepare_cached(
            "INSERT INTO job_errors (job_id, attempt, error, traceback, failed_at) \
             SELECT id, retry_count + 1, ?2, '', ?3 FROM jobs WHERE seq = ?1",
        )?
        .execute(params![seq, note, now])?;
        if dead {
            tx.prepare_cached(concat!(
                "UPDATE jobs SET status = ",
                job_status!(dead),
                ", error = ?2, completed_at = ?3, claim_token = NULL \
                 WHERE seq = ?1 AND status = ",
                job_status!(running)
            ))?
            .execute(params![seq, note, now])?;
            write_dead_letter(&tx, seq, None, now)?;
            after_outcome(&tx, seq, JobStatus::Dead as i64, true, now)?;
        } else {
            tx.prepare_cached(concat!(
                "UPDATE jobs SET status = ",
                job_status!(pending),
                ", owner = NULL, incarnation = NULL, \
                 claim_token = NULL, started_at = NULL, worker_id = NULL \
                 WHERE seq = ?1 AND status = ",
                job_status!(running)
            ))?
            .execute(params![seq])?;
        }
    }
    tx.commit()?;
    Ok(lost.len())
}

pub fn workers(c: &Connection) -> Result<Vec<WorkerInfo>> {
    let mut stmt = c.prepare_cached(
        "SELECT worker_id, hostname, pid, queues, started_at, last_heartbeat, status, \
         incarnation FROM workers ORDER BY started_at",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(WorkerInfo {
            worker_id: r.get(0)?,
            hostname: r.get(1)?,
            pid: r.get(2)?,
            queues: r.get(3)?,
            started_at: r.get(4)?,
            last_heartbeat: r.get(5)?,
            status: r.get(6)?,
            incarnation: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}
