//! The worker registry on PostgreSQL, recovery of jobs whose worker died, and clean-up.
//! Staleness is judged by observers over the heartbeat counters (`liveness.rs`), so no
//! host's clock decides whether another host is alive; stored times come from the server.

use super::pool::{Conn, PgSettings};
use super::rows::{insert_error, now_ms_sql, write_dead_letter};
use crate::error::Result;
use crate::job::{WorkerBeat, WorkerInfo, WorkerKey};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;
use crate::storage::rules::recovery_note;

pub fn register_worker(c: &mut Conn, s: &PgSettings, w: &WorkerInfo) -> Result<()> {
    let err = |e| s.error(e);
    let mut tx = c.client.transaction().map_err(err)?;
    // Rows of earlier runs under this id that stopped cleanly say nothing any more; rows of
    // runs that died stay until their jobs are put back (recovery needs no row for that).
    tx.execute(
        "DELETE FROM workers WHERE worker_id = $1 AND incarnation <> $2 AND status = 'stopped'",
        &[&w.worker_id, &w.incarnation],
    )
    .map_err(err)?;
    tx.execute(
        concat!(
            "INSERT INTO workers (worker_id, incarnation, hostname, pid, queues, started_at, \
             last_heartbeat, status, beats) VALUES ($1, $2, $3, $4, $5, ",
            now_ms_sql!(),
            ", ",
            now_ms_sql!(),
            ", 'active', 0) \
             ON CONFLICT (worker_id, incarnation) DO UPDATE SET hostname = excluded.hostname, \
             pid = excluded.pid, queues = excluded.queues, started_at = excluded.started_at, \
             last_heartbeat = excluded.last_heartbeat, status = 'active', \
             beats = workers.beats + 1"
        ),
        &[&w.worker_id, &w.incarnation, &w.hostname, &w.pid, &w.queues],
    )
    .map_err(err)?;
    tx.commit().map_err(err)?;
    Ok(())
}

/// One heartbeat: the counter observers watch goes up by one; `last_heartbeat` (server
/// clock) is only shown. A row marked dead that beats again is live again; its old claims
/// were already fenced off by the recovery.
pub fn heartbeat(c: &mut Conn, s: &PgSettings, who: &WorkerKey, status: &str) -> Result<()> {
    let stmt = c
        .prepare(concat!(
            "UPDATE workers SET last_heartbeat = ",
            now_ms_sql!(),
            ", status = $3, beats = beats + 1 WHERE worker_id = $1 AND incarnation = $2"
        ))
        .map_err(|e| s.error(e))?;
    c.client
        .execute(&stmt, &[&who.worker_id, &who.incarnation, &status])
        .map_err(|e| s.error(e))?;
    Ok(())
}

pub fn deregister_worker(c: &mut Conn, s: &PgSettings, who: &WorkerKey) -> Result<()> {
    c.client
        .execute(
            concat!(
                "UPDATE workers SET status = 'stopped', last_heartbeat = ",
                now_ms_sql!(),
                " WHERE worker_id = $1 AND incarnation = $2"
            ),
            &[&who.worker_id, &who.incarnation],
        )
        .map_err(|e| s.error(e))?;
    Ok(())
}

pub fn worker_beats(c: &mut Conn, s: &PgSettings) -> Result<Vec<WorkerBeat>> {
    let stmt = c
        .prepare(
            "SELECT worker_id, incarnation, hostname, pid, beats FROM workers \
             WHERE status IN ('active', 'unhealthy')",
        )
        .map_err(|e| s.error(e))?;
    let rows = c.client.query(&stmt, &[]).map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .map(|r| WorkerBeat {
            key: WorkerKey::new(r.get::<_, String>(0), r.get(1)),
            hostname: r.get(2),
            pid: r.get(3),
            beats: r.get(4),
        })
        .collect())
}

/// Running jobs whose claiming incarnation has no live registry row. Rows written before
/// incarnations existed have incarnation 0 on both sides.
macro_rules! orphans_sql {
    () => {
        concat!(
            "FROM jobs WHERE status = ",
            job_status!(running),
            " AND NOT EXISTS (SELECT 1 FROM workers w \
         WHERE w.worker_id = jobs.owner AND w.incarnation = COALESCE(jobs.incarnation, 0) \
         AND w.status IN ('active', 'unhealthy'))"
        )
    };
}

/// Marks the incarnations of `dead` dead (fenced by their counters: one that beat since it
/// was read is left alone), then puts back every running job whose incarnation has no live
/// row; a job that lost its worker more than `MAX_RECOVERIES` times is dead-lettered. One
/// process puts jobs back at a time (a transaction-scoped advisory lock); the others skip.
pub fn recover_workers(c: &mut Conn, s: &PgSettings, dead: &[WorkerBeat]) -> Result<usize> {
    let err = |e| s.error(e);
    if dead.is_empty() {
        // Cheap read first: most checks find nothing and should take no lock.
        let probe = c
            .prepare(concat!("SELECT EXISTS (SELECT 1 ", orphans_sql!(), ")"))
            .map_err(err)?;
        let any: bool = c.client.query_one(&probe, &[]).map_err(err)?.get(0);
        if !any {
            return Ok(0);
        }
    }
    let mut tx = c.client.transaction().map_err(err)?;
    for w in dead {
        tx.execute(
            "UPDATE workers SET status = 'dead' WHERE worker_id = $1 AND incarnation = $2 \
             AND beats = $3 AND status IN ('active', 'unhealthy')",
            &[&w.key.worker_id, &w.key.incarnation, &w.beats],
        )
        .map_err(err)?;
    }
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(hashtext('taskito-recover:' || current_schema()))",
            &[],
        )
        .map_err(err)?
        .get(0);
    if !locked {
        tx.commit().map_err(err)?;
        return Ok(0);
    }
    // Only a run that started counts: a job claimed ahead that waited behind busy workers
    // did nothing to its worker. It starts eagerly from now on (see job.rs).
    let lost = tx
        .query(
            concat!(
                "UPDATE jobs SET \
                 recoveries = recoveries + CASE WHEN worker_id IS NULL THEN 0 ELSE 1 END, \
                 eager_start = eager_start OR worker_id IS NULL \
                 WHERE seq IN (SELECT seq ",
                orphans_sql!(),
                ") AND status = ",
                job_status!(running),
                " RETURNING id, owner, recoveries, worker_id IS NOT NULL"
            ),
            &[],
        )
        .map_err(err)?;
    for row in &lost {
        let id: String = row.get(0);
        let seq = seq_of(&id);
        let owner: Option<String> = row.get(1);
        let recoveries: i64 = row.get(2);
        let started: bool = row.get(3);
        let worker = owner.as_deref().unwrap_or("(unknown)");
        let (dead, note) = recovery_note(worker, recoveries, started);
        let attempt: i64 = tx
            .query_one("SELECT retry_count + 1 FROM jobs WHERE seq = $1", &[&seq])
            .map_err(err)?
            .get(0);
        insert_error(&mut tx, &id, attempt, &note, "").map_err(err)?;
        if dead {
            tx.execute(
                concat!(
                    "UPDATE jobs SET status = ",
                    job_status!(dead),
                    ", error = $2, completed_at = ",
                    now_ms_sql!(),
                    ", claim_token = NULL WHERE seq = $1 AND status = ",
                    job_status!(running)
                ),
                &[&seq, &note],
            )
            .map_err(err)?;
            write_dead_letter(&mut tx, &id, None).map_err(err)?;
        } else {
            tx.execute(
                concat!(
                    "UPDATE jobs SET status = ",
                    job_status!(pending),
                    ", owner = NULL, incarnation = NULL, \
                 claim_token = NULL, started_at = NULL, worker_id = NULL \
                 WHERE seq = $1 AND status = ",
                    job_status!(running)
                ),
                &[&seq],
            )
            .map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(lost.len())
}

pub fn workers(c: &mut Conn, s: &PgSettings) -> Result<Vec<WorkerInfo>> {
    let rows = c
        .client
        .query(
            "SELECT worker_id, hostname, pid, queues, started_at, last_heartbeat, status, \
             incarnation FROM workers ORDER BY started_at",
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
            incarnation: r.get(7),
        })
        .collect())
}
