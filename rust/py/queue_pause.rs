//! `QueueCore.pause_queue` / `resume_queue` / `paused_queues`: pausing lives in the store,
//! so it holds for every worker process on the database.

use pyo3::prelude::*;

use super::queue::PyQueueCore;
use crate::job::now_ms;

#[pymethods]
impl PyQueueCore {
    /// Stops workers (of any process) from starting jobs of `queue`; True if it was running.
    fn pause_queue(&self, py: Python<'_>, queue: String) -> PyResult<bool> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.pause_queue(&queue, now_ms()))?)
    }

    /// Lets workers start jobs of `queue` again; True if it was paused.
    fn resume_queue(&self, py: Python<'_>, queue: String) -> PyResult<bool> {
        let storage = self.storage.clone();
        let resumed = py.detach(move || storage.resume_queue(&queue))?;
        // This process's worker need not wait for its next poll.
        self.control.wake.notify_one();
        Ok(resumed)
    }

    /// Names of the paused queues, sorted.
    fn paused_queues(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.paused_queues())?)
    }
}
