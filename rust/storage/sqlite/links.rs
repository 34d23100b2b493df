//! Links between jobs: dependencies and canvas steps. Readiness is decided here, in the
//! transactions that store outcomes: a job with an unmet dependency is stored as `WAITING`,
//! a status the ready index does not cover, so the claim never sees it; the transaction that
//! completes its last parent promotes it to pending (a trigger, see schema.rs), and one that
//! fails or cancels a parent cancels it and, transitively, its own dependents.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::limits::check_pending;
use super::rows::{insert_job, next_seq, note_queue};
use crate::error::{Error, Result};
use crate::job::{Dep, JobLinks, JobStatus, NewJob, ParentResults, PassResult};
use crate::storage::ids::seq_of;
use crate::storage::rules::job_status;

/// Waiting for dependencies. Users see it as `pending` (`JobStatus::from_i64`).
pub const WAITING: i64 = 6;
const PENDING: i64 = JobStatus::Pending as i64;
const COMPLETE: i64 = JobStatus::Complete as i64;
const CANCELLED: i64 = JobStatus::Cancelled as i64;

fn status_name(status: i64) -> &'static str {
    JobStatus::from_i64(status).as_str()
}

/// A parent of a job being inserted: `(id, seq, status)`.
fn resolve(
    conn: &Connection,
    dep: &Dep,
    index: usize,
    ids: &[String],
) -> Result<(String, i64, i64)> {
    let id = dep.id_in_batch(index, ids)?;
    let seq = seq_of(&id);
    let status: Option<i64> = conn
        .prepare_cached("SELECT status FROM jobs WHERE seq = ?1 AND id = ?2")?
        .query_row(params![seq, id], |r| r.get(0))
        .optional()?;
    match status {
        Some(s) => Ok((id, seq, s)),
        None => Err(Error::NotFound { kind: "job", id }),
    }
}

/// Inserts jobs with their links in one transaction: every dependency is checked (a
/// missing one fails the whole batch, nothing stored), each job starts pending, waiting
/// or, if a parent already failed, cancelled. Returns the ids (for a `unique_key` already
/// held, the holder's id, and that job is left as it is). A queue of the batch named in
/// `max_pending` that would then hold more pending jobs than its bound fails the batch
/// with `QueueFull`.
pub fn enqueue_linked(
    conn: &mut Connection,
    jobs: &[NewJob],
    links: &[JobLinks],
    max_pending: &[(String, i64)],
    now: i64,
) -> Result<Vec<String>> {
    if jobs.len() != links.len() {
        return Err(Error::invalid("links", "one entry per job is needed"));
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in jobs {
        note_queue(&tx, &job.queue)?;
    }
    let mut next = next_seq(&tx)?;
    let mut ids: Vec<String> = Vec::with_capacity(jobs.len());
    for (i, (job, link)) in jobs.iter().zip(links).enumerate() {
        let parents = link
            .depends_on
            .iter()
            .map(|d| resolve(&tx, d, i, &ids))
            .collect::<Result<Vec<_>>>()?;
        let before = next;
        let id = insert_job(&tx, job, now, &mut next)?;
        if next != before {
            let seq = before;
            let failed = parents
                .iter()
                .find(|p| !matches!(p.2, PENDING | 1 | COMPLETE | WAITING));
            let (status, error, completed_at) = match failed {
                Some((pid, _, s)) => (
                    CANCELLED,
                    Some(format!("dependency {pid} ended {}", status_name(*s))),
                    Some(now),
                ),
                None if parents.iter().all(|p| p.2 == COMPLETE) => (PENDING, None, None),
                None => (WAITING, None, None),
            };
            tx.prepare_cached(
                "UPDATE jobs SET status = ?2, error = ?3, completed_at = ?4, notes = ?5, \
                 expires_at = ?6, pass_result = ?7 WHERE seq = ?1",
            )?
            .execute(params![
                seq,
                status,
                error,
                completed_at,
                link.notes,
                link.expires_at,
                link.pass_result as i64
            ])?;
            for (pid, pseq, _) in &parents {
                tx.prepare_cached(
                    "INSERT INTO job_dependencies (job_id, depends_on, job_seq, depends_on_seq) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, pid, seq, pseq])?;
                tx.prepare_cached("UPDATE jobs SET has_dependents = 1 WHERE seq = ?1")?
                    .execute(params![pseq])?;
            }
        }
        ids.push(id);
    }
    for (queue, bound) in max_pending {
        if jobs.iter().any(|j| &j.queue == queue) {
            // Dropping the transaction on error rolls every insert back.
            check_pending(&tx, &[queue.as_str()], *bound)?;
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// Called in the transaction that ended job `seq` as failed, dead or cancelled: cancels
/// its dependents that have not run, and theirs, transitively.
pub fn parent_failed(conn: &Connection, seq: i64, now: i64) -> Result<()> {
    let mut stack = vec![seq];
    while let Some(parent) = stack.pop() {
        let (pid, pstatus): (String, i64) = conn
            .prepare_cached("SELECT id, status FROM jobs WHERE seq = ?1")?
            .query_row(params![parent], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let error = format!("dependency {pid} ended {}", status_name(pstatus));
        let mut stmt = conn.prepare_cached(concat!(
            "UPDATE jobs SET status = ",
            job_status!(cancelled),
            ", completed_at = ?2, error = ?3 \
             WHERE seq IN (SELECT job_seq FROM job_dependencies WHERE depends_on_seq = ?1) \
             AND status IN (",
            job_status!(pending),
            ", ",
            job_status!(waiting),
            ") RETURNING seq, has_dependents"
        ))?;
        let rows = stmt.query_map(params![parent, now, error], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (child, has_dependents) = row?;
            if has_dependents != 0 {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// Runs the cascade for job `seq`, which just ended with `status` (a no-op for a job no
/// other job depends on: callers pass the row's `has_dependents`). Completion is handled
/// by the `jobs_promote_dependents` trigger (schema.rs), so it also costs the hot path
/// nothing.
pub fn after_outcome(
    conn: &Connection,
    seq: i64,
    status: i64,
    has_dependents: bool,
    now: i64,
) -> Result<()> {
    if !has_dependents {
        return Ok(());
    }
    match status {
        s if s == JobStatus::Failed as i64
            || s == JobStatus::Dead as i64
            || s == JobStatus::Cancelled as i64 =>
        {
            parent_failed(conn, seq, now)
        }
        _ => Ok(()),
    }
}

/// The stored results of job `seq`'s parents in dependency order, for a canvas step.
pub fn parent_results(conn: &Connection, seq: i64, mode: i64) -> Result<ParentResults> {
    let mut stmt = conn.prepare_cached(
        "SELECT p.result FROM job_dependencies d JOIN jobs p ON p.seq = d.depends_on_seq \
         WHERE d.job_seq = ?1 ORDER BY d.rowid",
    )?;
    let rows = stmt.query_map(params![seq], |r| r.get::<_, Option<Vec<u8>>>(0))?;
    Ok(ParentResults {
        mode: PassResult::from_i64(mode),
        results: rows.collect::<std::result::Result<_, _>>()?,
    })
}

/// `(dependencies, dependents)` of a job, as ids in dependency order.
pub fn links_of(conn: &Connection, id: &str) -> Result<(Vec<String>, Vec<String>)> {
    let seq = seq_of(id);
    let read = |sql: &str| -> Result<Vec<String>> {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![seq], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    };
    Ok((
        read("SELECT depends_on FROM job_dependencies WHERE job_seq = ?1 ORDER BY rowid")?,
        read("SELECT job_id FROM job_dependencies WHERE depends_on_seq = ?1 ORDER BY rowid")?,
    ))
}
