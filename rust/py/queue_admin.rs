//! Bindings for operator actions on single jobs and dead letters that no worker takes:
//! dropping a dead letter, and handing a running job back to the queue.

use pyo3::prelude::*;

use super::queue::PyQueueCore;

#[pymethods]
impl PyQueueCore {
    /// Deletes a dead letter; False if there is none with that id.
    fn delete_dead(&self, py: Python<'_>, dead_id: String) -> PyResult<bool> {
        let storage = self.storage();
        Ok(py.detach(move || storage.delete_dead(&dead_id))?)
    }

    /// Puts a running job back to pending (its current run's result will be ignored).
    fn requeue_job(&self, py: Python<'_>, job_id: String) -> PyResult<bool> {
        let storage = self.storage();
        let moved = py.detach(move || storage.requeue_job(&job_id))?;
        if moved {
            self.wake();
        }
        Ok(moved)
    }
}
