//! Running a job in the calling thread, outside the engine: `process_one` (the next ready
//! job) and `execute` (one job by id). The caller is registered as a worker and heartbeats
//! while the job runs, so stale-worker recovery leaves the job alone; the outcome is
//! decided and recorded exactly as the result handler would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::engine::events::JobRef;
use crate::engine::results::decide;
use crate::engine::runner::Runner;
use crate::error::Result;
use crate::job::{now_ms, ClaimedJob, JobStatus, Outcome, WorkerInfo, WorkerKey};
use crate::storage::{Storage, Write};

/// Who runs the job, for the registry and the job's `worker_id`.
#[derive(Debug, Clone)]
pub struct LocalWorker {
    pub worker_id: String,
    pub hostname: String,
    pub pid: i64,
    pub queues: Option<Vec<String>>,
    pub heartbeat_interval: Duration,
}

/// What happened to a job run locally.
pub struct LocalRun {
    pub job_id: String,
    pub outcome: Outcome,
    pub status: JobStatus,
}

/// The incarnation of this process's inline workers: their ids name the process and the
/// calling thread already, so repeated calls from one thread reuse one registry row.
fn inline_incarnation() -> i64 {
    static INCARNATION: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *INCARNATION.get_or_init(|| fastrand::i64(1..i64::MAX))
}

impl LocalWorker {
    fn key(&self) -> WorkerKey {
        WorkerKey::new(self.worker_id.clone(), inline_incarnation())
    }
}

/// Keeps the registry row fresh from a side thread until dropped.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Heartbeat {
    fn start(storage: Arc<dyn Storage>, who: &LocalWorker) -> Result<Heartbeat> {
        let now = now_ms();
        let key = who.key();
        storage.register_worker(&WorkerInfo {
            worker_id: who.worker_id.clone(),
            incarnation: key.incarnation,
            hostname: who.hostname.clone(),
            pid: who.pid,
            queues: who
                .queues
                .as_ref()
                .map(|q| q.join(","))
                .unwrap_or_else(|| "*".into()),
            started_at: now,
            last_heartbeat: now,
            status: "active".into(),
        })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, every) = (stop.clone(), who.heartbeat_interval);
        let handle = thread::Builder::new()
            .name("taskito-heartbeat".into())
            .spawn(move || {
                let mut last = Instant::now();
                while !flag.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(50));
                    if last.elapsed() >= every {
                        let _ = storage.heartbeat(&key, "active", now_ms());
                        last = Instant::now();
                    }
                }
                let _ = storage.deregister_worker(&key, now_ms());
            })
            .ok();
        Ok(Heartbeat { stop, handle })
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run_claimed(
    storage: &Arc<dyn Storage>,
    runner: &dyn Runner,
    who: &LocalWorker,
    job: ClaimedJob,
    ident: u64,
) -> Result<LocalRun> {
    let thread_id = format!("{}-0", who.worker_id);
    let job_ref = JobRef::from(&job);
    storage.record(
        &[Write::Started {
            id: job.id.clone(),
            token: job.claim_token,
            thread_id: thread_id.clone(),
        }],
        now_ms(),
    )?;
    let outcome = runner.run(&job, &thread_id, ident);
    let write = decide(&job_ref, &thread_id, outcome.clone(), now_ms());
    let status = match &write {
        Write::Complete { .. } => JobStatus::Complete,
        Write::Retry { .. } => JobStatus::Pending,
        Write::Fail { status, .. } => *status,
        _ => JobStatus::Running,
    };
    storage.record(&[write], now_ms())?;
    Ok(LocalRun {
        job_id: job.id,
        outcome,
        status,
    })
}

/// Claims the next ready job of `who.queues` and runs it here; `None` if nothing is ready.
pub fn process_one(
    storage: Arc<dyn Storage>,
    runner: &dyn Runner,
    who: &LocalWorker,
    ident: u64,
) -> Result<Option<LocalRun>> {
    let _beat = Heartbeat::start(storage.clone(), who)?;
    let mut claimed = storage.claim(who.queues.as_deref(), &who.key(), 1, now_ms())?;
    match claimed.pop() {
        Some(job) => run_claimed(&storage, runner, who, job, ident).map(Some),
        None => Ok(None),
    }
}

/// Runs the job `id` here whatever its status and schedule; `None` if no such job exists
/// or it is running elsewhere.
pub fn execute(
    storage: Arc<dyn Storage>,
    runner: &dyn Runner,
    who: &LocalWorker,
    id: &str,
    ident: u64,
) -> Result<Option<LocalRun>> {
    let _beat = Heartbeat::start(storage.clone(), who)?;
    match storage.claim_by_id(id, &who.key(), now_ms())? {
        Some(job) => run_claimed(&storage, runner, who, job, ident).map(Some),
        None => Ok(None),
    }
}
