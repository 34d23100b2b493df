//! The SQLite store: `impl Storage` with one forwarding line per method, each into the file
//! of its area (the same file names as `postgres/`). `store.rs` opens the file and owns the
//! connections; `rows.rs` is the ground floor every area builds on; `claim.rs` is the hot
//! path; `connection.rs`, `schema.rs`, `wake.rs`, `change.rs` and `wal_index.rs` are what
//! only SQLite has.

mod admin;
mod change;
mod claim;
mod connection;
mod inspect;
mod job_control;
mod limits;
mod links;
mod pages;
mod pause;
mod periodic;
mod retention;
mod rows;
mod schema;
mod settings_kv;
mod store;
mod task_logs;
mod wake;
mod wal_index;
mod workers;

pub use schema::VERSION as SCHEMA_VERSION;
pub use store::{Durability, SqliteStorage};
pub use wake::ENV_SWITCH as WAKE_ENV_SWITCH;

use std::sync::Arc;

use wake::Kind;

use crate::error::Result;
use crate::job::{
    ClaimedJob, DeadLetter, ErrorRecord, JobFilter, JobLinks, JobRecord, JobStatus, NewJob,
    StoredOutcome, TaskLog, WorkerBeat, WorkerInfo, WorkerKey,
};
use crate::retention::{Retention, RetentionCounts, RetentionReport};
use crate::storage::{
    ChangeProbe, JobPage, PeriodicInfo, PeriodicSpec, QueueCounts, Storage, TaskFilter, TaskLimit,
    WakeSource, Write,
};

impl Storage for SqliteStorage {
    fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let now = crate::job::now_ms();
        self.write(|c| claim::enqueue(c, jobs, now))
            .inspect(|_| self.hints.notify(Kind::Work))
    }

    fn enqueue_bounded(&self, jobs: &[NewJob], max_pending: i64) -> Result<Vec<String>> {
        let now = crate::job::now_ms();
        self.write(|c| limits::enqueue_bounded(c, jobs, max_pending, now))
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
        self.write(|c| claim::claim_by_id(c, id, owner, now))
    }

    fn record_start(&self, id: &str, token: i64, thread_id: &str) -> Result<bool> {
        self.write(|c| claim::record_start(c, id, token, thread_id))
    }

    fn record(&self, writes: &[Write], now: i64) -> Result<usize> {
        if writes.is_empty() {
            return Ok(0);
        }
        self.write(|c| claim::record(c, writes, now))
            .inspect(|_| self.hint_after_record(writes))
    }

    fn wake_source(&self, _worker_id: &str) -> Result<Option<Box<dyn WakeSource>>> {
        Ok(wake::listen(
            self.path(),
            self.in_memory(),
            &self.hints,
            Kind::Work,
        ))
    }

    fn result_wake_source(&self) -> Result<Option<Box<dyn WakeSource>>> {
        Ok(wake::listen(
            self.path(),
            self.in_memory(),
            &self.hints,
            Kind::Results,
        ))
    }

    fn next_due(&self, queues: Option<&[String]>, now: i64) -> Result<Option<i64>> {
        self.read(|c| claim::next_due(c, queues, now))
    }

    fn change_probe(&self) -> Result<Box<dyn ChangeProbe>> {
        self.new_change_probe()
    }

    fn close(&self) {
        self.pool.close();
    }

    fn checkpoint(&self) -> Result<()> {
        self.checkpoint_wal()
    }

    fn register_worker(&self, info: &WorkerInfo) -> Result<()> {
        self.write(|c| workers::register_worker(c, info))
    }
    fn heartbeat(&self, who: &WorkerKey, status: &str, now: i64) -> Result<()> {
        self.write(|c| workers::heartbeat(c, who, status, now))
    }
    fn deregister_worker(&self, who: &WorkerKey, now: i64) -> Result<()> {
        self.write(|c| workers::deregister_worker(c, who, now))
    }
    fn worker_beats(&self) -> Result<Vec<WorkerBeat>> {
        self.read(|c| workers::worker_beats(c))
    }
    fn recover_workers(&self, dead: &[WorkerBeat], now: i64) -> Result<usize> {
        let n = self.write(|c| workers::recover_workers(c, dead, now))?;
        if n > 0 {
            self.hints.notify(Kind::Work);
        }
        Ok(n)
    }
    fn purge_finished(&self, before: i64) -> Result<usize> {
        self.write(|c| retention::purge_finished(c, before))
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
        self.read(|c| workers::workers(c))
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
        self.write(|c| limits::register(c, limits, unlimited))?;
        self.reload_task_limits()
    }
    fn reload_task_limits(&self) -> Result<()> {
        let map = self.read(|c| limits::load(c))?;
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
        self.write(|c| links::enqueue_linked(c, jobs, links, max_pending, now))
            .inspect(|_| self.hints.notify(Kind::Work))
    }
    fn job_links(&self, id: &str) -> Result<(Vec<String>, Vec<String>)> {
        self.read(|c| links::links_of(c, id))
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
