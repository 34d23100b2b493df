//! Bindings of task flow control: a starting worker registers its tasks' rate limits and
//! concurrency caps, which hold in the store for every worker process on the database.

use pyo3::prelude::*;

use super::queue::PyQueueCore;
use crate::storage::TaskLimit;

/// `(task_name, rate_count, rate_period_ms, max_concurrent)`.
type LimitTuple = (String, Option<i64>, Option<i64>, Option<i64>);

#[pymethods]
impl PyQueueCore {
    /// Stores a starting worker's task limits: `(task_name, rate_count, rate_period_ms,
    /// max_concurrent)`; `unlimited` names its tasks without limits.
    fn register_task_limits(
        &self,
        py: Python<'_>,
        limits: Vec<LimitTuple>,
        unlimited: Vec<String>,
    ) -> PyResult<()> {
        let limits: Vec<TaskLimit> = limits
            .into_iter()
            .map(|(task_name, count, period, max_concurrent)| TaskLimit {
                task_name,
                rate: count.zip(period),
                max_concurrent,
            })
            .collect();
        let storage = self.storage.clone();
        py.detach(move || storage.register_task_limits(&limits, &unlimited))?;
        self.control.wake.notify_one();
        Ok(())
    }
}
