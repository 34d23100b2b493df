//! Bindings that read one job or the queue as a whole, and act on single pending jobs and
//! dead letters: a job and its outcome, the wait for a result, listings by offset, counts,
//! errors, cancel of a pending job, progress, and the dead letters.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::convert::{dead_dict, error_dict, job_dict, list, parse_status};
use super::queue::PyQueueCore;
use super::units::{millis, secs};
use crate::engine::control::Control;
use crate::engine::waker::ResultWaker;
use crate::error::Error;
use crate::job::{now_ms, JobFilter, JobStatus};
use crate::storage::{ChangeProbe, Storage};

/// How often a blocked call comes back to Python to check for signals.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);
/// How often a result waiter reads the store's change counter (catches other processes).
const PROBE_EVERY: Duration = Duration::from_millis(2);

/// `(status, result bytes, error)` as `get_outcome` returns it.
type OutcomeTuple<'py> = (&'static str, Option<Bound<'py, PyBytes>>, Option<String>);

#[pymethods]
impl PyQueueCore {
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

    /// Jobs matching the filters, oldest first, by offset.
    #[pyo3(signature = (status=None, queue=None, task_name=None, worker_id=None, limit=100, offset=0, metadata_like=None, error_like=None, created_after=None, created_before=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_jobs<'py>(
        &self,
        py: Python<'py>,
        status: Option<&str>,
        queue: Option<String>,
        task_name: Option<String>,
        worker_id: Option<String>,
        limit: i64,
        offset: i64,
        metadata_like: Option<String>,
        error_like: Option<String>,
        created_after: Option<i64>,
        created_before: Option<i64>,
    ) -> PyResult<Bound<'py, PyList>> {
        if limit < 0 || offset < 0 {
            return Err(Error::invalid("limit", "limit and offset must not be negative").into());
        }
        let filter = JobFilter {
            status: parse_status(status)?,
            queue,
            task_name,
            worker_id,
            metadata_like,
            error_like,
            created_after,
            created_before,
            limit,
            offset,
        };
        let storage = self.storage.clone();
        let jobs = py.detach(move || storage.list_jobs(&filter))?;
        list(py, &jobs, job_dict)
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
