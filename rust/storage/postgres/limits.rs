//! Rate limits and concurrency caps on PostgreSQL (the choice itself is `storage/limits.rs`,
//! shared with SQLite). Each limited task has a row in `task_limits` holding its bucket; a
//! claim that would start jobs of limited tasks locks those rows (`FOR UPDATE`, in name
//! order), reads the buckets and running counts again under the lock, and writes the tokens
//! it took before committing. So every process on every host sharing the server takes turns
//! on a task's bucket and sees the starts of the one before it, while claims that meet no
//! limited job lock nothing and stay concurrent.
//!
//! Time is the server's: `clock_timestamp()` read after the lock, not the transaction's
//! start, since a claim may wait on the lock; the same instant is the jobs' `started_at`.

use postgres::{Statement, Transaction};

use super::bounds::{check_pending, lock_pending};
use super::links::with_parents;
use super::pool::{Conn, PgSettings};
use super::rows::{claimed_columns, claimed_rows, enqueue_in, enqueue_statement};
use crate::error::Result;
use crate::job::{now_ms, ClaimedJob, NewJob, WorkerKey};
use crate::storage::picker::{Budget, LimitMap, Picker, Ready, TaskLimit, SCAN_MAX};
use crate::storage::rules::job_status;
use crate::storage::TaskFilter;

/// The server's clock now (epoch ms), not the transaction's start.
macro_rules! clock_ms_sql {
    () => {
        "(extract(epoch from clock_timestamp()) * 1000)::bigint"
    };
}

/// The served queues (`$1`, or every known queue when null) that are not paused.
const CLAIMABLE_QUEUES: &str = "SELECT name FROM unnest(coalesce($1::text[], \
     ARRAY(SELECT name FROM queues))) AS u(name) \
     WHERE name NOT IN (SELECT name FROM paused_queues)";

/// The clock, then per task of `$1`: its bucket (null without a row: a full bucket) and,
/// for the tasks of `$2`, its running jobs (few rows: the status index's `running` range).
const BUDGETS: &str = concat!(
    "SELECT ",
    clock_ms_sql!(),
    ", n.name, b.tokens, b.refilled_at, \
       CASE WHEN n.name = ANY($2::text[]) THEN \
         (SELECT count(*) FROM jobs WHERE status = ",
    job_status!(running),
    " AND task_name = n.name) ELSE 0 END \
     FROM (SELECT 1) AS one LEFT JOIN (unnest($1::text[]) AS n(name) \
       LEFT JOIN task_limits AS b ON b.task_name = n.name) ON true"
);

/// Takes the bucket rows of the tasks a claim is about to start, in name order so that
/// claimers of overlapping task sets never wait on each other in a cycle.
const LOCK: &str = "SELECT task_name FROM task_limits WHERE task_name = ANY($1::text[]) \
     ORDER BY task_name FOR UPDATE";

/// One queue's ready rows in the plain claim's order (the `jobs_ready` index), read in
/// chunks until the picker has enough.
const READY: &str = concat!(
    "SELECT priority, scheduled_at, seq, task_name FROM jobs \
     WHERE status = ",
    job_status!(pending),
    " AND queue = $1 AND scheduled_at <= $2 \
     ORDER BY priority DESC, scheduled_at, seq LIMIT $3"
);

/// Claims the chosen rows, stepping over any another claimer holds or took meanwhile, and
/// any past its expiry time (left pending for the expiry sweep, which cancels it). A started
/// job can no longer expire: its expiry time is kept, negated, for replay.
const CLAIM: &str = concat!(
    "WITH picked AS MATERIALIZED ( \
       SELECT seq FROM jobs WHERE seq = ANY($1::bigint[]) AND status = ",
    job_status!(pending),
    " \
         AND scheduled_at <= $5 AND NOT coalesce(expires_at > 0 AND expires_at <= $5, false) \
         FOR UPDATE SKIP LOCKED) \
     UPDATE jobs AS j SET status = ",
    job_status!(running),
    ", owner = $2, claim_token = $3, started_at = $5, \
       worker_id = NULL, incarnation = $4, expires_at = -abs(j.expires_at) \
     FROM picked WHERE j.seq = picked.seq AND j.status = ",
    job_status!(pending),
    " RETURNING ",
    claimed_columns!()
);

const CONSUME: &str = "UPDATE task_limits AS t SET tokens = u.tokens, refilled_at = $3 \
     FROM unnest($1::text[], $2::float8[]) AS u(name, tokens) WHERE t.task_name = u.name";

/// Stores this worker's limits; tasks of this worker without limits lose any stored ones.
/// A bucket keeps its tokens when its rate is registered again.
pub fn register(
    c: &mut Conn,
    s: &PgSettings,
    limits: &[TaskLimit],
    unlimited: &[String],
) -> Result<()> {
    let err = |e| s.error(e);
    let mut names: Vec<&str> = limits.iter().map(|l| l.task_name.as_str()).collect();
    names.extend(unlimited.iter().map(String::as_str));
    names.sort_unstable();
    let mut tx = c.client.transaction().map_err(err)?;
    // Every row this touches, locked first in name order as claims lock them, so a worker
    // starting beside busy claimers never waits on them in a cycle.
    tx.query(LOCK, &[&names]).map_err(err)?;
    for l in limits {
        tx.execute(
            "INSERT INTO task_limits (task_name, rate_count, rate_period_ms, max_concurrent) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (task_name) DO UPDATE SET \
             rate_count = excluded.rate_count, rate_period_ms = excluded.rate_period_ms, \
             max_concurrent = excluded.max_concurrent",
            &[
                &l.task_name,
                &l.rate.map(|r| r.0),
                &l.rate.map(|r| r.1),
                &l.max_concurrent,
            ],
        )
        .map_err(err)?;
    }
    if !unlimited.is_empty() {
        tx.execute(
            "DELETE FROM task_limits WHERE task_name = ANY($1::text[])",
            &[&unlimited],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(())
}

/// Every stored limit.
pub fn load(c: &mut Conn, s: &PgSettings) -> Result<LimitMap> {
    let rows = c
        .client
        .query(
            "SELECT task_name, rate_count, rate_period_ms, max_concurrent FROM task_limits",
            &[],
        )
        .map_err(|e| s.error(e))?;
    Ok(rows
        .iter()
        .filter_map(|r| TaskLimit::from_stored(r.get(0), r.get(1), r.get(2), r.get(3)))
        .map(|l| (l.task_name.clone(), l))
        .collect())
}

/// What a limited claim took, and when a job it stepped over for lack of a token gets one
/// (on this process's clock).
pub struct LimitedClaim {
    pub jobs: Vec<ClaimedJob>,
    pub wake_at: Option<i64>,
}

/// `claim` when some task has limits: the ready rows of each queue in claim order, jobs
/// whose task cannot start now stepped over, the limited tasks' buckets locked and read
/// again before the choice is final, and the tokens taken in the same transaction.
#[allow(clippy::too_many_arguments)]
pub fn claim(
    c: &mut Conn,
    s: &PgSettings,
    queues: Option<&[String]>,
    owner: &WorkerKey,
    limit: usize,
    token: i64,
    limits: &LimitMap,
    tasks: Option<TaskFilter<'_>>,
) -> Result<LimitedClaim> {
    let err = |e| s.error(e);
    // Before the server's clock is read for `started_at`: the wait a worker measures from
    // it is never shorter than the one `cancel` judges by.
    let sent = std::time::Instant::now();
    let claimable = c.prepare(CLAIMABLE_QUEUES).map_err(err)?;
    let budgets = c.prepare(BUDGETS).map_err(err)?;
    let lock = c.prepare(LOCK).map_err(err)?;
    let ready = c.prepare(READY).map_err(err)?;
    let claim = c.prepare(CLAIM).map_err(err)?;
    let consume = c.prepare(CONSUME).map_err(err)?;
    let mut names: Vec<String> = limits.keys().cloned().collect();
    names.sort_unstable();

    let mut tx = c.client.transaction().map_err(err)?;
    let served: Vec<String> = tx
        .query(&claimable, &[&queues])
        .map_err(err)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // A first look without locks decides which rows are candidates.
    let (now, estimate) = read_budgets(&mut tx, &budgets, limits, &names).map_err(err)?;
    let mut picker = Picker::new(limit, estimate.budgets, tasks);
    scan(&mut tx, &ready, &served, now, limit, &mut picker).map_err(err)?;
    // Then the buckets of the limited tasks among them, under their locks: the figures
    // another claimer left when it committed.
    let involved = picker.limited_tasks();
    let mut at = (now, estimate.local_now);
    if !involved.is_empty() {
        tx.query(&lock, &[&involved]).map_err(err)?;
        let (now, locked) = read_budgets(&mut tx, &budgets, limits, &involved).map_err(err)?;
        for (task, budget) in locked.budgets {
            picker.set_budget(task, budget);
        }
        at = (now, locked.local_now);
    }
    let (now, local_now) = at;
    let choice = picker.finish();
    // The server's instant of the refill, as an instant on this process's clock.
    let wake_at = choice.wake_at.map(|t| local_now + (t - now) + 1);
    if choice.seqs.is_empty() {
        tx.commit().map_err(err)?;
        return Ok(LimitedClaim {
            jobs: Vec::new(),
            wake_at,
        });
    }
    let rows = tx
        .query(
            &claim,
            &[
                &choice.seqs,
                &owner.worker_id,
                &token,
                &owner.incarnation,
                &now,
            ],
        )
        .map_err(err)?;
    let jobs = claimed_rows(rows.iter(), token, Some(sent));
    // Canvas steps read their parents' results in the same transaction.
    let jobs = with_parents(&mut tx, s, jobs)?;
    // Tokens for the jobs claimed, which may be fewer than chosen.
    let (mut spent, mut left): (Vec<&str>, Vec<f64>) = (Vec::new(), Vec::new());
    for (task, budget) in &choice.budgets {
        let started = jobs.iter().filter(|j| &j.task_name == task).count() as i64;
        if let (true, Some(tokens)) = (started > 0, budget.tokens_after(started)) {
            spent.push(task);
            left.push(tokens);
        }
    }
    if !spent.is_empty() {
        tx.execute(&consume, &[&spent, &left, &now]).map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(LimitedClaim { jobs, wake_at })
}

/// Offers the ready rows of each served queue to `picker`, in claim order and a chunk at a
/// time, until it has enough of that queue or the queue has no more.
fn scan(
    tx: &mut Transaction<'_>,
    ready: &Statement,
    served: &[String],
    now: i64,
    limit: usize,
    picker: &mut Picker<'_>,
) -> std::result::Result<(), postgres::Error> {
    let chunk = (limit as i64 + 16).min(SCAN_MAX) as i32;
    for q in served {
        picker.next_queue();
        let portal = tx.bind(ready, &[q, &now, &SCAN_MAX])?;
        'rows: loop {
            let rows = tx.query_portal(&portal, chunk)?;
            for r in &rows {
                let row = Ready {
                    priority: r.get(0),
                    scheduled_at: r.get(1),
                    seq: r.get(2),
                    task: r.get(3),
                };
                if !picker.offer(row) {
                    break 'rows;
                }
            }
            if rows.len() < chunk as usize {
                break;
            }
        }
    }
    Ok(())
}

struct Budgets {
    budgets: std::collections::HashMap<String, Budget>,
    /// This process's clock when the server's was read.
    local_now: i64,
}

/// The server's clock and the budgets of `names` at that instant.
fn read_budgets(
    tx: &mut Transaction<'_>,
    stmt: &Statement,
    limits: &LimitMap,
    names: &[String],
) -> std::result::Result<(i64, Budgets), postgres::Error> {
    let capped: Vec<&str> = names
        .iter()
        .filter(|n| limits.get(*n).is_some_and(|l| l.max_concurrent.is_some()))
        .map(String::as_str)
        .collect();
    let rows = tx.query(stmt, &[&names, &capped])?;
    let local_now = now_ms();
    let now: i64 = rows.first().map_or(0, |r| r.get(0));
    let mut budgets = std::collections::HashMap::with_capacity(names.len());
    for r in &rows {
        let Some(name) = r.get::<_, Option<String>>(1) else {
            continue;
        };
        let Some(limit) = limits.get(&name) else {
            continue;
        };
        let tokens: Option<f64> = r.get(2);
        let bucket = tokens.zip(r.get::<_, Option<i64>>(3));
        budgets.insert(name, Budget::new(limit, bucket, r.get(4), now));
    }
    Ok((now, Budgets { budgets, local_now }))
}

/// `enqueue`, failing with `QueueFull` (and storing nothing) if a queue of `jobs` would then
/// hold more than `max_pending` pending jobs (see `check_pending`).
pub fn enqueue_bounded(
    conn: &mut Conn,
    settings: &PgSettings,
    jobs: &[NewJob],
    client_now: i64,
    notify: Option<&str>,
    max_pending: i64,
) -> Result<Vec<String>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let err = |e| settings.error(e);
    let mut bounds: Vec<(&str, i64)> = jobs
        .iter()
        .map(|j| (j.queue.as_str(), max_pending))
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let stmt = enqueue_statement(conn, settings)?;
    let mut tx = conn.client.transaction().map_err(err)?;
    lock_pending(&mut tx, settings, &bounds)?;
    let ids = enqueue_in(&mut tx, &stmt, settings, jobs, client_now, notify)?;
    // Dropping the transaction on error rolls every insert (and its notification) back.
    check_pending(&mut tx, settings, &bounds)?;
    tx.commit().map_err(err)?;
    Ok(ids)
}
