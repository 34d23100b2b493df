//! The SQLite store: enqueue, claim and the batched writes of the result handler. The
//! inspection queries live in `inspect.rs`; connection handling in `connection.rs`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::connection::{self, with_retry, Pool, Settings};
use super::dependencies::{self, after_outcome};
use super::ids::{self, seq_of};
use super::limits::{LimitCache, TaskLimit};
use super::periodic::{self, PeriodicInfo, PeriodicSpec};
use super::sqlite_change::SqliteChangeProbe;
use super::sqlite_limits;
use super::sqlite_wake::{Kind, Listener, Notifier};
use super::wal_index::WalIndex;
use super::{
    admin, inspect, job_control, pages, pause, retention, settings_kv, task_logs, ChangeProbe,
    JobPage, QueueCounts, Storage, TaskFilter, WakeSource, Write,
};
use crate::error::{Error, Result};
use crate::job::{
    ClaimedJob, DeadLetter, ErrorRecord, JobFilter, JobLinks, JobRecord, JobStatus, NewJob,
    StoredOutcome, TaskLog, WorkerBeat, WorkerInfo, WorkerKey,
};
use crate::retention::{Retention, RetentionCounts, RetentionReport};

/// How commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: survives any process crash; a power cut may lose
    /// the last commits.
    Normal,
    /// `synchronous=FULL`: every commit is fsynced.
    Full,
}

impl Durability {
    pub fn parse(s: &str) -> Result<Durability> {
        match s {
            "normal" => Ok(Durability::Normal),
            "full" => Ok(Durability::Full),
            other => Err(Error::invalid(
                "durability",
                format!("{other:?} (expected \"normal\" or \"full\")"),
            )),
        }
    }
}

/// A SQLite-backed `Storage`. Cheap to share behind an `Arc`.
pub struct SqliteStorage {
    pool: Pool,
    /// Serializes this process's write transactions. Threads of one process then queue on
    /// a mutex (nanoseconds to hand over) instead of on SQLite's busy handler, which sleeps
    /// in millisecond steps; SQLite's lock only arbitrates between processes.
    write_lock: Mutex<()>,
    /// For `:memory:` only: the connection that keeps the database alive.
    _keepalive: Mutex<Option<Connection>>,
    /// Tasks with a rate limit or concurrency cap; while there are none, claims take the
    /// plain path.
    pub(super) limits: LimitCache,
    /// Tells listening processes (workers, result waiters) of commits that concern them.
    hints: Notifier,
    /// This store's entry among the files the process holds (`connection::Hold`).
    _hold: connection::Hold,
}

impl SqliteStorage {
    /// Opens (creating and migrating) the database at `path`; a new file is readable and
    /// writable by its owner only.
    pub fn open(path: &str, durability: Durability) -> Result<SqliteStorage> {
        Self::open_with_mode(path, durability, connection::DEFAULT_FILE_MODE)
    }

    /// `open`, creating a missing file with the permission bits `file_mode`.
    pub fn open_with_mode(
        path: &str,
        durability: Durability,
        file_mode: u32,
    ) -> Result<SqliteStorage> {
        if file_mode & 0o600 != 0o600 || file_mode > 0o777 {
            return Err(Error::invalid(
                "file_mode",
                format!("{file_mode:#o} (must be at most 0o777 and let the owner read and write)"),
            ));
        }
        let mut settings = Settings::new(path, durability == Durability::Full);
        settings.file_mode = file_mode;
        let first = connection::open_and_migrate(&settings)?;
        // An in-memory database lives as long as one connection to it: keep one aside
        // for the store's life (a pooled one may be dropped after a failed transaction).
        let keepalive = match settings.memory_name {
            Some(_) => Some(connection::open(&settings)?),
            None => None,
        };
        // An in-memory database has no other process to tell, nor a folder beside it.
        let shared = settings.memory_name.is_none();
        let hold = match settings.memory_name {
            Some(_) => connection::Hold::none(),
            None => connection::Hold::take(path),
        };
        Ok(SqliteStorage {
            _hold: hold,
            hints: Notifier::new(path, shared),
            pool: Pool::new(settings, first),
            write_lock: Mutex::new(()),
            _keepalive: Mutex::new(keepalive),
            limits: LimitCache::default(),
        })
    }

    pub fn path(&self) -> &str {
        &self.pool.settings().path
    }

    /// A listening socket for hints of `kind`; `None` (polling) where it cannot be had.
    fn listener(&self, kind: Kind) -> Result<Option<Box<dyn WakeSource>>> {
        if self.pool.settings().memory_name.is_some() {
            return Ok(None);
        }
        match Listener::bind(self.path(), kind) {
            Ok(l) => Ok(l.map(|l| {
                self.hints.skip(&l);
                Box::new(l) as Box<dyn WakeSource>
            })),
            Err(e) => {
                log::debug!("no wake-ups for {}, polling only: {e}", self.path());
                Ok(None)
            }
        }
    }

    /// After a batch of outcomes: finished jobs concern result waiters; jobs put back
    /// (retries, requeues) concern workers.
    fn hint_after_record(&self, writes: &[Write]) {
        let (mut work, mut results) = (false, false);
        for w in writes {
            match w {
                Write::Started { .. } => {}
                Write::Complete { .. } | Write::Fail { .. } => results = true,
                Write::Retry { .. } | Write::Requeue { .. } => work = true,
            }
        }
        if work {
            self.hints.notify(Kind::Work);
        }
        if results {
            self.hints.notify(Kind::Results);
        }
    }

    /// Runs a read on a pooled connection, retrying lock contention.
    pub(super) fn read<T>(&self, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        with_retry(|| self.pool.with(&mut f))
    }

    /// Runs a write on a pooled connection, one writer of this process at a time.
    pub(super) fn write<T>(&self, mut f: impl FnMut(&mut Connection) -> Result<T>) -> Result<T> {
        with_retry(|| {
            let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.pool.with(&mut f)
        })
    }
}

/// The maintenance checkpoint waits for the WAL to hold this many frames not yet copied
/// back (about 400 KiB of 4 KiB pages; a busy queue writes that within a tick).
const CHECKPOINT_MIN_FRAMES: u32 = 100;

const CLAIM_COLUMNS: &str = "id, task_name, queue, payload, retry_count, max_retries, \
    retry_backoff, timeout_ms, expires_at, pass_result, eager_start";

/// The queues a claim reads: the named ones (every known queue when `None`) less the
/// paused ones. Paused queues are simply not claimable (a read of a table of a few rows).
pub(super) fn claimable_queues<'a>(
    conn: &Connection,
    queues: Option<&'a [String]>,
) -> Result<Cow<'a, [String]>> {
    Ok(match queues {
        Some(q) => {
            let paused = pause::paused_names(conn)?;
            if paused.is_empty() {
                Cow::Borrowed(q)
            } else {
                Cow::Owned(q.iter().filter(|n| !paused.contains(n)).cloned().collect())
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT name FROM queues WHERE name NOT IN (SELECT name FROM paused_queues)",
            )?;
            let names = stmt.query_map([], |r| r.get(0))?;
            Cow::Owned(names.collect::<std::result::Result<_, _>>()?)
        }
    })
}

/// `tasks` restricts the task names (one cached statement per filter shape and size).
fn ready_seqs(
    conn: &Connection,
    queues: Option<&[String]>,
    limit: usize,
    now: i64,
    tasks: Option<TaskFilter<'_>>,
) -> Result<Vec<i64>> {
    let queues = claimable_queues(conn, queues)?;
    // One indexed range per queue, merged here: each read is O(log n + limit) whatever the
    // backlog. INDEXED BY pins the plan: the planner would otherwise pick the status index
    // and sort the whole backlog on every claim.
    const READY: &str = "SELECT priority, scheduled_at, seq FROM jobs INDEXED BY jobs_ready \
         WHERE status = 0 AND queue = ?1 AND scheduled_at <= ?2 \
         ORDER BY priority DESC, scheduled_at, seq LIMIT ?3";
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
fn next_due(conn: &Connection, queues: Option<&[String]>, now: i64) -> Result<Option<i64>> {
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
    let mut next_priority = conn.prepare_cached(
        "SELECT priority FROM jobs INDEXED BY jobs_ready \
         WHERE status = 0 AND queue = ?1 AND priority < ?2 \
         ORDER BY priority DESC LIMIT 1",
    )?;
    let mut first_due = conn.prepare_cached(
        "SELECT scheduled_at FROM jobs INDEXED BY jobs_ready \
         WHERE status = 0 AND queue = ?1 AND priority = ?2 AND scheduled_at > ?3 \
         ORDER BY scheduled_at LIMIT 1",
    )?;
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
fn claim_row(r: &rusqlite::Row<'_>, token: i64, now: i64) -> rusqlite::Result<ClaimedJob> {
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
        "UPDATE jobs SET status = 1, owner = ?2, claim_token = ?3, started_at = ?4, \
         worker_id = NULL, incarnation = ?5 WHERE seq = ?1 AND status = 0 \
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

/// Inserts `jobs` inside the caller's write transaction; returns their ids.
fn insert_jobs(tx: &Connection, jobs: &[NewJob], now: i64) -> Result<Vec<String>> {
    let mut noted: Option<&str> = None;
    for job in jobs {
        if noted != Some(job.queue.as_str()) {
            note_queue(tx, &job.queue)?;
            noted = Some(&job.queue);
        }
    }
    let mut next = next_seq(tx)?;
    jobs.iter()
        .map(|j| insert_job(tx, j, now, &mut next))
        .collect::<Result<Vec<_>>>()
}

/// What a claimed row needs besides `ClaimedJob`: its expiry and how it takes its
/// parents' results (columns 8 and 9 of `CLAIM_COLUMNS`).
fn claim_extras(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Option<i64>, i64)> {
    Ok((r.get(8)?, r.get(9)?))
}

/// Finishes a claimed row: an expired one is cancelled instead of handed out (`None`); a
/// canvas step gets its parents' results.
fn finish_claim(
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
        job.parents = Some(dependencies::parent_results(conn, seq, pass_result)?);
    }
    Ok(Some(job))
}

fn new_token() -> i64 {
    // Never 0 or NULL-like: a token identifies one claim of one job.
    fastrand::i64(1..i64::MAX)
}

fn insert_error(conn: &Connection, seq: i64, error: &str, traceback: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO job_errors (job_id, attempt, error, traceback, failed_at) \
         SELECT id, retry_count + 1, ?2, ?3, ?4 FROM jobs WHERE seq = ?1",
    )?
    .execute(params![seq, error, traceback, now])?;
    Ok(())
}

/// Copies a job that failed for good into the dead-letter table. One letter per job: a
/// job run again by id that fails again replaces its old letter (its history stays in
/// job_errors).
pub(super) fn write_dead_letter(conn: &Connection, seq: i64, now: i64) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM dead_letters WHERE original_job_id = (SELECT id FROM jobs WHERE seq = ?1)",
    )?
    .execute(params![seq])?;
    conn.prepare_cached(
        "INSERT INTO dead_letters (id, original_job_id, task_name, queue, payload, \
         priority, max_retries, retry_backoff, timeout_ms, metadata, error, \
         retry_count, failed_at, notes) \
         SELECT ?2, id, task_name, queue, payload, priority, max_retries, \
         retry_backoff, timeout_ms, metadata, error, retry_count, ?3, notes \
         FROM jobs WHERE seq = ?1",
    )?
    .execute(params![seq, uuid::Uuid::now_v7().to_string(), now])?;
    Ok(())
}

/// Applies one write, fenced: it changes the job only while `(seq, claim_token)` still
/// identify the claim it ends.
fn apply(conn: &Connection, write: &Write, now: i64) -> Result<bool> {
    let changed = match write {
        Write::Started {
            id,
            token,
            thread_id,
        } => {
            conn.prepare_cached(
                "UPDATE jobs SET worker_id = ?3 WHERE seq = ?1 AND claim_token = ?2 AND status = 1",
            )?
            .execute(params![seq_of(id), token, thread_id])?;
            return Ok(false);
        }
        Write::Complete {
            id,
            token,
            thread_id,
            result,
        } => conn
            .prepare_cached(
                "UPDATE jobs SET status = 2, result = ?3, completed_at = ?4, worker_id = ?5, \
                 error = NULL, claim_token = NULL \
                 WHERE seq = ?1 AND claim_token = ?2 AND status = 1",
            )?
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
                .prepare_cached(
                    "UPDATE jobs SET status = 0, scheduled_at = ?3, error = ?4, worker_id = ?5, \
                     owner = NULL, claim_token = NULL, started_at = NULL \
                     WHERE seq = ?1 AND claim_token = ?2 AND status = 1",
                )?
                .execute(params![seq_of(id), token, run_at, error, thread_id])?;
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
                .prepare_cached(
                    "UPDATE jobs SET status = ?3, error = ?4, completed_at = ?5, \
                         worker_id = ?6, claim_token = NULL \
                         WHERE seq = ?1 AND claim_token = ?2 AND status = 1 \
                         RETURNING has_dependents",
                )?
                .query_row(
                    params![seq_of(id), token, *status as i64, error, now, thread_id],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(has_dependents) = done {
                insert_error(conn, seq_of(id), error, traceback, now)?;
                write_dead_letter(conn, seq_of(id), now)?;
                if let Some(metadata) = dead_metadata {
                    conn.prepare_cached(
                        "UPDATE dead_letters SET metadata = ?2 WHERE original_job_id = ?1",
                    )?
                    .execute(params![id, metadata])?;
                }
                after_outcome(conn, seq_of(id), *status as i64, has_dependents != 0, now)?;
            }
            usize::from(done.is_some())
        }
        Write::Requeue { id, token } => conn
            .prepare_cached(
                "UPDATE jobs SET status = 0, owner = NULL, claim_token = NULL, \
                 started_at = NULL, worker_id = NULL \
                 WHERE seq = ?1 AND claim_token = ?2 AND status = 1",
            )?
            .execute(params![seq_of(id), token])?,
    };
    Ok(changed > 0)
}

/// Records a queue name (a no-op read when it is known already).
pub(super) fn note_queue(conn: &Connection, queue: &str) -> Result<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO queues (name) VALUES (?1)")?
        .execute(params![queue])?;
    Ok(())
}

/// The seq the next inserted job gets. Call inside a write transaction: the lock makes
/// it safe to hand out `last + 1, last + 2, ...` (read from the rowid's end: O(log n)).
pub(super) fn next_seq(conn: &Connection) -> Result<i64> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT seq FROM jobs ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(last.unwrap_or(0) + 1)
}

/// Inserts one job inside the caller's write transaction with seq `*next` and returns its
/// id (for a `unique_key` that a pending or running job holds already, that job's id).
/// The caller records the queue with `note_queue`.
pub(super) fn insert_job(
    conn: &Connection,
    job: &NewJob,
    now: i64,
    next: &mut i64,
) -> Result<String> {
    let seq = *next;
    let id = format!("{}{seq:012x}", ids::prefix(now));
    let inserted = conn
        .prepare_cached(
            "INSERT INTO jobs (seq, id, queue, task_name, payload, status, priority, created_at, \
             scheduled_at, max_retries, retry_backoff, timeout_ms, unique_key, metadata, \
             result_ttl_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
             ON CONFLICT (unique_key) WHERE unique_key > '' AND status IN (0, 1, 6) DO NOTHING",
        )?
        .execute(params![
            seq,
            id,
            job.queue,
            job.task_name,
            job.payload,
            job.priority,
            now,
            job.scheduled_at,
            job.max_retries,
            job.retry_backoff,
            job.timeout_ms,
            job.unique_key,
            job.metadata,
            job.result_ttl_ms
        ])?;
    if inserted == 1 {
        *next += 1;
        return Ok(id);
    }
    // The unique_key index refused the row: return the live job holding the key.
    let key = job.unique_key.as_deref().unwrap_or_default();
    Ok(conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE unique_key = ?1 AND unique_key > '' AND status IN (0, 1, 6)",
        )?
        .query_row(params![key], |r| r.get(0))?)
}

impl SqliteStorage {
    /// Claims ready jobs, optionally only of some task names.
    fn claim_where(
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
        let limits = self.limits.get(|| self.read(|c| sqlite_limits::load(c)))?;
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

impl Storage for SqliteStorage {
    fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let now = crate::job::now_ms();
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = insert_jobs(&tx, jobs, now)?;
            tx.commit()?;
            Ok(ids)
        })
        .inspect(|_| self.hints.notify(Kind::Work))
    }

    fn enqueue_bounded(&self, jobs: &[NewJob], max_pending: i64) -> Result<Vec<String>> {
        let now = crate::job::now_ms();
        let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
        queues.sort_unstable();
        queues.dedup();
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let ids = insert_jobs(&tx, jobs, now)?;
            // Dropping the transaction on error rolls every insert back.
            sqlite_limits::check_pending(&tx, &queues, max_pending)?;
            tx.commit()?;
            Ok(ids)
        })
        .inspect(|_| self.hints.notify(Kind::Work))
    }

    fn claim(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
    ) -> Result<Vec<ClaimedJob>> {
        self.claim_where(queues, owner, limit, now, None)
    }

    fn claim_filtered(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
        tasks: TaskFilter<'_>,
    ) -> Result<Vec<ClaimedJob>> {
        self.claim_where(queues, owner, limit, now, Some(tasks))
    }

    fn claim_by_id(&self, id: &str, owner: &WorkerKey, now: i64) -> Result<Option<ClaimedJob>> {
        self.write(|conn| {
            let token = new_token();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let job = tx
                .prepare_cached(&format!(
                    "UPDATE jobs SET status = 1, owner = ?2, claim_token = ?3, started_at = ?4, \
                     completed_at = NULL, worker_id = NULL, incarnation = ?6 \
                     WHERE seq = ?5 AND id = ?1 AND status != 1 RETURNING {CLAIM_COLUMNS}"
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
        })
    }

    fn record_start(&self, id: &str, token: i64, thread_id: &str) -> Result<bool> {
        self.write(|conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE jobs SET worker_id = ?3 \
                     WHERE seq = ?1 AND claim_token = ?2 AND status = 1",
                )?
                .execute(params![seq_of(id), token, thread_id])?
                > 0)
        })
    }

    fn record(&self, writes: &[Write], now: i64) -> Result<usize> {
        if writes.is_empty() {
            return Ok(0);
        }
        self.write(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ended = 0;
            for w in writes {
                if apply(&tx, w, now)? {
                    ended += 1;
                }
            }
            tx.commit()?;
            Ok(ended)
        })
        .inspect(|_| self.hint_after_record(writes))
    }

    fn wake_source(&self, _worker_id: &str) -> Result<Option<Box<dyn WakeSource>>> {
        self.listener(Kind::Work)
    }

    fn result_wake_source(&self) -> Result<Option<Box<dyn WakeSource>>> {
        self.listener(Kind::Results)
    }

    fn next_due(&self, queues: Option<&[String]>, now: i64) -> Result<Option<i64>> {
        self.read(|c| next_due(c, queues, now))
    }

    fn change_probe(&self) -> Result<Box<dyn ChangeProbe>> {
        let conn = connection::open(self.pool.settings())?;
        Ok(Box::new(SqliteChangeProbe::new(conn)))
    }

    fn close(&self) {
        self.pool.close();
    }

    fn checkpoint(&self) -> Result<()> {
        self.read(|c| {
            // An idle queue's WAL holds a few heartbeats: copying them back costs two
            // fsyncs, and the next heartbeat then starts the log over with a third.
            let pending = WalIndex::of(c).and_then(|w| w.frames_to_checkpoint());
            if pending.is_some_and(|n| n < CHECKPOINT_MIN_FRAMES) {
                return Ok(());
            }
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn register_worker(&self, info: &WorkerInfo) -> Result<()> {
        self.write(|c| inspect::register_worker(c, info))
    }
    fn heartbeat(&self, who: &WorkerKey, status: &str, now: i64) -> Result<()> {
        self.write(|c| inspect::heartbeat(c, who, status, now))
    }
    fn deregister_worker(&self, who: &WorkerKey, now: i64) -> Result<()> {
        self.write(|c| inspect::deregister_worker(c, who, now))
    }
    fn worker_beats(&self) -> Result<Vec<WorkerBeat>> {
        self.read(|c| inspect::worker_beats(c))
    }
    fn recover_workers(&self, dead: &[WorkerBeat], now: i64) -> Result<usize> {
        let n = self.write(|c| inspect::recover_workers(c, dead, now))?;
        if n > 0 {
            self.hints.notify(Kind::Work);
        }
        Ok(n)
    }
    fn purge_finished(&self, before: i64) -> Result<usize> {
        self.write(|c| inspect::purge_finished(c, before))
    }
    fn status(&self, id: &str) -> Result<Option<JobStatus>> {
        self.read(|c| inspect::status(c, id))
    }
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.read(|c| inspect::get_job(c, id))
    }
    fn get_outcome(&self, id: &str) -> Result<Option<StoredOutcome>> {
        self.read(|c| inspect::get_outcome(c, id))
    }
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.read(|c| inspect::list_jobs(c, filter))
    }
    fn counts(&self) -> Result<QueueCounts> {
        self.read(|c| inspect::counts(c))
    }
    fn oldest_pending(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.read(|c| inspect::oldest_pending(c, now))
    }
    fn job_errors(&self, id: &str) -> Result<Vec<ErrorRecord>> {
        self.read(|c| inspect::job_errors(c, id))
    }
    fn cancel(&self, id: &str, now: i64) -> Result<bool> {
        let cancelled = self.write(|c| inspect::cancel(c, id, now))?;
        if cancelled {
            self.hints.notify(Kind::Results);
        }
        Ok(cancelled)
    }
    fn set_progress(&self, id: &str, progress: i64) -> Result<()> {
        self.write(|c| inspect::set_progress(c, id, progress))
    }
    fn dead_letters(&self, limit: i64, offset: i64) -> Result<Vec<DeadLetter>> {
        self.read(|c| inspect::dead_letters(c, limit, offset))
    }
    fn retry_dead(&self, dead_id: &str, now: i64) -> Result<String> {
        self.write(|c| inspect::retry_dead(c, dead_id, now))
            .inspect(|_| self.hints.notify(Kind::Work))
    }
    fn purge_dead(&self, before: i64) -> Result<usize> {
        self.write(|c| inspect::purge_dead(c, before))
    }
    fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.read(|c| inspect::workers(c))
    }
    fn delete_dead(&self, dead_id: &str) -> Result<bool> {
        self.write(|c| admin::delete_dead(c, dead_id))
    }
    fn requeue_job(&self, id: &str) -> Result<bool> {
        let requeued = self.write(|c| admin::requeue_job(c, id))?;
        if requeued {
            self.hints.notify(Kind::Work);
        }
        Ok(requeued)
    }
    fn sweep(&self, r: &Retention, now: i64) -> Result<RetentionCounts> {
        self.write(|c| retention::sweep(c, r, now))
    }
    fn expire_results(&self, now: i64) -> Result<usize> {
        self.write(|c| retention::expire_results(c, now))
    }
    fn retention_preview(&self, r: &Retention, now: i64) -> Result<RetentionCounts> {
        self.read(|c| retention::preview(c, r, now))
    }
    fn retention_report(&self) -> Result<Option<RetentionReport>> {
        self.read(|c| retention::report(c))
    }
    fn archive(&self, before: i64, now: i64) -> Result<usize> {
        self.write(|c| retention::archive(c, before, now))
    }
    fn list_archived(&self, limit: i64, offset: i64) -> Result<Vec<JobRecord>> {
        self.read(|c| retention::list_archived(c, limit, offset))
    }
    fn list_archived_after(&self, limit: i64, after: Option<i64>) -> Result<Vec<JobRecord>> {
        self.read(|c| retention::list_archived_after(c, limit, after))
    }
    fn purge_completed(&self, before: i64) -> Result<usize> {
        self.write(|c| retention::purge_completed(c, before))
    }
    fn write_task_log(&self, log: &TaskLog) -> Result<()> {
        self.write(|c| task_logs::write(c, log))
    }
    fn task_logs(&self, job_id: &str) -> Result<Vec<TaskLog>> {
        self.read(|c| task_logs::for_job(c, job_id))
    }
    fn query_task_logs(
        &self,
        task_name: Option<&str>,
        level: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<TaskLog>> {
        self.read(|c| task_logs::query(c, task_name, level, since, limit))
    }
    fn pause_queue(&self, queue: &str, now: i64) -> Result<bool> {
        self.write(|c| pause::pause(c, queue, now))
    }
    fn resume_queue(&self, queue: &str) -> Result<bool> {
        self.write(|c| pause::resume(c, queue))
    }
    fn paused_queues(&self) -> Result<Vec<String>> {
        self.read(|c| pause::paused_names(c))
    }
    fn setting_get(&self, key: &str) -> Result<Option<(String, i64)>> {
        self.read(|c| settings_kv::get(c, key))
    }
    fn setting_put(&self, key: &str, value: &str, expected: Option<i64>) -> Result<Option<i64>> {
        self.write(|c| settings_kv::put(c, key, value, expected))
    }
    fn setting_delete(&self, key: &str) -> Result<bool> {
        self.write(|c| settings_kv::delete(c, key))
    }
    fn settings_list(&self, prefix: &str) -> Result<Vec<(String, String, i64)>> {
        self.read(|c| settings_kv::list(c, prefix))
    }
    fn list_jobs_after(
        &self,
        filter: &JobFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<JobPage<JobRecord>> {
        self.read(|c| pages::jobs_after(c, filter, after, limit))
    }
    fn dead_letters_after(&self, after: Option<&str>, limit: i64) -> Result<JobPage<DeadLetter>> {
        self.read(|c| pages::dead_after(c, after, limit))
    }
    fn throughput(&self, since: i64, bucket_ms: i64) -> Result<Vec<(i64, i64)>> {
        self.read(|c| pages::throughput(c, since, bucket_ms))
    }
    fn job_payload(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.read(|c| pages::payload(c, id))
    }

    fn register_task_limits(&self, limits: &[TaskLimit], unlimited: &[String]) -> Result<()> {
        self.write(|c| sqlite_limits::register(c, limits, unlimited))?;
        self.reload_task_limits()
    }
    fn reload_task_limits(&self) -> Result<()> {
        let map = self.read(|c| sqlite_limits::load(c))?;
        self.limits.set(Arc::new(map));
        Ok(())
    }
    fn limited_ready_at(&self) -> Option<i64> {
        self.limits.wake_at()
    }

    fn register_periodic(&self, specs: &[PeriodicSpec], now: i64) -> Result<()> {
        self.write(|c| periodic::register(c, specs, now))
    }
    fn list_periodic(&self) -> Result<Vec<PeriodicInfo>> {
        self.read(|c| periodic::list(c))
    }
    fn set_periodic_enabled(&self, name: &str, enabled: bool, now: i64) -> Result<()> {
        self.write(|c| periodic::set_enabled(c, name, enabled, now))
    }
    fn delete_periodic(&self, name: &str) -> Result<()> {
        self.write(|c| periodic::delete(c, name))
    }
    fn fire_periodic(&self, now: i64) -> Result<(usize, Option<i64>)> {
        // Look first without the write lock: between due times this is one indexed read.
        match self.read(|c| periodic::next_due(c))? {
            Some(due) if due <= now => {
                let fired = self.write(|c| periodic::fire_due(c, now))?;
                if fired.0 > 0 {
                    self.hints.notify(Kind::Work);
                }
                Ok(fired)
            }
            next => Ok((0, next)),
        }
    }
    fn enqueue_linked(
        &self,
        jobs: &[NewJob],
        links: &[JobLinks],
        max_pending: &[(String, i64)],
    ) -> Result<Vec<String>> {
        let now = crate::job::now_ms();
        self.write(|c| dependencies::enqueue_linked(c, jobs, links, max_pending, now))
            .inspect(|_| self.hints.notify(Kind::Work))
    }
    fn job_links(&self, id: &str) -> Result<(Vec<String>, Vec<String>)> {
        self.read(|c| dependencies::links_of(c, id))
    }
    fn request_cancel(&self, id: &str) -> Result<bool> {
        self.write(|c| job_control::request_cancel(c, id))
    }
    fn cancel_requested(&self, id: &str) -> Result<bool> {
        self.read(|c| job_control::cancel_requested(c, id))
    }
    fn expire_due(&self, now: i64) -> Result<usize> {
        self.write(|c| job_control::expire_due(c, now))
    }
    fn replay(&self, id: &str, now: i64) -> Result<String> {
        self.write(|c| job_control::replay(c, id, now))
            .inspect(|_| self.hints.notify(Kind::Work))
    }
}
