//! Plain records to Python dicts (and lists of them), with the keys the public API
//! documents; and a status named from Python to a `JobStatus`.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::error::Error;
use crate::job::{DeadLetter, ErrorRecord, JobRecord, JobStatus, TaskLog, WorkerInfo};

pub fn job_dict<'py>(py: Python<'py>, j: &JobRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &j.id)?;
    d.set_item("queue", &j.queue)?;
    d.set_item("task_name", &j.task_name)?;
    d.set_item("status", j.status.as_str())?;
    d.set_item("priority", j.priority)?;
    d.set_item("retry_count", j.retry_count)?;
    d.set_item("max_retries", j.max_retries)?;
    d.set_item("created_at", j.created_at)?;
    d.set_item("scheduled_at", j.scheduled_at)?;
    d.set_item("started_at", j.started_at)?;
    d.set_item("completed_at", j.completed_at)?;
    d.set_item("error", &j.error)?;
    d.set_item("progress", j.progress)?;
    d.set_item("worker_id", &j.worker_id)?;
    d.set_item("unique_key", &j.unique_key)?;
    d.set_item("metadata", &j.metadata)?;
    d.set_item("timeout", j.timeout_ms as f64 / 1000.0)?;
    d.set_item("notes", &j.notes)?;
    Ok(d)
}

pub fn error_dict<'py>(py: Python<'py>, e: &ErrorRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", e.id)?;
    d.set_item("job_id", &e.job_id)?;
    d.set_item("attempt", e.attempt)?;
    d.set_item("error", &e.error)?;
    d.set_item("traceback", &e.traceback)?;
    d.set_item("failed_at", e.failed_at)?;
    Ok(d)
}

pub fn dead_dict<'py>(py: Python<'py>, e: &DeadLetter) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", &e.id)?;
    d.set_item("original_job_id", &e.original_job_id)?;
    d.set_item("task_name", &e.task_name)?;
    d.set_item("queue", &e.queue)?;
    d.set_item("error", &e.error)?;
    d.set_item("retry_count", e.retry_count)?;
    d.set_item("failed_at", e.failed_at)?;
    d.set_item("metadata", &e.metadata)?;
    Ok(d)
}

pub fn worker_dict<'py>(py: Python<'py>, w: &WorkerInfo) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("worker_id", &w.worker_id)?;
    d.set_item("hostname", &w.hostname)?;
    d.set_item("pid", w.pid)?;
    d.set_item("queues", &w.queues)?;
    d.set_item("started_at", w.started_at)?;
    d.set_item("last_heartbeat", w.last_heartbeat)?;
    d.set_item("status", &w.status)?;
    Ok(d)
}

pub fn task_log_dict<'py>(py: Python<'py>, l: &TaskLog) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("job_id", &l.job_id)?;
    d.set_item("task_name", &l.task_name)?;
    d.set_item("level", &l.level)?;
    d.set_item("message", &l.message)?;
    d.set_item("extra", &l.extra)?;
    d.set_item("logged_at", l.logged_at)?;
    Ok(d)
}

/// Each item as a dict, in a list.
pub fn list<'py, T>(
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

/// A `status=` filter as a `JobStatus`, refused (naming `status`) if unknown.
pub fn parse_status(status: Option<&str>) -> PyResult<Option<JobStatus>> {
    match status {
        None => Ok(None),
        Some(s) => Ok(Some(JobStatus::parse(s).ok_or_else(|| {
            Error::invalid(
                "status",
                format!(
                    "{s:?} (expected one of pending, running, complete, failed, dead, cancelled)"
                ),
            )
        })?)),
    }
}
