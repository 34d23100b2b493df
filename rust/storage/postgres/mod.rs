//! The PostgreSQL store: `impl Storage` with one forwarding line per method, each into the
//! file of its area (the same file names as `sqlite/`). `store.rs` opens the store;
//! `rows.rs` is the ground floor every area builds on; `claim.rs` is the hot path;
//! `pool.rs` (connections), `settings.rs` (URL and schema), `schema.rs` (migrations),
//! `wake.rs` (LISTEN/NOTIFY) and `bounds.rs` (`max_pending` locks) are what only
//! PostgreSQL has.

mod admin;
mod bounds;
mod claim;
mod inspect;
mod job_control;
mod limits;
mod links;
mod pages;
mod pause;
mod periodic;
mod pg_url;
pub mod plan;
mod pool;
mod retention;
mod rows;
mod schema;
mod settings;
mod settings_kv;
mod store;
mod task_logs;
mod tls;
mod wake;
mod workers;

pub use pool::redact_url;
pub use schema::VERSION as PG_SCHEMA_VERSION;
pub use store::{PgOptions, PgStorage, DEFAULT_POOL_SIZE};

use std::sync::Arc;

use store::age_of;

use crate::error::Result;
use crate::job::{
    now_ms, ClaimedJob, DeadLetter, ErrorRecord, JobFilter, JobLinks, JobRecord, JobStatus, NewJob,
    StoredOutcome, TaskLog, WorkerBeat, WorkerInfo, WorkerKey,
};
use crate::retention::{Retention, RetentionCounts, RetentionReport};
use crate::storage::{
    ChangeProbe, JobPage, PeriodicInfo, PeriodicSpec, QueueCounts, Storage, TaskFilter, TaskLimit,
    WakeSource, Write,
};

impl Storage for PgStorage {
    fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<String>> {
        let now = now_ms();
        let notify = self.notify.as_deref();
        self.with(|c, s| claim::enqueue(c, s, jobs, now, notify))
    }

    fn claim(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        _now: i64,
    ) -> Result<Vec<ClaimedJob>> {
        self.claim_where(queues, owner, limit, None)
    }

    fn claim_filtered(
        &self,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
        _now: i64,
        tasks: TaskFilter<'_>,
    ) -> Result<Vec<ClaimedJob>> {
        self.claim_where(queues, owner, limit, Some(tasks))
    }

    fn claim_by_id(&self, id: &str, owner: &WorkerKey, _now: i64) -> Result<Option<ClaimedJob>> {
        self.with(|c, s| claim::claim_by_id(c, s, id, owner))
    }

    fn record_start(&self, id: &str, token: i64, thread_id: &str) -> Result<bool> {
        self.with(|c, s| claim::record_start(c, s, id, token, thread_id))
    }

    fn record(&self, writes: &[Write], now: i64) -> Result<usize> {
        if writes.is_empty() {
            return Ok(0);
        }
        self.with(|c, s| claim::record(c, s, writes, now))
    }

    fn change_probe(&self) -> Result<Box<dyn ChangeProbe>> {
        // Other processes' enqueues arrive through `wake_source`; results through polling.
        Ok(Box::new(store::NoProbe))
    }

    fn wake_source(&self, _worker_id: &str) -> Result<Option<Box<dyn WakeSource>>> {
        Ok(self.notify.as_ref().map(|_| {
            Box::new(wake::Listener::new(self.pool.settings().clone())) as Box<dyn WakeSource>
        }))
    }

    fn close(&self) {
        self.pool.close();
    }

    fn register_worker(&self, info: &WorkerInfo) -> Result<()> {
        self.with(|c, s| workers::register_worker(c, s, info))
    }
    fn heartbeat(&self, who: &WorkerKey, status: &str, _now: i64) -> Result<()> {
        self.with(|c, s| workers::heartbeat(c, s, who, status))
    }
    fn deregister_worker(&self, who: &WorkerKey, _now: i64) -> Result<()> {
        self.with(|c, s| workers::deregister_worker(c, s, who))
    }
    fn worker_beats(&self) -> Result<Vec<WorkerBeat>> {
        self.with(workers::worker_beats)
    }
    fn recover_workers(&self, dead: &[WorkerBeat], _now: i64) -> Result<usize> {
        self.with(|c, s| workers::recover_workers(c, s, dead))
    }
    fn purge_finished(&self, before: i64) -> Result<usize> {
        let age = age_of(before);
        self.with(|c, s| retention::purge_finished(c, s, age))
    }
    fn get_job(&self, id: &str) -> Result<Option<JobRecord>> {
        self.with(|c, s| inspect::get_job(c, s, id))
    }
    fn status(&self, id: &str) -> Result<Option<JobStatus>> {
        self.with(|c, s| inspect::status(c, s, id))
    }
    fn get_outcome(&self, id: &str) -> Result<Option<StoredOutcome>> {
        self.with(|c, s| inspect::get_outcome(c, s, id))
    }
    fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.with(|c, s| inspect::list_jobs(c, s, filter))
    }
    fn counts(&self) -> Result<QueueCounts> {
        self.with(inspect::counts)
    }
    fn oldest_pending(&self, now: i64) -> Result<Vec<(String, i64)>> {
        self.with(|c, s| inspect::oldest_pending(c, s, now))
    }
    fn job_errors(&self, id: &str) -> Result<Vec<ErrorRecord>> {
        self.with(|c, s| inspect::job_errors(c, s, id))
    }
    fn cancel(&self, id: &str, _now: i64) -> Result<bool> {
        self.with(|c, s| inspect::cancel(c, s, id))
    }
    fn set_progress(&self, id: &str, progress: i64) -> Result<()> {
        self.with(|c, s| inspect::set_progress(c, s, id, progress))
    }
    fn dead_letters(&self, limit: i64, offset: i64) -> Result<Vec<DeadLetter>> {
        self.with(|c, s| inspect::dead_letters(c, s, limit, offset))
    }
    fn retry_dead(&self, dead_id: &str, now: i64) -> Result<String> {
        let notify = self.notify.as_deref();
        self.with(|c, s| inspect::retry_dead(c, s, dead_id, now, notify))
    }
    fn purge_dead(&self, before: i64) -> Result<usize> {
        let age = age_of(before);
        self.with(|c, s| inspect::purge_dead(c, s, age))
    }
    fn workers(&self) -> Result<Vec<WorkerInfo>> {
        self.with(workers::workers)
    }
    fn delete_dead(&self, dead_id: &str) -> Result<bool> {
        self.with(|c, s| admin::delete_dead(c, s, dead_id))
    }
    fn requeue_job(&self, id: &str) -> Result<bool> {
        self.with(|c, s| admin::requeue_job(c, s, id))
    }
    fn write_task_log(&self, log: &TaskLog) -> Result<()> {
        self.with(|c, s| task_logs::write_task_log(c, s, log))
    }
    fn task_logs(&self, job_id: &str) -> Result<Vec<TaskLog>> {
        self.with(|c, s| task_logs::task_logs(c, s, job_id))
    }
    fn query_task_logs(
        &self,
        task_name: Option<&str>,
        level: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<TaskLog>> {
        self.with(|c, s| task_logs::query_task_logs(c, s, task_name, level, since, limit))
    }
    fn sweep(&self, r: &Retention, now: i64) -> Result<RetentionCounts> {
        self.with(|c, s| retention::sweep(c, s, r, now))
    }
    fn expire_results(&self, _now: i64) -> Result<usize> {
        self.with(retention::expire_results)
    }
    fn retention_preview(&self, r: &Retention, _now: i64) -> Result<RetentionCounts> {
        self.with(|c, s| retention::preview(c, s, r))
    }
    fn retention_report(&self) -> Result<Option<RetentionReport>> {
        self.with(retention::report)
    }
    fn archive(&self, before: i64, now: i64) -> Result<usize> {
        let age = (now - before).max(0);
        self.with(|c, s| retention::archive(c, s, age))
    }
    fn list_archived(&self, limit: i64, offset: i64) -> Result<Vec<JobRecord>> {
        self.with(|c, s| retention::list_archived(c, s, limit, offset))
    }
    fn list_archived_after(&self, limit: i64, after: Option<i64>) -> Result<Vec<JobRecord>> {
        self.with(|c, s| retention::list_archived_after(c, s, limit, after))
    }
    fn purge_completed(&self, before: i64) -> Result<usize> {
        let age = age_of(before);
        self.with(|c, s| retention::purge_completed(c, s, age))
    }
    fn pause_queue(&self, queue: &str, now: i64) -> Result<bool> {
        self.with(|c, s| pause::pause(c, s, queue, now))
    }
    fn resume_queue(&self, queue: &str) -> Result<bool> {
        self.with(|c, s| pause::resume(c, s, queue))
    }
    fn paused_queues(&self) -> Result<Vec<String>> {
        self.with(pause::paused)
    }
    fn setting_get(&self, key: &str) -> Result<Option<(String, i64)>> {
        self.with(|c, s| settings_kv::get(c, s, key))
    }
    fn setting_put(&self, key: &str, value: &str, expected: Option<i64>) -> Result<Option<i64>> {
        self.with(|c, s| settings_kv::put(c, s, key, value, expected))
    }
    fn setting_delete(&self, key: &str) -> Result<bool> {
        self.with(|c, s| settings_kv::delete(c, s, key))
    }
    fn settings_list(&self, prefix: &str) -> Result<Vec<(String, String, i64)>> {
        self.with(|c, s| settings_kv::list(c, s, prefix))
    }
    fn list_jobs_after(
        &self,
        filter: &JobFilter,
        after: Option<&str>,
        limit: i64,
    ) -> Result<JobPage<JobRecord>> {
        self.with(|c, s| pages::jobs_after(c, s, filter, after, limit))
    }
    fn dead_letters_after(&self, after: Option<&str>, limit: i64) -> Result<JobPage<DeadLetter>> {
        self.with(|c, s| pages::dead_after(c, s, after, limit))
    }
    fn throughput(&self, since: i64, bucket_ms: i64) -> Result<Vec<(i64, i64)>> {
        self.with(|c, s| pages::throughput(c, s, since, bucket_ms))
    }
    fn job_payload(&self, id: &str) -> Result<Option<Vec<u8>>> {
        self.with(|c, s| pages::payload(c, s, id))
    }

    fn enqueue_bounded(&self, jobs: &[NewJob], max_pending: i64) -> Result<Vec<String>> {
        let now = now_ms();
        let notify = self.notify.as_deref();
        self.with(|c, s| limits::enqueue_bounded(c, s, jobs, now, notify, max_pending))
    }

    fn register_task_limits(&self, limits: &[TaskLimit], unlimited: &[String]) -> Result<()> {
        self.with(|c, s| limits::register(c, s, limits, unlimited))?;
        self.reload_task_limits()
    }
    fn reload_task_limits(&self) -> Result<()> {
        let map = self.with(limits::load)?;
        self.limits.set(Arc::new(map));
        Ok(())
    }
    fn limited_ready_at(&self) -> Option<i64> {
        self.limits.wake_at()
    }

    fn register_periodic(&self, specs: &[PeriodicSpec], _now: i64) -> Result<()> {
        self.with(|c, s| periodic::register(c, s, specs))
    }
    fn list_periodic(&self) -> Result<Vec<PeriodicInfo>> {
        self.with(periodic::list)
    }
    fn set_periodic_enabled(&self, name: &str, enabled: bool, _now: i64) -> Result<()> {
        self.with(|c, s| periodic::set_enabled(c, s, name, enabled))
    }
    fn delete_periodic(&self, name: &str) -> Result<()> {
        self.with(|c, s| periodic::delete(c, s, name))
    }
    fn fire_periodic(&self, _now: i64) -> Result<(usize, Option<i64>)> {
        let notify = self.notify.as_deref();
        self.with(|c, s| periodic::fire_due(c, s, notify))
    }

    fn enqueue_linked(
        &self,
        jobs: &[NewJob],
        links: &[JobLinks],
        max_pending: &[(String, i64)],
    ) -> Result<Vec<String>> {
        let now = now_ms();
        let notify = self.notify.as_deref();
        self.with(|c, s| links::enqueue_linked(c, s, jobs, links, max_pending, now, notify))
    }
    fn job_links(&self, id: &str) -> Result<(Vec<String>, Vec<String>)> {
        self.with(|c, s| links::job_links(c, s, id))
    }
    fn request_cancel(&self, id: &str) -> Result<bool> {
        self.with(|c, s| job_control::request_cancel(c, s, id))
    }
    fn cancel_requested(&self, id: &str) -> Result<bool> {
        self.with(|c, s| job_control::cancel_requested(c, s, id))
    }
    fn expire_due(&self, _now: i64) -> Result<usize> {
        self.with(job_control::expire_due)
    }
    fn replay(&self, id: &str, now: i64) -> Result<String> {
        let notify = self.notify.as_deref();
        self.with(|c, s| job_control::replay(c, s, id, now, notify))
    }
}
