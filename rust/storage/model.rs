//! The types the `Storage` trait speaks besides the job types of `job.rs`: the writes that
//! end a claim, claim filters, pages, schedules, and the wake-up hints.

use crate::job::JobStatus;

/// A write that ends (or annotates) a claim. Every variant carries the claim token: the
/// store applies it only while that claim still holds the job ("fencing"), so a late result
/// from a thread or process that lost its claim changes nothing.
#[derive(Debug, Clone)]
pub enum Write {
    /// A worker thread picked the job up: record which thread runs it.
    Started {
        id: String,
        token: i64,
        thread_id: String,
    },
    Complete {
        id: String,
        token: i64,
        thread_id: String,
        result: Vec<u8>,
    },
    /// Back to `pending` at `run_at`, with the attempt in the error history.
    Retry {
        id: String,
        token: i64,
        thread_id: String,
        error: String,
        traceback: String,
        run_at: i64,
        /// False for a run put off before it started (an open circuit breaker): no retry
        /// is used and no error is recorded in the history.
        counted: bool,
    },
    /// Finished for good (`failed` or `dead`), with a dead-letter row.
    Fail {
        id: String,
        token: i64,
        thread_id: String,
        error: String,
        traceback: String,
        status: JobStatus,
        /// Replaces the dead letter's metadata (a retry rule's reason), when set.
        dead_metadata: Option<String>,
    },
    /// Claimed but not run (shutdown, write-off of a stuck thread): back to `pending` as it
    /// was, no attempt counted.
    Requeue { id: String, token: i64 },
}

/// Which task names a claim may take: the async lane claims only async tasks, and the
/// worker threads beside it everything else, so neither takes jobs the other must run.
#[derive(Debug, Clone, Copy)]
pub enum TaskFilter<'a> {
    Only(&'a [String]),
    Except(&'a [String]),
}

/// Counts of `(queue, status)` pairs.
pub type QueueCounts = Vec<(String, JobStatus, i64)>;

/// A schedule as a worker registers it: the call to enqueue and when.
#[derive(Debug, Clone)]
pub struct PeriodicSpec {
    pub name: String,
    pub task_name: String,
    pub cron_expr: String,
    /// IANA name; empty means UTC.
    pub timezone: String,
    pub queue: String,
    pub payload: Vec<u8>,
    pub priority: i64,
    pub max_retries: i64,
    pub retry_backoff: f64,
    pub timeout_ms: i64,
}

/// A stored schedule, as `list_periodic` shows it.
#[derive(Debug, Clone)]
pub struct PeriodicInfo {
    pub name: String,
    pub task_name: String,
    pub cron_expr: String,
    pub timezone: String,
    pub queue: String,
    pub enabled: bool,
    pub last_run: Option<i64>,
    pub next_run: i64,
}

/// One page of a keyset listing: the rows, and the cursor of the next page (None on the
/// last one). Cursors are opaque strings the backend makes and reads back.
#[derive(Debug, Clone)]
pub struct JobPage<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// A hint that jobs may be ready: never the source of truth (the poll is).
pub trait WakeSource: Send {
    /// Blocks up to `timeout` for a hint; true if one arrived.
    fn wait(&mut self, timeout: std::time::Duration) -> bool;
}

/// Reports a number that changes whenever anything is committed to the store by any
/// connection (another thread or process).
/// Only a hint: the scheduler's poll is the guarantee.
pub trait ChangeProbe: Send {
    fn version(&mut self) -> Option<i64>;
}
