//! Flow control in SQLite: per-task rate limits (a token bucket shared by every process on
//! the file) and concurrency caps, both enforced inside the claim transaction, and the
//! pending cap of a queue, enforced inside the enqueue transaction.
//!
//! A job whose task is out of tokens or at its cap is not ready: the claim steps over it
//! and it stays `pending` without holding a worker thread. Queues whose tasks have no limit
//! never come here (the store keeps the set of limited tasks in memory and takes the plain
//! claim when it is empty).

use std::collections::HashMap;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::sqlite::{claim_seqs, claimable_queues, SqliteStorage};
use super::{Storage, TaskFilter};
use crate::error::{Error, Result};
use crate::job::{ClaimedJob, WorkerKey};

/// How many ready rows of one queue a limited claim looks at, at most: jobs behind more
/// blocked jobs than this wait for those to start (give a big limited backlog its own queue).
const SCAN_MAX: i64 = 2048;

/// The limits of one task, as its worker registers them.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskLimit {
    pub task_name: String,
    /// `(count, period_ms)`: at most `count` starts per `period_ms`.
    pub rate: Option<(i64, i64)>,
    pub max_concurrent: Option<i64>,
}

/// Limited tasks by name.
pub type LimitMap = HashMap<String, TaskLimit>;

impl SqliteStorage {
    /// The limited tasks, read from the store on first use.
    pub(super) fn limits(&self) -> Result<Arc<LimitMap>> {
        if let Some(l) = self
            .limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            return Ok(l.clone());
        }
        self.reload_task_limits()?;
        Ok(self
            .limits
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default())
    }

    /// `claim` when some task has limits: the same indexed reads, stepping over jobs whose
    /// task cannot start now, and the tokens taken in the claim transaction.
    pub(super) fn claim_limited(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
        limits: &LimitMap,
        tasks: Option<TaskFilter<'_>>,
    ) -> Result<Vec<ClaimedJob>> {
        let peek = self.read(|conn| choose(conn, queues, 1, now, limits, tasks))?;
        self.limit_wake_at
            .store(peek.wake_at.unwrap_or(0), Ordering::Relaxed);
        if peek.seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let choice = choose(&tx, queues, limit, now, limits, tasks)?;
            consume(&tx, &choice, now)?;
            let claimed = claim_seqs(&tx, &choice.seqs, owner, now)?;
            tx.commit()?;
            Ok(claimed)
        })
    }
}

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
        let count: Option<i64> = r.get(1)?;
        let period: Option<i64> = r.get(2)?;
        Ok(TaskLimit {
            task_name: r.get(0)?,
            rate: count.zip(period).filter(|(c, p)| *c > 0 && *p > 0),
            max_concurrent: r.get(3)?,
        })
    })?;
    let mut map = LimitMap::new();
    for row in rows {
        let l = row?;
        if l.rate.is_some() || l.max_concurrent.is_some() {
            map.insert(l.task_name.clone(), l);
        }
    }
    Ok(map)
}

/// What a task may still start in this claim.
struct Budget {
    /// Tokens in the bucket now (it holds one at most: starts are spaced evenly, so no
    /// window of one period ever sees more than `count` of them).
    tokens: Option<f64>,
    /// Free slots under `max_concurrent`.
    slots: Option<i64>,
    taken: i64,
    /// When the next token is due, if the bucket is empty.
    refill_at: Option<i64>,
}

impl Budget {
    fn open(&self) -> bool {
        self.tokens.is_none_or(|t| t >= 1.0) && self.slots.is_none_or(|s| s > 0)
    }
    fn take(&mut self) {
        if let Some(t) = self.tokens.as_mut() {
            *t -= 1.0;
        }
        if let Some(s) = self.slots.as_mut() {
            *s -= 1;
        }
        self.taken += 1;
    }
}

fn budgets(conn: &Connection, limits: &LimitMap, now: i64) -> Result<HashMap<String, Budget>> {
    let mut out = HashMap::with_capacity(limits.len());
    for l in limits.values() {
        let mut b = Budget {
            tokens: None,
            slots: None,
            taken: 0,
            refill_at: None,
        };
        if let Some((count, period)) = l.rate {
            // A row removed since the limits were loaded counts as a full bucket.
            let (tokens, at): (f64, i64) = conn
                .prepare_cached("SELECT tokens, refilled_at FROM task_limits WHERE task_name = ?1")?
                .query_row(params![l.task_name], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .unwrap_or((1.0, 0));
            let per_ms = count as f64 / period as f64;
            let now_tokens = (tokens + (now - at).max(0) as f64 * per_ms).min(1.0);
            if now_tokens < 1.0 {
                b.refill_at = Some(now + ((1.0 - now_tokens) / per_ms).ceil() as i64);
            }
            b.tokens = Some(now_tokens);
        }
        if let Some(max) = l.max_concurrent {
            let running: i64 = conn
                .prepare_cached("SELECT count(*) FROM jobs WHERE status = 1 AND task_name = ?1")?
                .query_row(params![l.task_name], |r| r.get(0))?;
            b.slots = Some(max - running);
        }
        out.insert(l.task_name.clone(), b);
    }
    Ok(out)
}

/// A limited claim's choice: the seqs to claim, in claim order, and when a job skipped for
/// lack of a token gets one.
pub(super) struct Choice {
    pub seqs: Vec<i64>,
    pub wake_at: Option<i64>,
    budgets: HashMap<String, Budget>,
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
    let mut budgets = budgets(conn, limits, now)?;
    let mut stmt = conn.prepare_cached(
        "SELECT priority, scheduled_at, seq, task_name FROM jobs INDEXED BY jobs_ready \
         WHERE status = 0 AND queue = ?1 AND scheduled_at <= ?2 \
         ORDER BY priority DESC, scheduled_at, seq LIMIT ?3",
    )?;
    let mut found: Vec<(i64, i64, i64, String)> = Vec::new();
    let mut skipped_for_tokens = false;
    for q in queues.iter() {
        // Per queue, keep only what this claim could start; the merge below applies the
        // budgets again across queues.
        let mut local: HashMap<String, i64> = HashMap::new();
        let mut kept = 0;
        let mut rows = stmt.query(params![q, now, SCAN_MAX])?;
        while let Some(r) = rows.next()? {
            let task: String = r.get(3)?;
            let wanted = match tasks {
                None => true,
                Some(TaskFilter::Only(names)) => names.contains(&task),
                Some(TaskFilter::Except(names)) => !names.contains(&task),
            };
            if !wanted {
                continue;
            }
            if let Some(b) = budgets.get(&task) {
                let used = local.entry(task.clone()).or_insert(0);
                let room = budget_room(b);
                if *used >= room {
                    skipped_for_tokens |= b.tokens.is_some_and(|t| t < 1.0);
                    continue;
                }
                *used += 1;
            }
            found.push((r.get(0)?, r.get(1)?, r.get(2)?, task));
            kept += 1;
            if kept >= limit {
                break;
            }
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut seqs = Vec::with_capacity(limit.min(found.len()));
    for (_, _, seq, task) in found {
        if seqs.len() >= limit {
            break;
        }
        if let Some(b) = budgets.get_mut(&task) {
            if !b.open() {
                continue;
            }
            b.take();
        }
        seqs.push(seq);
    }
    let wake_at = if skipped_for_tokens {
        budgets
            .values()
            .filter(|b| b.tokens.is_some_and(|t| t < 1.0))
            .filter_map(|b| b.refill_at)
            .min()
    } else {
        None
    };
    Ok(Choice {
        seqs,
        wake_at,
        budgets,
    })
}

/// How many jobs of a task one claim may start (a bucket holds one token at most).
fn budget_room(b: &Budget) -> i64 {
    let by_tokens = b.tokens.map(|t| if t >= 1.0 { 1 } else { 0 });
    let by_slots = b.slots.map(|s| s.max(0));
    match (by_tokens, by_slots) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => i64::MAX,
    }
}

/// Takes the tokens of the jobs `choice` picked, inside the claim transaction.
pub(super) fn consume(conn: &Connection, choice: &Choice, now: i64) -> Result<()> {
    for (task, b) in &choice.budgets {
        if let (Some(tokens), true) = (b.tokens, b.taken > 0) {
            conn.prepare_cached(
                "UPDATE task_limits SET tokens = ?2, refilled_at = ?3 WHERE task_name = ?1",
            )?
            .execute(params![task, tokens.max(0.0), now])?;
        }
    }
    Ok(())
}

/// Fails with `QueueFull` if a queue of `queues` holds more than `max_pending` pending jobs
/// (ready, delayed or waiting for dependencies). Runs after the inserts, inside the enqueue
/// transaction, so concurrent producers cannot both pass a count taken before either
/// inserted.
pub(super) fn check_pending(conn: &Connection, queues: &[&str], max_pending: i64) -> Result<()> {
    let mut ready = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_ready \
         WHERE status = 0 AND queue = ?1 LIMIT ?2)",
    )?;
    let mut waiting = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM jobs INDEXED BY jobs_by_status \
         WHERE status = 6 AND queue = ?1 LIMIT ?2)",
    )?;
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
