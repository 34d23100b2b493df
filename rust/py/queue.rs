//! `QueueCore`: the compiled half of `taskito.Queue`. It owns the store and the control
//! handle; every call that touches SQLite or waits runs detached from the interpreter, and
//! long waits wake every 100 ms to let Python handle signals.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::convert::{dead_dict, error_dict, job_dict, worker_dict};
use super::logs::deliver;
use super::runner::PyRunner;
use super::worker_wait::WorkerWait;
use crate::config::WorkerConfig;
use crate::control::Control;
use crate::engine::Engine;
use crate::error::Error;
use crate::job::{now_ms, JobStatus, NewJob};
use crate::local::{self, LocalRun, LocalWorker};
use crate::retention::Retention;
use crate::storage::{ChangeProbe, Durability, PgOptions, PgStorage, SqliteStorage, Storage};
use crate::waker::ResultWaker;
use crate::worker::Runner;

/// How often a blocked call comes back to Python to check for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);
/// How long a forced stop waits for running jobs to be put back before returning.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(3);
/// How often a result waiter reads the store's change counter (catches other processes).
const PROBE_EVERY: Duration = Duration::from_millis(2);

/// Retention windows in seconds as Python passes them: `(archived_jobs, dead_letter,
/// task_logs, task_metrics, job_errors, defaulted)`.
pub type RetentionArg = (
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    bool,
);

/// A window in seconds as milliseconds, saturating past any clock.
fn window_ms(option: &'static str, v: Option<f64>) -> Result<Option<i64>, Error> {
    v.map(|s| {
        if !s.is_finite() && s != f64::INFINITY || s < 0.0 {
            return Err(Error::invalid(
                option,
                format!("{s} (must be a non-negative number of seconds)"),
            ));
        }
        Ok(if s * 1000.0 >= i64::MAX as f64 {
            i64::MAX
        } else {
            (s * 1000.0) as i64
        })
    })
    .transpose()
}

pub fn retention_windows(r: RetentionArg) -> Result<Retention, Error> {
    Ok(Retention {
        archived_jobs: window_ms("archived_jobs", r.0)?,
        dead_letter: window_ms("dead_letter", r.1)?,
        task_logs: window_ms("task_logs", r.2)?,
        task_metrics: window_ms("task_metrics", r.3)?,
        job_errors: window_ms("job_errors", r.4)?,
        defaulted: r.5,
    })
}
/// The longest duration the engine works with: longer ones (a timeout of 2**63 s) are
/// honoured as this, which no clock reaches, instead of overflowing `Instant` or `i64` ms.
pub(super) const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);
/// The latest time a job may be scheduled for: the end of year 9999, in epoch ms.
const LATEST_SCHEDULED_MS: i64 = 253_402_300_799_999;
/// Bounds the Python side enforces too (`taskito/_settings.py`), repeated for direct callers.
const MAX_WORKERS: usize = 4096;
const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;

/// `(status, result bytes, error)` as `get_outcome` returns it.
type OutcomeTuple<'py> = (&'static str, Option<Bound<'py, PyBytes>>, Option<String>);

#[pyclass(name = "QueueCore", module = "taskito._taskito", frozen)]
pub struct PyQueueCore {
    pub(super) storage: Arc<dyn Storage>,
    path: String,
    pub(super) control: Arc<Control>,
    probe: Mutex<Option<Box<dyn ChangeProbe>>>,
    /// Hears other processes' completions, once a result wait started it; `Some(None)`
    /// when the store has no such hints (waits then read the change probe).
    result_wake: Mutex<Option<Option<ResultWaker>>>,
}

/// A user's number of seconds as a duration: NaN, infinities and negatives are refused
/// naming the option; anything past `LONGEST` saturates to it (never a panic).
pub(super) fn secs(option: &'static str, v: f64) -> Result<Duration, Error> {
    check_secs(option, v)?;
    Ok(Duration::try_from_secs_f64(v)
        .unwrap_or(LONGEST)
        .min(LONGEST))
}

/// A user's number of seconds in whole milliseconds, saturating at `i64::MAX`.
pub(super) fn millis(option: &'static str, v: f64) -> Result<i64, Error> {
    check_secs(option, v)?;
    // `as` from f64 saturates; the product cannot be NaN for a finite, non-negative `v`.
    Ok((v * 1000.0) as i64)
}

pub(super) fn check_secs(option: &'static str, v: f64) -> Result<(), Error> {
    if !v.is_finite() || v < 0.0 {
        return Err(Error::invalid(
            option,
            format!("{v} (must be a finite, non-negative number of seconds)"),
        ));
    }
    Ok(())
}

/// A per-job result TTL in ms, refused (naming `result_ttl`) unless finite and
/// non-negative; past `LONGEST` it saturates to it, so `completed_at + ttl` never overflows.
pub(super) fn result_ttl_ms(ttl: f64) -> Result<i64, Error> {
    Ok(millis("result_ttl", ttl)?.min(LONGEST.as_millis() as i64))
}

/// `now + delay`, refused (naming `delay`) past the end of year 9999.
pub(super) fn scheduled_at(now: i64, delay: f64) -> Result<i64, Error> {
    let delay_ms = millis("delay", delay)?;
    now.checked_add(delay_ms)
        .filter(|t| *t <= LATEST_SCHEDULED_MS)
        .ok_or_else(|| {
            Error::invalid(
                "delay",
                format!("{delay} seconds places the job past the year 9999"),
            )
        })
}

pub(super) fn list<'py, T>(
    py: Python<'py>,
    items: &[T],
    f: impl Fn(Python<'py>, &T) -> PyResult<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for item in items {
        out.append(f(py, item)?)?;
    }
    Ok(out)
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

impl PyQueueCore {
    /// The store, for bindings in other files.
    pub(crate) fn storage(&self) -> Arc<dyn Storage> {
        self.storage.clone()
    }

    /// Wakes this process's scheduler (new or returned work).
    pub(crate) fn wake(&self) {
        self.control.wake.notify_one();
    }
}

#[pymethods]
impl PyQueueCore {
    /// Opens (creating or upgrading) the SQLite database at `db_path` (a file it creates gets
    /// the permission bits `file_mode`), or with `backend="postgres"` the schema `schema` of
    /// the PostgreSQL database at `db_url`.
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (db_path, durability = "normal", file_mode = 0o600, backend = "sqlite", db_url = None, schema = "taskito", pool_size = None, notify = true))]
    fn new(
        py: Python<'_>,
        db_path: String,
        durability: &str,
        file_mode: u32,
        backend: &str,
        db_url: Option<String>,
        schema: &str,
        pool_size: Option<usize>,
        notify: bool,
    ) -> PyResult<Self> {
        let (storage, path): (Arc<dyn Storage>, String) = match backend {
            "sqlite" => {
                let durability = Durability::parse(durability)?;
                let path = db_path.clone();
                let s =
                    py.detach(move || SqliteStorage::open_with_mode(&path, durability, file_mode));
                deliver(py)?;
                let s = s?;
                (Arc::new(s), db_path)
            }
            "postgres" => {
                let options = PgOptions {
                    url: db_url.ok_or_else(|| {
                        Error::invalid("db_url", "is required for the postgres backend")
                    })?,
                    schema: schema.to_string(),
                    pool_size,
                    notify,
                };
                let s = py.detach(move || PgStorage::open(&options));
                deliver(py)?;
                let s = s?;
                let shown = s.redacted_url().to_string();
                (Arc::new(s), shown)
            }
            other => {
                return Err(Error::invalid(
                    "backend",
                    format!("{other:?} (expected \"sqlite\" or \"postgres\")"),
                )
                .into())
            }
        };
        Ok(PyQueueCore {
            storage,
            path,
            control: Arc::new(Control::new()),
            probe: Mutex::new(None),
            result_wake: Mutex::new(None),
        })
    }

    /// Releases every pooled connection (the queue reconnects if used again).
    fn close(&self, py: Python<'_>) {
        let storage = self.storage.clone();
        let probe = self.probe.lock().unwrap_or_else(|p| p.into_inner()).take();
        py.detach(move || {
            drop(probe);
            storage.close();
        });
    }

    /// The database path.
    #[getter]
    fn db_path(&self) -> &str {
        &self.path
    }

    /// Stores jobs in one transaction and returns their ids; wakes this process's worker.
    /// `unique_keys` gives each payload its own key (instead of `unique_key` for all);
    /// `max_pending` refuses the whole batch if the queue would then hold more pending jobs.
    #[pyo3(signature = (task_name, payloads, queue, priority, delay, max_retries, retry_backoff, timeout, unique_key=None, metadata=None, unique_keys=None, max_pending=None, result_ttls=None))]
    #[allow(clippy::too_many_arguments)]
    fn enqueue(
        &self,
        py: Python<'_>,
        task_name: String,
        payloads: Vec<Py<PyBytes>>,
        queue: String,
        priority: i64,
        delay: f64,
        max_retries: i64,
        retry_backoff: f64,
        timeout: f64,
        unique_key: Option<String>,
        metadata: Option<String>,
        unique_keys: Option<Vec<Option<String>>>,
        max_pending: Option<i64>,
        result_ttls: Option<Vec<Option<f64>>>,
    ) -> PyResult<Vec<String>> {
        if unique_keys
            .as_ref()
            .is_some_and(|k| k.len() != payloads.len())
        {
            return Err(Error::invalid("unique_keys", "must have one entry per job").into());
        }
        if result_ttls
            .as_ref()
            .is_some_and(|t| t.len() != payloads.len())
        {
            return Err(Error::invalid("result_ttl_list", "must have one entry per job").into());
        }
        // None (the common case) allocates nothing.
        let result_ttls_ms = result_ttls
            .map(|ttls| {
                ttls.into_iter()
                    .map(|t| t.map(result_ttl_ms).transpose())
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let scheduled_at = scheduled_at(now_ms(), delay)?;
        let timeout_ms = (millis("timeout", timeout)?.max(1)).min(LONGEST.as_millis() as i64);
        check_secs("retry_backoff", retry_backoff)?;
        let jobs: Vec<NewJob> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| NewJob {
                task_name: task_name.clone(),
                queue: queue.clone(),
                payload: p.as_bytes(py).to_vec(),
                priority,
                scheduled_at,
                max_retries,
                retry_backoff,
                timeout_ms,
                unique_key: match &unique_keys {
                    Some(keys) => keys[i].clone(),
                    None => unique_key.clone(),
                },
                metadata: metadata.clone(),
                result_ttl_ms: result_ttls_ms.as_ref().and_then(|t| t[i]),
            })
            .collect();
        let storage = self.storage.clone();
        let ids = py.detach(move || match max_pending {
            Some(max) => storage.enqueue_bounded(&jobs, max),
            None => storage.enqueue(&jobs),
        })?;
        self.control.wake.notify_one();
        Ok(ids)
    }

    /// The job as a dict, or None.
    fn get_job<'py>(&self, py: Python<'py>, id: String) -> PyResult<Option<Bound<'py, PyDict>>> {
        let storage = self.storage.clone();
        match py.detach(move || storage.get_job(&id))? {
            Some(j) => Ok(Some(job_dict(py, &j)?)),
            None => Ok(None),
        }
    }

    /// `(status, result_bytes, error)` of a job, or None.
    fn get_outcome<'py>(&self, py: Python<'py>, id: String) -> PyResult<Option<OutcomeTuple<'py>>> {
        let storage = self.storage.clone();
        let found = py.detach(move || storage.get_outcome(&id))?;
        Ok(found.map(|o| {
            (
                o.status.as_str(),
                o.result.map(|r| PyBytes::new(py, &r)),
                o.error,
            )
        }))
    }

    /// Waits until the job is finished or `timeout` seconds pass; returns its status then
    /// (None if it does not exist). Wakes at once on this process's commits and on other
    /// processes' hints; without hints, within a few milliseconds by the change probe.
    fn wait(
        &self,
        py: Python<'_>,
        id: String,
        timeout: f64,
        poll_interval: f64,
    ) -> PyResult<Option<&'static str>> {
        // No deadline at all when the wait is past what `Instant` can represent.
        let deadline = Instant::now().checked_add(secs("timeout", timeout)?);
        let poll = secs("poll_interval", poll_interval)?.max(Duration::from_millis(1));
        let hinted = {
            let storage = self.storage.clone();
            let control = self.control.clone();
            let slot = &self.result_wake;
            py.detach(move || result_hints(slot, storage.as_ref(), control))
        };
        loop {
            let storage = self.storage.clone();
            let control = self.control.clone();
            let probe = &self.probe;
            let id2 = id.clone();
            let status = py.detach(move || -> Result<Option<JobStatus>, Error> {
                let slice_end = end_of_slice(deadline);
                loop {
                    let epoch = control.results_epoch();
                    let seen = if hinted {
                        None
                    } else {
                        probe_version(probe, storage.as_ref())
                    };
                    let status = storage.status(&id2)?;
                    match status {
                        None => return Ok(None),
                        Some(s) if s.is_finished() => return Ok(Some(s)),
                        _ => {}
                    }
                    let read_again = Instant::now()
                        .checked_add(poll)
                        .map_or(slice_end, |t| t.min(slice_end));
                    loop {
                        let now = Instant::now();
                        if now >= read_again {
                            break;
                        }
                        // With hints, this process's commits and other processes' both
                        // move the epoch; without, other processes are seen by the probe.
                        let step = if hinted {
                            read_again - now
                        } else {
                            PROBE_EVERY
                        };
                        control.wait_results(epoch, step.min(read_again - now));
                        if control.results_epoch() != epoch
                            || !hinted && probe_version(probe, storage.as_ref()) != seen
                        {
                            break;
                        }
                    }
                    if Instant::now() >= slice_end {
                        return Ok(status);
                    }
                }
            })?;
            match status {
                None => return Ok(None),
                Some(s) if s.is_finished() => return Ok(Some(s.as_str())),
                Some(s) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Some(s.as_str()));
                    }
                }
            }
            py.check_signals()?;
        }
    }

    /// `[(queue, status, count)]` for every queue and status present.
    fn counts(&self, py: Python<'_>) -> PyResult<Vec<(String, &'static str, i64)>> {
        let storage = self.storage.clone();
        let counts = py.detach(move || storage.counts())?;
        Ok(counts
            .into_iter()
            .map(|(q, s, n)| (q, s.stats_key(), n))
            .collect())
    }

    /// `[(queue, created_at_ms)]` of the oldest pending job per queue.
    fn oldest_pending(&self, py: Python<'_>) -> PyResult<Vec<(String, i64)>> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.oldest_pending(now_ms()))?)
    }

    /// The job's failed attempts, oldest first.
    fn job_errors<'py>(&self, py: Python<'py>, id: String) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage.clone();
        let errors = py.detach(move || storage.job_errors(&id))?;
        list(py, &errors, error_dict)
    }

    /// Cancels a pending job; False if it is not pending.
    fn cancel_job(&self, py: Python<'_>, id: String) -> PyResult<bool> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.cancel(&id, now_ms()))?)
    }

    /// Records a running job's progress (0-100).
    fn update_progress(&self, py: Python<'_>, id: String, progress: i64) -> PyResult<()> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.set_progress(&id, progress))?)
    }

    /// Dead letters, newest first.
    fn dead_letters<'py>(
        &self,
        py: Python<'py>,
        limit: i64,
        offset: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage.clone();
        let dead = py.detach(move || storage.dead_letters(limit, offset))?;
        list(py, &dead, dead_dict)
    }

    /// Enqueues a dead letter again as a new job; returns its id.
    fn retry_dead(&self, py: Python<'_>, dead_id: String) -> PyResult<String> {
        let storage = self.storage.clone();
        let id = py.detach(move || storage.retry_dead(&dead_id, now_ms()))?;
        self.control.wake.notify_one();
        Ok(id)
    }

    /// Deletes dead letters older than `older_than` seconds; returns how many.
    fn purge_dead(&self, py: Python<'_>, older_than: f64) -> PyResult<usize> {
        // Saturates: an age past any clock deletes nothing.
        let before = now_ms().saturating_sub(millis("older_than", older_than)?);
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.purge_dead(before))?)
    }

    /// Deletes finished jobs older than `older_than` seconds; returns how many.
    fn purge_finished(&self, py: Python<'_>, older_than: f64) -> PyResult<usize> {
        let before = now_ms().saturating_sub(millis("older_than", older_than)?);
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.purge_finished(before))?)
    }

    /// The worker registry.
    fn workers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage.clone();
        let workers = py.detach(move || storage.workers())?;
        list(py, &workers, worker_dict)
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
        async_lane: Option<Py<super::queue_pool::PyAsyncLane>>,
        prefork: Option<super::queue_pool::PreforkArgs>,
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
            Some(spec) => super::queue_pool::pool_runner(py, spec, config.timeout_grace)?,
        };
        let (storage, control) = (self.storage.clone(), self.control.clone());
        deliver(py)?;
        let started = py.detach(move || Engine::start_with(storage, runner, config, control, lane));
        let delivered = deliver(py);
        let engine = match started {
            Ok(e) => e,
            Err(e) => {
                super::queue_pool::pool_stop(&children);
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
                        super::queue_pool::pool_stop(&children);
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
            super::queue_pool::pool_stop(&children);
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

/// Where one detached slice of a wait ends: `SIGNAL_CHECK` from now, or the deadline.
fn end_of_slice(deadline: Option<Instant>) -> Instant {
    let now = Instant::now();
    let slice = now.checked_add(SIGNAL_CHECK).unwrap_or(now);
    deadline.map_or(slice, |d| d.min(slice))
}

/// Starts the queue's result wake thread on first use; true if it runs.
fn result_hints(
    slot: &Mutex<Option<Option<ResultWaker>>>,
    storage: &dyn Storage,
    control: Arc<Control>,
) -> bool {
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        let waker = match storage.result_wake_source() {
            Ok(Some(source)) => ResultWaker::start(source, control),
            _ => None,
        };
        *guard = Some(waker);
    }
    matches!(*guard, Some(Some(_)))
}

/// Reads the shared change probe, opening it on first use.
fn probe_version(
    probe: &Mutex<Option<Box<dyn ChangeProbe>>>,
    storage: &dyn Storage,
) -> Option<i64> {
    let mut guard = probe.lock().unwrap_or_else(|p| p.into_inner());
    if guard.is_none() {
        *guard = storage.change_probe().ok();
    }
    guard.as_mut().and_then(|p| p.version())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_past_any_clock_saturate_instead_of_panicking() {
        for v in [2f64.powi(63), 1e300, f64::MAX] {
            assert_eq!(secs("timeout", v).unwrap(), LONGEST);
            assert_eq!(millis("timeout", v).unwrap(), i64::MAX);
            assert!(Instant::now()
                .checked_add(secs("timeout", v).unwrap())
                .is_some());
        }
        assert_eq!(secs("timeout", 1.5).unwrap(), Duration::from_millis(1500));
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
        ] {
            let err = secs("drain_timeout", v).unwrap_err().to_string();
            assert!(err.contains("drain_timeout"), "{err}");
            assert!(millis("older_than", v).is_err());
        }
    }

    #[test]
    fn a_delay_past_the_year_9999_is_refused() {
        let now = 1_800_000_000_000;
        assert_eq!(scheduled_at(now, 0.0).unwrap(), now);
        assert_eq!(scheduled_at(now, 2.5).unwrap(), now + 2500);
        let last_ok = (LATEST_SCHEDULED_MS - now) as f64 / 1000.0;
        assert!(scheduled_at(now, last_ok).is_ok());
        for v in [last_ok + 1.0, 2f64.powi(63), 1e300] {
            let err = scheduled_at(now, v).unwrap_err().to_string();
            assert!(err.contains("delay") && err.contains("9999"), "{err}");
        }
        assert!(scheduled_at(i64::MAX, 1.0).is_err());
    }

    #[test]
    fn an_old_enough_age_saturates_to_deleting_nothing() {
        let before = now_ms().saturating_sub(millis("older_than", 1e300).unwrap());
        assert!(before < 0);
    }
}
