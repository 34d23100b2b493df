//! Bindings for task logs: the lines a task logs about its job, and the queries over them.

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::convert::task_log_dict;
use super::queue::PyQueueCore;
use crate::error::Error;
use crate::job::{now_ms, TaskLog};

#[pymethods]
impl PyQueueCore {
    /// Stores a line a task logged about its job.
    #[pyo3(signature = (job_id, task_name, level, message, extra=None))]
    fn write_task_log(
        &self,
        py: Python<'_>,
        job_id: String,
        task_name: String,
        level: String,
        message: String,
        extra: Option<String>,
    ) -> PyResult<()> {
        let log = TaskLog {
            job_id,
            task_name,
            level,
            message,
            extra,
            logged_at: now_ms(),
        };
        let storage = self.storage();
        Ok(py.detach(move || storage.write_task_log(&log))?)
    }

    /// The lines one job logged, oldest first.
    fn task_logs<'py>(&self, py: Python<'py>, job_id: String) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage();
        let logs = py.detach(move || storage.task_logs(&job_id))?;
        let out = PyList::empty(py);
        for l in &logs {
            out.append(task_log_dict(py, l)?)?;
        }
        Ok(out)
    }

    /// Lines logged in the last `since` seconds, newest first.
    #[pyo3(signature = (task_name=None, level=None, since=3600.0, limit=100))]
    fn query_logs<'py>(
        &self,
        py: Python<'py>,
        task_name: Option<String>,
        level: Option<String>,
        since: f64,
        limit: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        if !since.is_finite() || since < 0.0 {
            return Err(Error::invalid(
                "since",
                format!("{since} (must be a non-negative number of seconds)"),
            )
            .into());
        }
        if limit < 0 {
            return Err(Error::invalid("limit", "must not be negative").into());
        }
        // Past any clock: everything logged.
        let since_ms = if since * 1000.0 >= i64::MAX as f64 {
            i64::MIN
        } else {
            now_ms().saturating_sub((since * 1000.0) as i64)
        };
        let storage = self.storage();
        let logs = py.detach(move || {
            storage.query_task_logs(task_name.as_deref(), level.as_deref(), since_ms, limit)
        })?;
        let out = PyList::empty(py);
        for l in &logs {
            out.append(task_log_dict(py, l)?)?;
        }
        Ok(out)
    }
}
