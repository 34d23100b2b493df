//! Bindings of the worker: the registry listing, running the engine until shutdown
//! (`run_worker`, its stop requests), and running one job in the calling thread
//! (`process_one`, `execute`).

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::convert::{list, worker_dict};
use super::logs::deliver;
use super::queue::PyQueueCore;
use super::queue_pool::{pool_runner, pool_stop, PreforkArgs, PyAsyncLane};
use super::queue_retention::{retention_windows, RetentionArg};
use super::runner::PyRunner;
use super::units::{millis, secs};
use super::worker_wait::WorkerWait;
use crate::config::WorkerConfig;
use crate::engine::local::{self, LocalRun, LocalWorker};
use crate::engine::runner::Runner;
use crate::engine::Engine;
use crate::error::Error;
use crate::job::now_ms;

/// How long a forced stop waits for running jobs to be put back before returning.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(3);
/// Bounds the Python side enforces too (`taskito/_settings.py`), repeated for direct callers.
const MAX_WORKERS: usize = 4096;
const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;

#[pymethods]
impl PyQueueCore {
    /// The worker registry.
    fn workers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage.clone();
        let workers = py.detach(move || storage.workers())?;
        list(py, &workers, worker_dict)
    }

    /// Deletes finished jobs older than `older_than` seconds; returns how many.
    fn purge_finished(&self, py: Python<'_>, older_than: f64) -> PyResult<usize> {
        let before = now_ms().saturating_sub(millis("older_than", older_than)?);
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.purge_finished(before))?)
    }

    /// Runs the engine until shutdown; returns the number of jobs processed.
    #[pyo3(signature = (dispatch, workers, queues, worker_id, hostname, pid, poll_interval_ms, drain_timeout, run_once=false, max_jobs=None, heartbeat_interval=2.0, stale_after=10.0, retention=None, timeout_grace=1.0, async_lane=None, prefork=None))]
    #[allow(clippy::too_many_arguments)]
    fn run_worker(
        &self,
        py: Python<'_>,
        dispatch: Py<PyAny>,
        workers: usize,
        queues: Option<Vec<String>>,
        worker_id: String,
        hostname: String,
        pid: i64,
        poll_interval_ms: u64,
        drain_timeout: f64,
        run_once: bool,
        max_jobs: Option<u64>,
        heartbeat_interval: f64,
        stale_after: f64,
        retention: Option<RetentionArg>,
        timeout_grace: f64,
        async_lane: Option<Py<PyAsyncLane>>,
        prefork: Option<PreforkArgs>,
    ) -> PyResult<u64> {
        if workers > MAX_WORKERS {
            return Err(
                Error::invalid("workers", format!("{workers} (at most {MAX_WORKERS})")).into(),
            );
        }
        if !(1..=MAX_POLL_INTERVAL_MS).contains(&poll_interval_ms) {
            return Err(Error::invalid(
                "scheduler_poll_interval_ms",
                format!("{poll_interval_ms} (must be from 1 to {MAX_POLL_INTERVAL_MS})"),
            )
            .into());
        }
        let mut config = WorkerConfig::new(worker_id, workers);
        config.hostname = hostname;
        config.pid = pid;
        config.queues = queues;
        config.poll_interval = Duration::from_millis(poll_interval_ms);
        config.drain_timeout = secs("drain_timeout", drain_timeout)?;
        config.run_once = run_once;
        config.max_jobs = max_jobs;
        config.heartbeat_interval = secs("heartbeat_interval", heartbeat_interval)?;
        config.stale_after = secs("stale_after", stale_after)?;
        config.retention = retention
            .map(retention_windows)
            .transpose()?
            .unwrap_or_default();
        config.timeout_grace = secs("timeout_grace", timeout_grace)?;
        let lane = async_lane.map(|l| l.get().inner.clone());
        let (runner, children) = match prefork {
            None => (
                Arc::new(PyRunner::new(py, dispatch)?) as Arc<dyn Runner>,
                None,
            ),
            Some(spec) => pool_runner(py, spec, config.timeout_grace)?,
        };
        let (storage, control) = (self.storage.clone(), self.control.clone());
        deliver(py)?;
        let started = py.detach(move || Engine::start_with(storage, runner, config, control, lane));
        let delivered = deliver(py);
        let engine = match started {
            Ok(e) => e,
            Err(e) => {
                pool_stop(&children);
                return Err(e.into());
            }
        };
        let mut delivered = Some(delivered);
        let mut waiting = WorkerWait::start(py);
        loop {
            // This thread holds the GIL anyway: it hands the engine's records to logging.
            // A signal handler may run (and raise) while that runs Python code.
            let checked = match delivered.take() {
                Some(d) => d,
                None => {
                    let done = py.detach(|| waiting.wait(&engine));
                    let d = deliver(py);
                    waiting.delivered();
                    if done && d.is_ok() {
                        break;
                    }
                    d
                }
            };
            if let Err(e) = checked.and_then(|_| py.check_signals()) {
                waiting.finish(py);
                // A signal handler raised (a second Ctrl-C): put running jobs back and
                // return now, finishing the clean-up in the background.
                self.control.force_stop();
                py.detach(|| {
                    // Wait (boundedly) for the put-back to be written, so a process that
                    // exits right after this still leaves its jobs pending.
                    let (done_tx, done_rx) = std::sync::mpsc::channel();
                    let children = children.clone();
                    std::thread::spawn(move || {
                        engine.join();
                        pool_stop(&children);
                        let _ = done_tx.send(());
                    });
                    let _ = done_rx.recv_timeout(FORCED_STOP_WAIT);
                });
                let _ = deliver(py);
                return Err(e);
            }
        }
        waiting.finish(py);
        let processed = py.detach(move || {
            let n = engine.join();
            pool_stop(&children);
            n
        });
        deliver(py)?;
        Ok(processed)
    }

    /// Clears an earlier stop request: called as a worker run begins, before it installs
    /// its signal handlers, so a stop asked for at any point after this is honoured.
    fn arm(&self) {
        self.control.arm();
    }

    /// Asks a running worker of this queue to drain and return. A no-op when none runs.
    fn request_shutdown(&self) {
        self.control.request_shutdown();
    }

    /// Runs the next ready job in this thread. Returns `(job_id, status, error, traceback)`
    /// or None when nothing is ready.
    #[pyo3(signature = (dispatch, queues, worker_id, hostname, pid, ident, heartbeat_interval = 2.0))]
    #[allow(clippy::too_many_arguments)]
    fn process_one(
        &self,
        py: Python<'_>,
        dispatch: Py<PyAny>,
        queues: Option<Vec<String>>,
        worker_id: String,
        hostname: String,
        pid: i64,
        ident: u64,
        heartbeat_interval: f64,
    ) -> PyResult<Option<Py<PyAny>>> {
        let runner = PyRunner::new(py, dispatch)?;
        // The queue's own interval: a fixed one could exceed the `stale_after` of workers
        // elsewhere, which would then take the job for an orphan while it runs here.
        let heartbeat_interval = secs("heartbeat_interval", heartbeat_interval)?;
        let who = LocalWorker {
            worker_id,
            hostname,
            pid,
            queues,
            heartbeat_interval,
        };
        let storage = self.storage.clone();
        deliver(py)?;
        let run = py.detach(|| local::process_one(storage, &runner, &who, ident));
        deliver(py)?;
        let run = run?;
        self.control.results_committed();
        run.map(|r| local_result(py, r)).transpose()
    }

    /// Runs the job `job_id` in this thread whatever its status; returns
    /// `(job_id, status, error, traceback)`, or None if no such job can be run.
    #[pyo3(signature = (dispatch, job_id, worker_id, hostname, pid, ident, heartbeat_interval = 2.0))]
    #[allow(clippy::too_many_arguments)]
    fn execute(
        &self,
        py: Python<'_>,
        dispatch: Py<PyAny>,
        job_id: String,
        worker_id: String,
        hostname: String,
        pid: i64,
        ident: u64,
        heartbeat_interval: f64,
    ) -> PyResult<Option<Py<PyAny>>> {
        let runner = PyRunner::new(py, dispatch)?;
        // The queue's own interval: a fixed one could exceed the `stale_after` of workers
        // elsewhere, which would then take the job for an orphan while it runs here.
        let heartbeat_interval = secs("heartbeat_interval", heartbeat_interval)?;
        let who = LocalWorker {
            worker_id,
            hostname,
            pid,
            queues: None,
            heartbeat_interval,
        };
        let storage = self.storage.clone();
        deliver(py)?;
        let run = py.detach(|| local::execute(storage, &runner, &who, &job_id, ident));
        deliver(py)?;
        let run = run?;
        self.control.results_committed();
        run.map(|r| local_result(py, r)).transpose()
    }
}

fn local_result(py: Python<'_>, run: LocalRun) -> PyResult<Py<PyAny>> {
    use crate::job::Outcome;
    let (error, traceback): (Option<String>, Option<String>) = match run.outcome {
        Outcome::Complete(_) => (None, None),
        Outcome::Failed {
            error, traceback, ..
        } => (Some(error), Some(traceback)),
    };
    Ok((run.job_id, run.status.as_str(), error, traceback)
        .into_pyobject(py)?
        .into_any()
        .unbind())
}
