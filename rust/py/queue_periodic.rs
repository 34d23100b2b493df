//! Bindings of periodic schedules: registration by a starting worker, the management calls,
//! and the cron helpers the decorator validates with.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::queue::PyQueueCore;
use crate::job::now_ms;
use crate::schedule::Schedule;
use crate::storage::PeriodicSpec;

/// `(name, task_name, cron, timezone, queue, payload, priority, max_retries, retry_backoff,
/// timeout_seconds)` as the Python side registers a schedule.
type SpecTuple = (
    String,
    String,
    String,
    String,
    String,
    Py<PyBytes>,
    i64,
    i64,
    f64,
    f64,
);

#[pymethods]
impl PyQueueCore {
    /// Checks a cron expression and time zone; returns the zone's IANA name.
    #[staticmethod]
    #[pyo3(signature = (cron, timezone=None))]
    fn check_cron(cron: &str, timezone: Option<&str>) -> PyResult<&'static str> {
        Ok(Schedule::parse(cron, timezone)?.timezone())
    }

    /// The first due time of `cron` in `timezone` strictly after `after_ms` (epoch ms).
    #[staticmethod]
    #[pyo3(signature = (cron, timezone, after_ms))]
    fn next_cron_time(cron: &str, timezone: Option<&str>, after_ms: i64) -> PyResult<Option<i64>> {
        Ok(Schedule::parse(cron, timezone)?.next_after(after_ms))
    }

    /// Stores (or updates by name) the schedules of a starting worker.
    fn register_periodic(&self, py: Python<'_>, schedules: Vec<SpecTuple>) -> PyResult<()> {
        let specs: Vec<PeriodicSpec> = schedules
            .into_iter()
            .map(|t| PeriodicSpec {
                name: t.0,
                task_name: t.1,
                cron_expr: t.2,
                timezone: t.3,
                queue: t.4,
                payload: t.5.as_bytes(py).to_vec(),
                priority: t.6,
                max_retries: t.7,
                retry_backoff: t.8,
                timeout_ms: (t.9 * 1000.0) as i64,
            })
            .collect();
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.register_periodic(&specs, now_ms()))?)
    }

    /// Every stored schedule, by name.
    fn list_periodic<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let storage = self.storage.clone();
        let rows = py.detach(move || storage.list_periodic())?;
        let out = PyList::empty(py);
        for p in rows {
            let d = PyDict::new(py);
            d.set_item("name", p.name)?;
            d.set_item("task_name", p.task_name)?;
            d.set_item("cron_expr", p.cron_expr)?;
            d.set_item("queue", p.queue)?;
            d.set_item("enabled", p.enabled)?;
            d.set_item("last_run", p.last_run)?;
            d.set_item("next_run", p.next_run)?;
            d.set_item("timezone", p.timezone)?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Pauses (`enabled=False`) or resumes a schedule; `JobNotFoundError` if unknown.
    fn set_periodic_enabled(&self, py: Python<'_>, name: String, enabled: bool) -> PyResult<()> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.set_periodic_enabled(&name, enabled, now_ms()))?)
    }

    /// Deletes a schedule; `JobNotFoundError` if unknown.
    fn delete_periodic(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let storage = self.storage.clone();
        Ok(py.detach(move || storage.delete_periodic(&name))?)
    }
}
