//! Flow control in SQLite (the shared picker is `storage/picker.rs`): the buckets and running counts read inside the
//! claim transaction, which holds the file's write lock, so every process on the file
//! shares them; and the pending cap of a queue, enforced inside the enqueue transaction.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::pause::claimable_queues;
use super::rows::insert_jobs;
use crate::error::{Error, Result};
use crate::job::NewJob;
use crate::storage::rules::job_status;

use crate::storage::picker::{Budget, Choice, LimitMap, Picker, Ready, TaskLimit, SCAN_MAX};
use crate::storage::TaskFilter;

/// Stores this worker's limits; tasks of this worker without limits lose any stored ones.
/// A bucket keeps its tokens when its rate is registered again.
pub(super) fn register(
    conn: &mut Connection,
    limits: &[TaskLimit],
    unlimited: &[String],
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for l in limits {
        tx.prepare_cached(
            "INSERT INTO task_limits (task_name, rate_count, rate_period_ms, max_concurrent) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (task_name) DO UPDATE SET \
             rate_count = excluded.rate_count, rate_period_ms = excluded.rate_period_ms, \
             max_concurrent = excluded.max_concurrent",
        )?
        .execute(params![
            l.task_name,
            l.rate.map(|r| r.0),
            l.rate.map(|r| r.1),
            l.max_concurrent
        ])?;
    }
    for name in unlimited {
        tx.prepare_cached("DELETE FROM task_limits WHERE task_name = ?1")?
            .execute(params![name])?;
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn load(conn: &Connection) -> Result<LimitMap> {
    let mut stmt = conn.prepare_cached(
        "SELECT task_name, rate_count, rate_period_ms, max_concurrent FROM task_limits",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TaskLimit::from_stored(
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
        ))
    })?;
    let mut map = LimitMap::new();
    for l in rows {
        if let Some(l) = l? {
            map.insert(l.task_name.clone(), l);
        }
    }
    Ok(map)
}

fn budgets(conn: &Connection, limits: &LimitMap, now: i64) -> Result<HashMap<String, Budget>> {
    let mut out = HashMap::with_capacity(limits.len());
    for l in limits.values() {
        // A row removed since the limits were loaded counts as a full bucket.
        let bucket = match l.rate {
            Some(_) => conn
                .prepare_cached("SELECT tokens, refilled_at FROM task_limits WHERE task_name = ?1")?
                .query_row(params![l.task_name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
            None => None,
        };
        let running: i64 = match l.max_concurrent {
            Some(_) => conn
                .prepare_cached(concat!(
                    "SELECT count(*) FROM jobs WHERE status = ",
                    job_status!(running),
                    " AND task_name = ?1"
                ))?
                .query_row(params![l.task_name], |r| r.get(0))?,
            None => 0,
        };
        out.insert(l.task_name.clone(), Budget::new(l, bucket, running, now));
    }
    Ok(out)
}

/// Picks up to `limit` ready jobs, in the plain claim's order, stepping over jobs whose task
/// is out of tokens or slots (and, with `tasks`, jobs of other tasks). Reads only; `consume`
/// records the tokens taken.
pub(super) fn choose(
    conn: &Connection,
    queues: Option<&[String]>,
    limit: usize,
    now: i64,
    limits: &LimitMap,
    tasks: Option<TaskFilter<'_>>,
) -> Result<Choice> {
    let queues = claimable_queues(conn, queues)?;
    let mut picker = Picker::new(limit, budgets(conn, limits, now)?, tasks);
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT priority, scheduled_at, seq, task_name FROM jobs INDEXED BY jobs_ready \
         WHERE status = ",
        job_status!(pending),
        " AND queue = ?1 AND scheduled_at <= ?2 \
         ORDER BY priority DESC, scheduled_at, seq LIMIT ?3"
    ))?;
    for q in queues.iter() {
        picker.next_queue();
        let mut rows = stmt.query(params![q, now, SCAN_MAX])?;
        while let Some(r) = rows.next()? {
            let row = Ready {
                priority: r.get(0)?,
                scheduled_at: r.get(1)?,
                seq: r.get(2)?,
                task: r.get(3)?,
            };
            if !picker.offer(row) {
                break;
            }
        }
    }
    Ok(picker.finish())
}

/// Takes the tokens of the jobs `choice` picked, inside the claim transaction (which holds
/// the write lock, so every picked job is claimed).
pub(super) fn consume(conn: &Connection, choice: &Choice, now: i64) -> Result<()> {
    for (task, b) in &choice.budgets {
        if let (Some(tokens), true) = (b.tokens_after(b.taken()), b.taken() > 0) {
            conn.prepare_cached(
                "UPDATE task_limits SET tokens = ?2, refilled_at = ?3 WHERE task_name = ?1",
            )?
            .execute(params![task, tokens, now])?;
        }
    }
    Ok(())
}

/// Fails with `QueueFull` if a queue of `queues` holds more than `max_pending` pending jobs
/// (ready, delayed or waiting for dependencies). Runs after the inserts, inside the enqueue
/// transaction, so concurrent producers cannot both pass a count taken before either
/// inserted.
pub(super) fn check_pending(conn: &Connection, queues: &[&str], max_pending: i64) -> Result<()> {
    let mut ready = conn.prepare_cached(concat!(
        "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_ready \
         WHERE status = ",
        job_status!(pending),
        " AND queue = ?1 LIMIT ?2)"
    ))?;
    let mut waiting = conn.prepare_cached(concat!(
        "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_by_status \
         WHERE status = ",
        job_status!(waiting),
        " AND queue = ?1 LIMIT ?2)"
    ))?;
    for q in queues {
        let cap = max_pending.saturating_add(1);
        let mut n: i64 = ready.query_row(params![q, cap], |r| r.get(0))?;
        if n <= max_pending {
            n += waiting.query_row(params![q, cap - n], |r| r.get::<_, i64>(0))?;
        }
        if n > max_pending {
            return Err(Error::QueueFull {
                queue: q.to_string(),
                limit: max_pending,
            });
        }
    }
    Ok(())
}

/// `enqueue`, failing with `QueueFull` (and storing nothing) if a queue of `jobs` would then
/// hold more than `max_pending` pending jobs.
pub(super) fn enqueue_bounded(
    conn: &mut Connection,
    jobs: &[NewJob],
    max_pending: i64,
    now: i64,
) -> Result<Vec<String>> {
    let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = insert_jobs(&tx, jobs, now)?;
    // Dropping the transaction on error rolls every insert back.
    check_pending(&tx, &queues, max_pending)?;
    tx.commit()?;
    Ok(ids)
}
