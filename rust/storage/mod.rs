//! What the engine needs from a store, as one trait. Two backends implement it, each in
//! its own folder with the same file per area (`sqlite/`, `postgres/`); what both must agree
//! on lives beside the trait: `model.rs` (the types it speaks), `rules.rs` (what a status
//! means, cancel windows, recovery notes), `cursor.rs` (keyset pages), `picker.rs` (which
//! limited jobs a claim starts) and `ids.rs` (job ids and their seq).

mod cursor;
mod ids;
mod model;
mod picker;
pub mod postgres;
mod rules;
mod sqlite;

pub use ids::seq_of;
pub use model::{
    ChangeProbe, JobPage, PeriodicInfo, PeriodicSpec, QueueCounts, TaskFilter, WakeSource, Write,
};
pub use picker::{LimitMap, TaskLimit};
pub use postgres::{PgOptions, PgStorage};
pub(crate) use rules::move_unstarted;
pub use rules::{CANCEL_CLAIMED_AFTER_MS, MAX_RECOVERIES};
pub use sqlite::{Durability, SqliteStorage, SCHEMA_VERSION, WAKE_ENV_SWITCH};

use crate::error::Result;
use crate::job::{
    ClaimedJob, DeadLetter, ErrorRecord, JobFilter, JobLinks, JobRecord, JobStatus, NewJob,
    StoredOutcome, TaskLog, WorkerBeat, WorkerInfo, WorkerKey,
};
use crate::retention::{Retention, RetentionCounts, RetentionReport};

/// The storage contract, in sections named like the area files of each backend (a method
/// lives in the file of its section in `sqlite/` and in `postgres/`). Implementations are shared between threads and must make each
/// method atomic; `claim` must hand each job to exactly one caller across processes.
pub trait Storage: Send + Sync + 'static {
    // -- claim.rs: the hot path (enqueue, claim, the writes that end a claim)
    /// Inserts jobs in one transaction and returns their ids (for a `unique_key` that is
    /// already pending or running, the existing job's id).
    fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<String>>;

    /// Claims up to `limit` ready jobs (`scheduled_at <= now`) of the given queues (all when
    /// `None`), highest priority first, then earliest `scheduled_at`, then insertion order.
    /// Each claimed job records `owner` (its worker id and incarnation).
    fn claim(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
    ) -> Result<Vec<ClaimedJob>>;

    /// `claim`, restricted to the task names `tasks` allows.
    fn claim_filtered(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        now: i64,
        tasks: TaskFilter<'_>,
    ) -> Result<Vec<ClaimedJob>>;

    /// Claims one job by id whatever its status and schedule (`taskito execute`); `None` if
    /// it does not exist or is running.
    fn claim_by_id(&self, id: &str, owner: &WorkerKey, now: i64) -> Result<Option<ClaimedJob>>;

    /// Records that the claimed job `id` starts now on `thread_id`, fenced by its claim
    /// token; false if the claim is gone (the job was cancelled or put back meanwhile), in
    /// which case it must not run. For jobs that waited after their claim: until a start is
    /// recorded, a claimed job reads pending and `cancel` may take it.
    fn record_start(&self, id: &str, token: i64, thread_id: &str) -> Result<bool>;

    /// Applies a batch of writes in one transaction; returns how many ended a claim.
    fn record(&self, writes: &[Write], now: i64) -> Result<usize>;

    /// The earliest `scheduled_at` after `now` of a pending job of the given queues (all
    /// when `None`), so an idle scheduler wakes when a delayed job or a retry comes due
    /// rather than a poll later. `None` when there is none (or the store cannot say).
    fn next_due(&self, queues: Option<&[String]>, now: i64) -> Result<Option<i64>> {
        let _ = (queues, now);
        Ok(None)
    }

    // -- wake.rs: hints that work may be ready or a result written
    /// Where this worker process hears of new work from other processes (None: poll only).
    fn wake_source(&self, worker_id: &str) -> Result<Option<Box<dyn WakeSource>>>;

    /// Where a thread waiting on results hears that a job finished in another process
    /// (None: poll only).
    fn result_wake_source(&self) -> Result<Option<Box<dyn WakeSource>>> {
        Ok(None)
    }

    // -- store.rs: the store itself
    /// A cheap probe that says whether anything was committed since the last call.
    fn change_probe(&self) -> Result<Box<dyn ChangeProbe>>;

    /// Releases every pooled connection (the store stays usable and reconnects on demand).
    fn close(&self) {}

    /// Moves committed data from the write-ahead log into the database without blocking
    /// anyone (a no-op for stores without one).
    fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    // -- workers.rs: the worker registry and recovery
    /// Adds the registry row of one incarnation (`info.worker_id`, `info.incarnation`),
    /// status `active`, beats 0; rows of the same worker id that stopped cleanly are removed.
    fn register_worker(&self, info: &WorkerInfo) -> Result<()>;

    /// One heartbeat of `who`: adds 1 to its `beats`, sets `last_heartbeat = now` (wall clock,
    /// for display only) and its `status` (`active` or `unhealthy`; a row marked `dead` that
    /// beats again is live again).
    fn heartbeat(&self, who: &WorkerKey, status: &str, now: i64) -> Result<()>;

    /// Marks the row of `who` `stopped`.
    fn deregister_worker(&self, who: &WorkerKey, now: i64) -> Result<()>;

    /// The live rows (status `active` or `unhealthy`) with their heartbeat counters, for
    /// liveness observers (`liveness.rs`), which judge staleness on their own clock.
    fn worker_beats(&self) -> Result<Vec<WorkerBeat>>;

    /// Marks each row of `dead` `dead`, fenced by its counter: a row whose `beats` moved
    /// since it was read is left alone. Then puts back to `pending` every running job whose
    /// claiming incarnation has no live row (with a note in its error history). Only a job
    /// with a start recorded counts the loss: past `MAX_RECOVERIES` it is dead-lettered
    /// instead; one not started goes back uncounted and is marked to record its start
    /// before its later runs (`ClaimedJob::eager_start`). Returns the number of jobs put back.
    fn recover_workers(&self, dead: &[WorkerBeat], now: i64) -> Result<usize>;

    fn workers(&self) -> Result<Vec<WorkerInfo>>;

    // -- inspect.rs: reading and changing single jobs, dead letters
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>>;

    /// Just the status (cheap: reads no payload or result).
    fn status(&self, id: &str) -> Result<Option<JobStatus>>;

    /// Status, result bytes and error of a job, for `JobResult.result()`.
    fn get_outcome(&self, id: &str) -> Result<Option<StoredOutcome>>;

    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>>;

    fn counts(&self) -> Result<QueueCounts>;

    /// `(queue, scheduled_at)` of the longest-waiting ready job of each queue.
    fn oldest_pending(&self, now: i64) -> Result<Vec<(String, i64)>>;

    fn job_errors(&self, id: &str) -> Result<Vec<ErrorRecord>>;

    /// Cancels a job users see pending: waiting, or claimed at least
    /// `CANCEL_CLAIMED_AFTER_MS` ago with no start recorded (fenced on that, so a worker
    /// that records its start first keeps it). False otherwise.
    fn cancel(&self, id: &str, now: i64) -> Result<bool>;

    fn set_progress(&self, id: &str, progress: i64) -> Result<()>;

    fn dead_letters(&self, limit: i64, offset: i64) -> Result<Vec<DeadLetter>>;

    /// Re-enqueues a dead letter as a new job and removes the letter; returns the new id.
    fn retry_dead(&self, dead_id: &str, now: i64) -> Result<String>;

    /// Deletes dead letters that failed before `before`; returns how many.
    fn purge_dead(&self, before: i64) -> Result<usize>;

    // -- admin.rs: operator actions
    /// Deletes one dead letter; false if none has that id.
    fn delete_dead(&self, dead_id: &str) -> Result<bool>;

    /// Puts a running job back to `pending`, ending its claim (fenced) and keeping its
    /// retry count; false if it is missing or not running.
    fn requeue_job(&self, id: &str) -> Result<bool>;

    // -- task_logs.rs: the lines tasks log
    /// Stores one line a task logged about its job.
    fn write_task_log(&self, log: &TaskLog) -> Result<()>;

    /// Every line of one job, oldest first.
    fn task_logs(&self, job_id: &str) -> Result<Vec<TaskLog>>;

    /// Lines since `since` (ms), newest first, filtered by task and level.
    fn query_task_logs(
        &self,
        task_name: Option<&str>,
        level: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<TaskLog>>;

    // -- retention.rs: sweeps, expiry of results, the archive
    /// Deletes finished jobs completed before `before`; returns how many.
    fn purge_finished(&self, before: i64) -> Result<usize>;

    /// Deletes what the retention windows say is too old and records the windows used.
    fn sweep(&self, retention: &Retention, now: i64) -> Result<RetentionCounts>;

    /// Deletes finished jobs given a `result_ttl` at enqueue once it has run out since their
    /// completion (whatever the retention windows say); returns how many.
    fn expire_results(&self, now: i64) -> Result<usize>;

    /// What `sweep` would delete now, without deleting.
    fn retention_preview(&self, retention: &Retention, now: i64) -> Result<RetentionCounts>;

    /// The windows of the last sweep, if any worker has swept.
    fn retention_report(&self) -> Result<Option<RetentionReport>>;

    /// Moves finished jobs completed before `before` to the archive; returns how many.
    fn archive(&self, before: i64, now: i64) -> Result<usize>;

    /// Archived jobs, newest first.
    fn list_archived(&self, limit: i64, offset: i64) -> Result<Vec<JobRecord>>;

    /// Archived jobs inserted before the job with seq `after`, newest first.
    fn list_archived_after(&self, limit: i64, after: Option<i64>) -> Result<Vec<JobRecord>>;

    /// Deletes complete jobs finished before `before` with their errors and logs.
    fn purge_completed(&self, before: i64) -> Result<usize>;

    // -- pause.rs: paused queues
    /// Stops the claim from taking jobs of `queue` (any process); true if it was not paused.
    fn pause_queue(&self, queue: &str, now: i64) -> Result<bool>;

    /// Makes `queue` claimable again; true if it was paused.
    fn resume_queue(&self, queue: &str) -> Result<bool>;

    /// Names of the paused queues, sorted.
    fn paused_queues(&self) -> Result<Vec<String>>;

    // -- settings_kv.rs: the shared settings store (small versioned rows every process
    // reads: webhook subscriptions, circuit-breaker and retry-budget state)
    /// `(value, version)` stored under `key`.
    fn setting_get(&self, key: &str) -> Result<Option<(String, i64)>>;

    /// Stores `value` under `key`. `expected`: None writes unconditionally, `Some(0)` only
    /// if the key is absent, `Some(v)` only if the stored version is `v`. Returns the new
    /// version, or None when `expected` did not hold (nothing written).
    fn setting_put(&self, key: &str, value: &str, expected: Option<i64>) -> Result<Option<i64>>;

    /// Removes `key`; true if it was there.
    fn setting_delete(&self, key: &str) -> Result<bool>;

    /// `(key, value, version)` of the keys starting with `prefix`, by key.
    fn settings_list(&self, prefix: &str) -> Result<Vec<(String, String, i64)>>;

    // -- pages.rs: keyset pages and dashboard reads
    /// Up to `limit` jobs matching `filter` (its limit and offset are ignored), newest
    /// first, strictly after the opaque cursor `after`. Indexed: no offset scan.
    fn list_jobs_after(
        &self,
        filter: &JobFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<JobPage<JobRecord>>;

    /// Dead letters, newest first, strictly after the opaque cursor `after`.
    fn dead_letters_after(&self, after: Option<&str>, limit: i64) -> Result<JobPage<DeadLetter>>;

    /// Jobs completed since `since`, counted per `bucket_ms` interval: `(bucket start, n)`
    /// for each non-empty bucket, oldest first.
    fn throughput(&self, since: i64, bucket_ms: i64) -> Result<Vec<(i64, i64)>>;

    /// A job's stored argument bytes, or None if it does not exist.
    fn job_payload(&self, id: &str) -> Result<Option<Vec<u8>>>;

    // -- limits.rs: bounded queues, rate limits and concurrency caps
    /// `enqueue`, failing with `Error::QueueFull` (and storing nothing) if a queue of `jobs`
    /// would then hold more than `max_pending` pending jobs. The check runs inside the
    /// insert transaction.
    fn enqueue_bounded(&self, jobs: &[NewJob], max_pending: i64) -> Result<Vec<String>>;

    /// Stores the rate limits and concurrency caps of a worker's tasks (and drops stored
    /// limits of its `unlimited` tasks), then reloads them. From then on `claim` starts a
    /// limited task's job only when its bucket has a token and it runs below its cap,
    /// counted across every process on the store.
    fn register_task_limits(&self, limits: &[TaskLimit], unlimited: &[String]) -> Result<()>;

    /// Reads the limits other processes registered (called on the maintenance timer).
    fn reload_task_limits(&self) -> Result<()>;

    /// When a job the last claim stepped over for lack of a rate token gets one (epoch ms).
    fn limited_ready_at(&self) -> Option<i64>;

    // -- periodic.rs: schedules
    /// Stores schedules, or updates them by name (a changed cron or zone is due again from
    /// `now`; otherwise the next due time and paused state are kept).
    fn register_periodic(&self, specs: &[PeriodicSpec], now: i64) -> Result<()>;

    fn list_periodic(&self) -> Result<Vec<PeriodicInfo>>;

    /// Pauses or resumes a schedule (`Error::NotFound` if unknown); a resumed one is next due
    /// after `now`, without catching up.
    fn set_periodic_enabled(&self, name: &str, enabled: bool, now: i64) -> Result<()>;

    fn delete_periodic(&self, name: &str) -> Result<()>;

    /// Fires every schedule due at `now`, each exactly once across processes (the move of
    /// `next_run` from its due time and the job's insert are one transaction), with one
    /// catch-up job at most for missed times. Returns the jobs enqueued and the earliest
    /// due time left.
    fn fire_periodic(&self, now: i64) -> Result<(usize, Option<i64>)>;

    // -- links.rs: links between jobs (only jobs that use them go through these)
    /// Inserts jobs with dependencies, notes or an expiry in one transaction (`links[i]`
    /// belongs to `jobs[i]`). A dependency on a job that does not exist fails the whole
    /// batch with `Error::NotFound`. A job whose parents are not all complete is not
    /// claimable until they are; one whose parent ended failed, dead or cancelled is
    /// cancelled. Every write that ends a job applies these rules in its own transaction.
    /// `max_pending` bounds queues as `enqueue_bounded` does (`(queue, bound)`; a queue not
    /// named is unbounded), and a job whose `unique_key` a live job holds is that job.
    fn enqueue_linked(
        &self,
        jobs: &[NewJob],
        links: &[JobLinks],
        max_pending: &[(String, i64)],
    ) -> Result<Vec<String>>;

    /// `(dependencies, dependents)` of a job, as ids.
    fn job_links(&self, id: &str) -> Result<(Vec<String>, Vec<String>)>;

    // -- job_control.rs: expiry, replay, cancel of a running job
    /// Flags a running job for cooperative cancellation; false if it is not running. A
    /// flagged job whose run ends in failure ends `cancelled` (no retry, no dead letter).
    fn request_cancel(&self, id: &str) -> Result<bool>;

    /// Whether the job was flagged by `request_cancel`.
    fn cancel_requested(&self, id: &str) -> Result<bool>;

    /// Cancels pending jobs past their expiry time; returns how many.
    fn expire_due(&self, now: i64) -> Result<usize>;

    /// Enqueues a copy of a job (task, payload, options, metadata, notes); the new id.
    fn replay(&self, id: &str, now: i64) -> Result<String>;
}
