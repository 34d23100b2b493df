//! How one worker process runs: sizes, intervals and identity, checked before anything starts.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::retention::Retention;

/// Settings of one engine run (`run_worker`, the CLI worker).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This process's id in the worker registry; threads are `<worker_id>-<n>`.
    pub worker_id: String,
    pub hostname: String,
    pub pid: i64,
    /// Number of worker threads.
    pub workers: usize,
    /// Queues served; `None` serves all.
    pub queues: Option<Vec<String>>,
    /// The scheduler's fallback poll (wake-ups make most claims sooner).
    pub poll_interval: Duration,
    /// Bound on waiting for running jobs at shutdown.
    pub drain_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// A worker silent for this long is presumed dead and its jobs put back.
    pub stale_after: Duration,
    /// How long each kind of stored row is kept (swept by the maintenance timer).
    pub retention: Retention,
    /// After interrupting a timed-out job, how long its thread may take to give it back
    /// before it is written off.
    pub timeout_grace: Duration,
    /// Stop when nothing is ready and nothing runs.
    pub run_once: bool,
    /// Stop after this many jobs have been claimed and finished.
    pub max_jobs: Option<u64>,
}

impl WorkerConfig {
    /// Defaults for everything but identity.
    pub fn new(worker_id: impl Into<String>, workers: usize) -> WorkerConfig {
        WorkerConfig {
            worker_id: worker_id.into(),
            hostname: String::new(),
            pid: std::process::id() as i64,
            workers,
            queues: None,
            poll_interval: Duration::from_millis(50),
            drain_timeout: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
            retention: Retention::default(),
            timeout_grace: Duration::from_secs(1),
            run_once: false,
            max_jobs: None,
        }
    }

    /// Rejects settings the engine cannot run with, naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.workers == 0 {
            return Err(Error::invalid("workers", "must be at least 1"));
        }
        if self.worker_id.is_empty() {
            return Err(Error::invalid("worker_id", "must not be empty"));
        }
        if let Some(qs) = &self.queues {
            if qs.is_empty() || qs.iter().any(|q| q.is_empty()) {
                return Err(Error::invalid("queues", "queue names must not be empty"));
            }
        }
        if self.poll_interval.is_zero() {
            return Err(Error::invalid(
                "scheduler_poll_interval_ms",
                "must be positive",
            ));
        }
        if self.stale_after <= self.heartbeat_interval {
            return Err(Error::invalid(
                "stale_after",
                "must be longer than the heartbeat interval",
            ));
        }
        if self.max_jobs == Some(0) {
            return Err(Error::invalid("max_jobs", "must be at least 1"));
        }
        Ok(())
    }

    /// The queues as the registry shows them: comma-separated, `*` for all.
    pub fn queues_label(&self) -> String {
        match &self.queues {
            Some(qs) => qs.join(","),
            None => "*".to_string(),
        }
    }
}
