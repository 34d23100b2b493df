//! `QueueCore` keyset pages of jobs and dead letters, throughput and argument bytes: the
//! reads behind `Queue.list_jobs_after`, `Queue.dead_letters_after` and the dashboard.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::convert::{dead_dict, job_dict, list, parse_status};
use super::queue::PyQueueCore;
use crate::job::JobFilter;

#[pymethods]
impl PyQueueCore {
    /// `(jobs, next_cursor)`: up to `limit` jobs, newest first, after the cursor `after`.
    #[pyo3(signature = (status=None, queue=None, task_name=None, limit=50, after=None, metadata_like=None, error_like=None, created_after=None, created_before=None))]
    #[allow(clippy::too_many_arguments)]
    fn list_jobs_after<'py>(
        &self,
        py: Python<'py>,
        status: Option<&str>,
        queue: Option<String>,
        task_name: Option<String>,
        limit: i64,
        after: Option<String>,
        metadata_like: Option<String>,
        error_like: Option<String>,
        created_after: Option<i64>,
        created_before: Option<i64>,
    ) -> PyResult<(Bound<'py, PyList>, Option<String>)> {
        let filter = JobFilter {
            status: parse_status(status)?,
            queue,
            task_name,
            metadata_like,
            error_like,
            created_after,
            created_before,
            ..JobFilter::default()
        };
        let storage = self.storage.clone();
        let page = py.detach(move || storage.list_jobs_after(&filter, after.as_deref(), limit))?;
        Ok((list(py, &page.items, job_dict)?, page.next_cursor))
    }

    /// `(dead letters, next_cursor)`: newest first, after the cursor `after`.
    #[pyo3(signature = (limit=10, after=None))]
    fn dead_letters_after<'py>(
        &self,
        py: Python<'py>,
        limit: i64,
        after: Option<String>,
    ) -> PyResult<(Bound<'py, PyList>, Option<String>)> {
        let storage = self.storage.clone();
        let page = py.detach(move || storage.dead_letters_after(after.as_deref(), limit))?;
        Ok((list(py, &page.items, dead_dict)?, page.next_cursor))
    }

    /// `[(bucket_start_ms, completed)]` for the non-empty buckets since `since_ms`.
    fn throughput(
        &self,
        py: Python<'_>,
        since_ms: i64,
        bucket_ms: i64,
    ) -> PyResult<Vec<(i64, i64)>> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.throughput(since_ms, bucket_ms))?)
    }

    /// The job's stored argument bytes, or None.
    fn job_payload<'py>(
        &self,
        py: Python<'py>,
        id: String,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let storage = self.storage.clone();
        let found = py.detach(move || storage.job_payload(&id))?;
        Ok(found.map(|p| PyBytes::new(py, &p)))
    }
}
