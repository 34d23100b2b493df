//! The hot path in SQLite: enqueue, claim (plain, filtered, limited, by id) and the batched
//! writes of the result handler that end a claim, fenced by its token.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::links::after_outcome;
use super::rows::{insert_error, insert_jobs, new_token, write_dead_letter};
use super::store::SqliteStorage;
use super::{job_control, limits, links, pause};
use crate::error::Result;
use crate::job::{ClaimedJob, NewJob, WorkerKey};
use crate::storage::ids::seq_of;
use crate::storage::picker::LimitMap;
use crate::storage::rules::job_status;
use crate::storage::rules::{SQL_PENDING, SQL_RUNNING};
use crate::storage::{TaskFilter, Write};

pub(super) const CLAIM_COLUMNS: &str = "id, task_name, queue, payload, retry_count, max_retries, \
    retry_backoff, timeout_ms, expires_at, pass_result, eager_start";

/// `tasks` restricts the task names (one cached statement per filter shape and size).
pub(super) fn ready_seqs(
    conn: &Connection,
    queues: Option<&[String]>,
    limit: usize,
    now: i64,
    tasks: Option<TaskFilter<'_>>,
) -> Result<Vec<i64>> {
    let queues = pause::claimable_queues(conn, queues)?;
    // One indexed range per queue, merged here: each read is O(log n + limit) whatever the
    // backlog. INDEXED BY pins the plan: the planner would otherwise pick the status index
    // and sort the whole backlog on every claim.
    const READY: &str = concat!(
        "SELECT priority, scheduled_at, seq FROM jobs INDEXED BY jobs_ready \
         WHERE status = ",
        job_status!(pending),
        " AND queue = ?1 AND scheduled_at <= ?2 \
         ORDER BY priority DESC, scheduled_at, seq LIMIT ?3"
    );
    let (names, sql) = match tasks {
        None => (&[][..], std::borrow::Cow::Borrowed(READY)),
        Some(f) => {
            let (names, op) = match f {
                TaskFilter::Only(n) => (n, "IN"),
                TaskFilter::Except(n) => (n, "NOT IN"),
            };
            let marks: Vec<String> = (0..names.len()).map(|i| format!("?{}", i + 4)).collect();
            let sql = READY.replace(
                "scheduled_at <= ?2",
                &format!(
                    "scheduled_at <= ?2 AND task_name {op} ({})",
                    marks.join(",")
                ),
            );
            (names, std::borrow::Cow::Owned(sql))
        }
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let lim = limit as i64;
    let mut found: Vec<(i64, i64, i64)> = Vec::new();
    for q in queues.iter() {
        let mut bound: Vec<&dyn rusqlite::ToSql> = vec![q, &now, &lim];
        bound.extend(names.iter().map(|n| n as &dyn rusqlite::ToSql));
        let rows = stmt.query_map(bound.as_slice(), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        for row in rows {
            found.push(row?);
        }
    }
    found.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    Ok(found
        .into_iter()
        .take(limit)
        .map(|(_, _, seq)| seq)
        .collect())
}

/// The earliest `scheduled_at` after `now` among pending jobs of `queues`. The ready index
/// is ordered by priority first, so this walks the distinct priorities of each queue (few,
/// in practice) and takes the first future entry of each: O(priorities * log n), never a
/// scan of the delayed jobs.
pub(super) fn next_due(
    conn: &Connection,
    queues: Option<&[String]>,
    now: i64,
) -> Result<Option<i64>> {
    let all: Vec<String>;
    let queues = match queues {
        Some(q) => q,
        None => {
            let mut stmt = conn.prepare_cached("SELECT name FROM queues")?;
            let names = stmt.query_map([], |r| r.get(0))?;
            all = names.collect::<std::result::Result<_, _>>()?;
            &all
        }
    };
    let mut next_priority = conn.prepare_cached(concat!(
        "SELECT priority FROM jobs INDEXED BY jobs_ready \
         WHERE status = ",
        job_status!(pending),
        " AND queue = ?1 AND priority < ?2 \
         ORDER BY priority DESC LIMIT 1"
    ))?;
    let mut first_due = conn.prepare_cached(concat!(
        "SELECT scheduled_at FROM jobs INDEXED BY jobs_ready \
         WHERE status = ",
        job_status!(pending),
        " AND queue = ?1 AND priority = ?2 AND scheduled_at > ?3 \
         ORDER BY scheduled_at LIMIT 1"
    ))?;
    let mut earliest: Option<i64> = None;
    for q in queues {
        let mut below = i64::MAX;
        // Bounded: a queue with thousands of distinct priorities is left to the poll.
        for _ in 0..64 {
            let Some(p) = next_priority
                .query_row(params![q, below], |r| r.get::<_, i64>(0))
                .optional()?
            else {
                break;
            };
            if let Some(at) = first_due
                .query_row(params![q, p, now], |r| r.get::<_, i64>(0))
                .optional()?
            {
                earliest = Some(earliest.map_or(at, |e: i64| e.min(at)));
            }
            if p == i64::MIN {
                break;
            }
            below = p;
        }
    }
    Ok(earliest)
}

/// `now`: the claim's time (stored as `started_at`); `claimed_at` is dated back to it, so
/// the wait a worker measures is never shorter than the one `cancel` judges by.
pub(super) fn claim_row(
    r: &rusqlite::Row<'_>,
    token: i64,
    now: i64,
) -> rusqlite::Result<ClaimedJob> {
    let since = std::time::Duration::from_millis((crate::job::now_ms() - now).max(0) as u64);
    Ok(ClaimedJob {
        id: r.get(0)?,
        task_name: r.get(1)?,
        queue: r.get(2)?,
        payload: r.get(3)?,
        retry_count: r.get(4)?,
        max_retries: r.get(5)?,
        retry_backoff: r.get(6)?,
        timeout_ms: r.get(7)?,
        claim_token: token,
        parents: None,
        claimed_at: std::time::Instant::now()
            .checked_sub(since)
            .unwrap_or_else(std::time::Instant::now),
        eager_start: r.get::<_, i64>(10)? != 0,
    })
}

/// Claims the jobs `seqs` (still pending) for `owner`, in order, inside the caller's
/// transaction.
pub(super) fn claim_seqs(
    conn: &Connection,
    seqs: &[i64],
    owner: &WorkerKey,
    now: i64,
) -> Result<Vec<ClaimedJob>> {
    let mut claimed = Vec::with_capacity(seqs.len());
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE jobs SET status = {SQL_RUNNING}, owner = ?2, claim_token = ?3, started_at = ?4, \
         worker_id = NULL, incarnation = ?5 WHERE seq = ?1 AND status = {SQL_PENDING} \
         RETURNING {CLAIM_COLUMNS}"
    ))?;
    for &seq in seqs {
        let token = new_token();
        let mut rows = stmt.query(params![seq, owner.worker_id, token, now, owner.incarnation])?;
        let Some(row) = rows.next()? else { continue };
        let (job, extras) = (claim_row(row, token, now)?, claim_extras(row)?);
        drop(rows);
        // An expired job is cancelled here instead of handed out.
        if let Some(job) = finish_claim(conn, job, extras, true, now)? {
            claimed.push(job);
        }
    }
    Ok(claimed)
}

/// What a claimed row needs besides `ClaimedJob`: its expiry and how it takes its
/// parents' results (columns 8 and 9 of `CLAIM_COLUMNS`).
pub(super) fn claim_extras(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Option<i64>, i64)> {
    Ok((r.get(8)?, r.get(9)?))
}

/// Finishes a claimed row: an expired one is cancelled instead of handed out (`None`); a
/// canvas step gets its parents' results.
pub(super) fn finish_claim(
    conn: &Connection,
    mut job: ClaimedJob,
    (expires_at, pass_result): (Option<i64>, i64),
    check_expiry: bool,
    now: i64,
) -> Result<Option<ClaimedJob>> {
    let seq = seq_of(&job.id);
    if let Some(at) = expires_at.filter(|e| *e > 0) {
        if check_expiry && at <= now {
            job_control::expire(conn, seq, now)?;
            return Ok(None);
        }
        job_control::started(conn, seq)?;
    }
    if pass_result != 0 {
        job.parents = Some(links::parent_results(conn, seq, pass_result)?);
    }
    Ok(Some(job))
}

/// Applies one write, fenced: it changes the job only while `(seq, claim_token)` still
/// identify the claim it ends.
pub(super) fn apply(conn: &Connection, write: &Write, now: i64) -> Result<bool> {
    let changed = match write {
        Write::Started {
            id,
            token,
            thread_id,
        } => {
            conn.prepare_cached(concat!(
                "UPDATE jobs SET worker_id = ?3 WHERE seq = ?1 AND claim_token = ?2 AND status = ",
                job_status!(running)
            ))?
            .execute(params![seq_of(id), token, thread_id])?;
            return Ok(false);
        }
        Write::Complete {
            id,
            token,
            thread_id,
            result,
        } => conn
            .prepare_cached(concat!(
                "UPDATE jobs SET status = ",
                job_status!(complete),
                ", result = ?3, completed_at = ?4, worker_id = ?5, \
                 error = NULL, claim_token = NULL \
                 WHERE seq = ?1 AND claim_token = ?2 AND status = ",
                job_status!(running)
            ))?
            .execute(params![seq_of(id), token, result, now, thread_id])?,
        Write::Retry {
            id,
            token,
            thread_id,
            error,
            traceback,
            run_at,
            counted,
        } => {
            if job_control::finish_cancelled(conn, id, *token, error, thread_id, now)? {
                return Ok(true);
            }
            let n = conn
                .prepare_cached(concat!(
                    "UPDATE jobs SET status = ",
                    job_status!(pending),
                    ", scheduled_at = ?3, error = ?4, worker_id = ?5, \
                     owner = NULL, claim_token = NULL, started_at = NULL \
                     WHERE seq = ?1 AND claim_token = ?2 AND status = ",
                    job_status!(running)
                ))?
                .execute(params![seq_of(id), token, run_at, error, thread_id])?;
            // A run put off before it started (`counted` false) uses no retry and leaves
            // no error in the history.
            if n > 0 && *counted {
                insert_error(conn, seq_of(id), error, traceback, now)?;
                conn.prepare_cached(
                    "UPDATE jobs SET retry_count = retry_count + 1 WHERE seq = ?1",
                )?
                .execute(params![seq_of(id)])?;
            }
            n
        }
        Write::Fail {
            id,
            token,
            thread_id,
            error,
            traceback,
            status,
            dead_metadata,
        } => {
            if job_control::finish_cancelled(conn, id, *token, error, thread_id, now)? {
                return Ok(true);
            }
            let done: Option<i64> = conn
                .prepare_cached(concat!(
                    "UPDATE jobs SET status = ?3, error = ?4, completed_at = ?5, \
                         worker_id = ?6, claim_token = NULL \
                         WHERE seq = ?1 AND claim_token = ?2 AND status = ",
                    job_status!(running),
                    " \
                         RETURNING has_dependents"
                ))?
                .query_row(
                    params![seq_of(id), token, *status as i64, error, now, thread_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(has_dependents) = done {
                insert_error(conn, seq_of(id), error, traceback, now)?;
                write_dead_letter(conn, seq_of(id), dead_metadata.as_deref(), now)?;
                after_outcome(conn, seq_of(id), *status as i64, has_dependents != 0, now)?;
            }
            usize::from(done.is_some())
        }
        Write::Requeue { id, token } => conn
            .prepare_cached(concat!(
                "UPDATE jobs SET status = ",
                job_status!(pending),
                ", owner = NULL, claim_token = NULL, \
                 started_at = NULL, worker_id = NULL \
                 WHERE seq = ?1 AND claim_token = ?2 AND status = ",
                job_status!(running)
            ))?
            .execute(params![seq_of(id), token])?,
    };
    Ok(changed > 0)
}

impl SqliteStorage {
    /// Claims ready jobs, optionally only of some task names.
    pub(super) fn claim_where(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
        tasks: Option<TaskFilter<'_>>,
    ) -> Result<Vec<ClaimedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let limits = self.limits.get(|| self.read(|c| limits::load(c)))?;
        if !limits.is_empty() {
            return self.claim_limited(queues, owner, limit, now, &limits, tasks);
        }
        // Look first without the write lock: an idle poll costs one indexed read.
        if self
            .read(|conn| ready_seqs(conn, queues, 1, now, tasks))?
            .is_empty()
        {
            return Ok(Vec::new());
        }
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut claimed = Vec::with_capacity(limit);
            // Expired jobs are cancelled, not handed out: look again for the slots they
            // took (they have left the ready index now).
            while claimed.len() < limit {
                let seqs = ready_seqs(&tx, queues, limit - claimed.len(), now, tasks)?;
                let got = claim_seqs(&tx, &seqs, owner, now)?;
                let short = got.len() < seqs.len();
                claimed.extend(got);
                if !short {
                    break;
                }
            }
            tx.commit()?;
            Ok(claimed)
        })
    }
}

impl SqliteStorage {
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
        let peek = self.read(|conn| limits::choose(conn, queues, 1, now, limits, tasks))?;
        self.limits.set_wake_at(peek.wake_at);
        if peek.seqs.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let choice = limits::choose(&tx, queues, limit, now, limits, tasks)?;
            limits::consume(&tx, &choice, now)?;
            let claimed = claim_seqs(&tx, &choice.seqs, owner, now)?;
            tx.commit()?;
            Ok(claimed)
        })
    }
}

/// Inserts `jobs` in one write transaction; returns their ids.
pub(super) fn enqueue(conn: &mut Connection, jobs: &[NewJob], now: i64) -> Result<Vec<String>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = insert_jobs(&tx, jobs, now)?;
    tx.commit()?;
    Ok(ids)
}

/// Claims one job by id whatever its status and schedule, unless it is running.
pub(super) fn claim_by_id(
    conn: &mut Connection,
    id: &str,
    owner: &WorkerKey,
    now: i64,
) -> Result<Option<ClaimedJob>> {
    let token = new_token();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let job = tx
        .prepare_cached(&format!(
            "UPDATE jobs SET status = {SQL_RUNNING}, owner = ?2, claim_token = ?3, started_at = ?4, \
             completed_at = NULL, worker_id = NULL, incarnation = ?6 \
             WHERE seq = ?5 AND id = ?1 AND status != {SQL_RUNNING} RETURNING {CLAIM_COLUMNS}"
        ))?
        .query_row(
            params![
                id,
                owner.worker_id,
                token,
                now,
                seq_of(id),
                owner.incarnation
            ],
            |r| Ok((claim_row(r, token, now)?, claim_extras(r)?)),
        )
        .optional()?;
    let job = match job {
        Some((job, extras)) => finish_claim(&tx, job, extras, false, now)?,
        None => None,
    };
    tx.commit()?;
    Ok(job)
}

/// Records the thread a claimed job starts on, fenced by its claim token.
pub(super) fn record_start(
    conn: &Connection,
    id: &str,
    token: i64,
    thread_id: &str,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(concat!(
            "UPDATE jobs SET worker_id = ?3 \
             WHERE seq = ?1 AND claim_token = ?2 AND status = ",
            job_status!(running)
        ))?
        .execute(params![seq_of(id), token, thread_id])?
        > 0)
}

/// Applies a batch of writes in one transaction; returns how many ended a claim.
pub(super) fn record(conn: &mut Connection, writes: &[Write], now: i64) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ended = 0;
    for w in writes {
        if apply(&tx, w, now)? {
            ended += 1;
        }
    }
    tx.commit()?;
    Ok(ended)
}
