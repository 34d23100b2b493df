//! Bindings of the features that link jobs: enqueue with dependencies, notes or expiry
//! (canvas, `depends_on`), and a job's links.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::queue::PyQueueCore;
use super::units::{result_ttl_ms, secs};
use crate::job::{now_ms, Dep, JobLinks, NewJob, PassResult};

/// `(task_name, payload, queue, priority, delay, max_retries, retry_backoff, timeout,
/// unique_key, metadata)`: what `enqueue` takes for one job.
type JobSpec = (
    String,
    Py<PyBytes>,
    String,
    i64,
    f64,
    i64,
    f64,
    f64,
    Option<String>,
    Option<String>,
);
/// `(notes_json, expires_seconds, depends_on_ids, depends_on_batch_indexes, pass_result,
/// result_ttl_seconds)`.
type LinkSpec = (
    Option<String>,
    Option<f64>,
    Vec<String>,
    Vec<usize>,
    i64,
    Option<f64>,
);

#[pymethods]
impl PyQueueCore {
    /// Stores jobs with their links in one transaction and returns their ids. Each job is
    /// `(JobSpec, LinkSpec)`; a batch index in `depends_on_batch` names an earlier job of
    /// the same call. Raises `JobNotFoundError` for a dependency that does not exist (and
    /// stores nothing). `max_pending` (queue -> bound) refuses the whole batch with
    /// `QueueFullError` if a queue of it would then hold more pending jobs.
    #[pyo3(signature = (jobs, max_pending=None))]
    fn enqueue_linked(
        &self,
        py: Python<'_>,
        jobs: Vec<(JobSpec, LinkSpec)>,
        max_pending: Option<HashMap<String, i64>>,
    ) -> PyResult<Vec<String>> {
        let bounds: Vec<(String, i64)> = max_pending.unwrap_or_default().into_iter().collect();
        let now = now_ms();
        let mut new_jobs = Vec::with_capacity(jobs.len());
        let mut links = Vec::with_capacity(jobs.len());
        for (job, link) in jobs {
            let (
                task_name,
                payload,
                queue,
                priority,
                delay,
                max_retries,
                retry_backoff,
                timeout,
                unique_key,
                metadata,
            ) = job;
            let (notes, expires, depends_on, batch, pass_result, result_ttl) = link;
            let delay = secs("delay", delay)?;
            let timeout = secs("timeout", timeout)?;
            let expires_at = expires
                .map(|e| secs("expires", e).map(|d| now + d.as_millis() as i64))
                .transpose()?;
            new_jobs.push(NewJob {
                task_name,
                queue,
                payload: payload.as_bytes(py).to_vec(),
                priority,
                scheduled_at: now + delay.as_millis() as i64,
                max_retries,
                retry_backoff,
                timeout_ms: timeout.as_millis() as i64,
                unique_key,
                metadata,
                result_ttl_ms: result_ttl.map(result_ttl_ms).transpose()?,
            });
            let mut deps: Vec<Dep> = depends_on.into_iter().map(Dep::Job).collect();
            deps.extend(batch.into_iter().map(Dep::Batch));
            links.push(JobLinks {
                depends_on: deps,
                pass_result: PassResult::from_i64(pass_result),
                notes,
                expires_at,
            });
        }
        let storage = self.storage.clone();
        let ids = py.detach(move || storage.enqueue_linked(&new_jobs, &links, &bounds))?;
        self.control.wake.notify_one();
        Ok(ids)
    }

    /// `(dependencies, dependents)` of a job, as lists of ids.
    fn job_links(&self, py: Python<'_>, id: String) -> PyResult<(Vec<String>, Vec<String>)> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.job_links(&id))?)
    }
}
