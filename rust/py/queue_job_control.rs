//! Bindings that act on one job's run: cooperative cancel of a running job, expiry of
//! pending jobs past their time, and replay (a copy of a job, enqueued again).

use pyo3::prelude::*;

use super::queue::PyQueueCore;
use crate::job::now_ms;

#[pymethods]
impl PyQueueCore {
    /// Flags a running job for cancellation; True if it was running.
    fn cancel_running_job(&self, py: Python<'_>, id: String) -> PyResult<bool> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.request_cancel(&id))?)
    }

    /// Whether the job was flagged by `cancel_running_job`.
    fn cancel_requested(&self, py: Python<'_>, id: String) -> PyResult<bool> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.cancel_requested(&id))?)
    }

    /// Cancels pending jobs past their expiry time now; returns how many.
    fn expire_due(&self, py: Python<'_>) -> PyResult<usize> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.expire_due(now_ms()))?)
    }

    /// Enqueues a copy of a job; returns the new id. `JobNotFoundError` if there is none.
    fn replay(&self, py: Python<'_>, id: String) -> PyResult<String> {
        let storage = self.storage.clone();
        let new_id = py.detach(move || storage.replay(&id, now_ms()))?;
        self.control.wake.notify_one();
        Ok(new_id)
    }
}
