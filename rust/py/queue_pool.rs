//! Bindings of the two other ways to run tasks: the async lane (`AsyncLane`, driven by
//! `taskito/_async_pool.py`) and the prefork pool's runner, which `run_worker` builds when
//! given a `prefork` spec.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::runner::{failure, read_answer};
use crate::engine::async_lane::{AsyncLane, Next};
use crate::engine::runner::Runner;
use crate::error::Error;

/// How long `next_job` waits in Rust before it comes back to Python.
const WAIT_SLICE: Duration = Duration::from_millis(200);

/// `(task_name, payload, job_id, queue, retry_count, max_retries, thread_id, timeout_s)`.
type AsyncJob<'py> = (
    String,
    Bound<'py, PyBytes>,
    String,
    String,
    i64,
    i64,
    String,
    f64,
    Option<Parents<'py>>,
);
/// A canvas step's `(mode, parent results)` (see `job::ParentResults`).
type Parents<'py> = (i64, Vec<Option<Bound<'py, PyBytes>>>);

/// `run_worker(prefork=(argv, env, max_tasks_per_child, observe, relay))`: how children
/// are started, the callable (or None) told each job's outcome in this process, and the
/// one (or None) that fires the jobs' events here.
pub type PreforkArgs = (
    Vec<String>,
    Vec<(String, String)>,
    Option<u64>,
    Option<Py<PyAny>>,
    Option<Py<PyAny>>,
);

/// The compiled half of the async pool: one per worker run.
#[pyclass(name = "AsyncLane", module = "taskito._taskito", frozen)]
pub struct PyAsyncLane {
    pub(super) inner: Arc<AsyncLane>,
}

#[pymethods]
impl PyAsyncLane {
    /// A lane for the async task names `names`, running up to `concurrency` at once; a
    /// job still running `grace` seconds past its timeout is written off.
    #[new]
    fn new(names: Vec<String>, concurrency: usize, grace: f64) -> PyResult<Self> {
        if concurrency == 0 {
            return Err(Error::invalid("async_concurrency", "must be at least 1").into());
        }
        if !grace.is_finite() || grace < 0.0 {
            return Err(Error::invalid("grace", "must be a non-negative number of seconds").into());
        }
        Ok(PyAsyncLane {
            inner: Arc::new(AsyncLane::new(
                names,
                concurrency,
                Duration::from_secs_f64(grace),
            )),
        })
    }

    /// Blocks (without the GIL) until a job is ready; None once the lane is closed.
    fn next_job<'py>(&self, py: Python<'py>) -> PyResult<Option<AsyncJob<'py>>> {
        loop {
            let lane = self.inner.clone();
            match py.detach(move || lane.next_job(WAIT_SLICE)) {
                Next::Closed => return Ok(None),
                Next::Idle => continue,
                Next::Job(job) => {
                    let job = *job;
                    return Ok(Some((
                        job.task_name,
                        PyBytes::new(py, &job.payload),
                        job.id,
                        job.queue,
                        job.retry_count,
                        job.max_retries,
                        self.inner.thread_id().to_string(),
                        job.timeout_ms as f64 / 1000.0,
                        job.parents.as_ref().map(|p| {
                            let results = p
                                .results
                                .iter()
                                .map(|r| r.as_deref().map(|b| PyBytes::new(py, b)))
                                .collect();
                            (p.mode as i64, results)
                        }),
                    )));
                }
            }
        }
    }

    /// Records a job's answer (the dispatch function's tuple); False if the lane had
    /// already given the job up.
    fn finish(&self, py: Python<'_>, job_id: &str, answer: Bound<'_, PyAny>) -> bool {
        let outcome = read_answer(&answer).unwrap_or_else(|e| failure(py, e));
        let lane = self.inner.clone();
        let id = job_id.to_string();
        py.detach(move || lane.finish(&id, outcome))
    }

    /// Closes the lane: `next_job` returns None from now on.
    fn close(&self) {
        // After a run the drain has already put everything back; before one, it is empty.
        let _ = self.inner.close();
    }
}

/// The runner a `run_worker(prefork=...)` call uses, and the handle to kill its children
/// once the engine has stopped.
#[cfg(target_os = "linux")]
pub(super) fn prefork_runner(
    py: Python<'_>,
    spec: PreforkArgs,
    kill_grace: Duration,
) -> PyResult<(Arc<dyn Runner>, Arc<crate::prefork::PreforkRunner>)> {
    let (argv, env, max_tasks_per_child, observe, relay) = spec;
    if argv.is_empty() {
        return Err(Error::invalid("prefork", "the child command is empty").into());
    }
    if max_tasks_per_child == Some(0) {
        return Err(Error::invalid("max_tasks_per_child", "must be at least 1").into());
    }
    let spec = crate::prefork::Spec {
        argv,
        env,
        start_timeout: Duration::from_secs(120),
    };
    let mut runner = py
        .detach(move || crate::prefork::PreforkRunner::new(spec, max_tasks_per_child, kill_grace))
        .map_err(|e| Error::Start(format!("the prefork pool cannot start a child: {e}")))?;
    if let Some(observe) = observe {
        runner = runner.with_observer(observer(observe));
    }
    if let Some(relay) = relay {
        runner = runner.with_relay(event_relay(relay));
    }
    let runner = Arc::new(runner);
    Ok((runner.clone(), runner))
}

/// The prefork observer that calls `observe(task_name, queue, retry_count, max_retries, ok,
/// error, retryable, seconds)` on the worker thread (a worker thread, like those that run a
/// thread pool's jobs, so it may attach). What it raises is printed, never the job's.
#[cfg(target_os = "linux")]
fn observer(observe: Py<PyAny>) -> crate::prefork::Observer {
    use crate::job::{ClaimedJob, Outcome};
    Box::new(move |job: &ClaimedJob, outcome: &Outcome, took: Duration| {
        let (ok, error, retryable) = match outcome {
            Outcome::Complete(_) => (true, None, false),
            Outcome::Failed {
                error, retryable, ..
            } => (false, Some(error.as_str()), *retryable),
        };
        Python::attach(|py| {
            let args = (
                job.task_name.as_str(),
                job.queue.as_str(),
                job.retry_count,
                job.max_retries,
                ok,
                error,
                retryable,
                took.as_secs_f64(),
            );
            if let Err(e) = observe.call1(py, args) {
                e.print(py);
            }
        });
    })
}

/// The prefork relay that calls `relay(job_id, task_name, queue, retry_count, max_retries,
/// events, error, retryable)` on the worker thread: `events` the JSON texts of events a
/// child raised, or None with the `error` of a failure the child could not report. The
/// callable only queues events for the event thread. What it raises is printed.
#[cfg(target_os = "linux")]
fn event_relay(relay: Py<PyAny>) -> crate::prefork::Relay {
    use crate::prefork::{JobInfo, Relayed};
    Box::new(move |job: &JobInfo, what: Relayed<'_>| {
        let (events, error, retryable) = match what {
            Relayed::Forwarded(events) => (Some(events), None, false),
            Relayed::Failed { error, retryable } => (None, Some(error), retryable),
        };
        Python::attach(|py| {
            let args = (
                job.id.as_str(),
                job.task_name.as_str(),
                job.queue.as_str(),
                job.retry_count,
                job.max_retries,
                events,
                error,
                retryable,
            );
            if let Err(e) = relay.call1(py, args) {
                e.print(py);
            }
        });
    })
}

#[cfg(target_os = "linux")]
pub(super) type Children = Option<Arc<crate::prefork::PreforkRunner>>;
#[cfg(not(target_os = "linux"))]
pub(super) type Children = Option<()>;

/// The prefork runner for `run_worker(prefork=(argv, env, max_tasks_per_child))`. Its
/// children get half the timeout grace to die on SIGTERM before SIGKILL, so a killed job
/// comes back before the watchdog would write its thread off.
#[cfg(target_os = "linux")]
pub(super) fn pool_runner(
    py: Python<'_>,
    spec: PreforkArgs,
    grace: Duration,
) -> PyResult<(Arc<dyn Runner>, Children)> {
    let (runner, children) = prefork_runner(py, spec, grace / 2)?;
    Ok((runner, Some(children)))
}

#[cfg(not(target_os = "linux"))]
pub(super) fn pool_runner(
    _py: Python<'_>,
    _spec: PreforkArgs,
    _grace: Duration,
) -> PyResult<(Arc<dyn Runner>, Children)> {
    Err(crate::error::Error::invalid("pool", "\"prefork\" needs Linux").into())
}

/// Kills whatever children an engine run left (jobs of written-off threads were put back).
pub(super) fn pool_stop(children: &Children) {
    #[cfg(target_os = "linux")]
    if let Some(c) = children {
        c.kill_all();
    }
    #[cfg(not(target_os = "linux"))]
    let _ = children;
}
