//! Bindings for retention (dry runs, the last sweep's windows), the archive and the
//! explicit purge of completed jobs.

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::convert::job_dict;
use super::queue::PyQueueCore;
use crate::error::Error;
use crate::job::{now_ms, JobRecord};
use crate::retention::{cutoff, Retention, RetentionCounts};
use crate::storage::seq_of;

/// Retention windows in seconds as Python passes them: `(archived_jobs, dead_letter,
/// task_logs, task_metrics, job_errors, defaulted)`.
pub(super) type RetentionArg = (
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    bool,
);

/// A window in seconds as milliseconds, saturating past any clock.
fn window_ms(option: &'static str, v: Option<f64>) -> Result<Option<i64>, Error> {
    v.map(|s| {
        if !s.is_finite() && s != f64::INFINITY || s < 0.0 {
            return Err(Error::invalid(
                option,
                format!("{s} (must be a non-negative number of seconds)"),
            ));
        }
        Ok(if s * 1000.0 >= i64::MAX as f64 {
            i64::MAX
        } else {
            (s * 1000.0) as i64
        })
    })
    .transpose()
}

/// Retention windows as Python passes them, in the engine's milliseconds.
pub(super) fn retention_windows(r: RetentionArg) -> Result<Retention, Error> {
    Ok(Retention {
        archived_jobs: window_ms("archived_jobs", r.0)?,
        dead_letter: window_ms("dead_letter", r.1)?,
        task_logs: window_ms("task_logs", r.2)?,
        task_metrics: window_ms("task_metrics", r.3)?,
        job_errors: window_ms("job_errors", r.4)?,
        defaulted: r.5,
    })
}

/// `(archived_jobs, dead_letter, task_logs, task_metrics, job_errors)`.
type Counts = (i64, i64, i64, i64, i64);
/// Windows in ms as Python reads them, then `defaulted` and the report time.
type Report = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    bool,
    i64,
);

fn counts(c: RetentionCounts) -> Counts {
    (
        c.archived_jobs,
        c.dead_letter,
        c.task_logs,
        c.task_metrics,
        c.job_errors,
    )
}

/// `older_than` seconds as a cutoff time; past any clock, nothing is that old.
fn before(option: &'static str, older_than: f64) -> Result<i64, Error> {
    if older_than.is_nan() || older_than < 0.0 {
        return Err(Error::invalid(
            option,
            format!("{older_than} (must be a non-negative number of seconds)"),
        ));
    }
    let ms = if older_than * 1000.0 >= i64::MAX as f64 {
        i64::MAX
    } else {
        (older_than * 1000.0) as i64
    };
    Ok(cutoff(now_ms(), ms))
}

fn job_list<'py>(py: Python<'py>, jobs: &[JobRecord]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for j in jobs {
        out.append(job_dict(py, j)?)?;
    }
    Ok(out)
}

#[pymethods]
impl PyQueueCore {
    /// What a retention sweep with these windows would delete now:
    /// `(archived_jobs, dead_letter, task_logs, task_metrics, job_errors)`, and the time
    /// the counts refer to.
    fn retention_preview(&self, py: Python<'_>, windows: RetentionArg) -> PyResult<(Counts, i64)> {
        let r: Retention = retention_windows(windows)?;
        let now = now_ms();
        let storage = self.storage();
        let found = py.detach(move || storage.retention_preview(&r, now))?;
        Ok((counts(found), now))
    }

    /// The windows (ms), `defaulted` and time of the last sweep, or None before any.
    fn retention_report(&self, py: Python<'_>) -> PyResult<Option<Report>> {
        let storage = self.storage();
        let report = py.detach(move || storage.retention_report())?;
        Ok(report.map(|r| {
            let w = r.windows;
            (
                w.archived_jobs,
                w.dead_letter,
                w.task_logs,
                w.task_metrics,
                w.job_errors,
                w.defaulted,
                r.reported_at,
            )
        }))
    }

    /// Moves finished jobs older than `older_than` seconds to the archive; returns how many.
    fn archive(&self, py: Python<'_>, older_than: f64) -> PyResult<usize> {
        let before = before("older_than", older_than)?;
        let storage = self.storage();
        Ok(py.detach(move || storage.archive(before, now_ms()))?)
    }

    /// Archived jobs, newest first.
    fn list_archived<'py>(
        &self,
        py: Python<'py>,
        limit: i64,
        offset: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        if limit < 0 || offset < 0 {
            return Err(Error::invalid("limit", "limit and offset must not be negative").into());
        }
        let storage = self.storage();
        let jobs = py.detach(move || storage.list_archived(limit, offset))?;
        job_list(py, &jobs)
    }

    /// Archived jobs after the cursor (a job id from the previous page), newest first.
    #[pyo3(signature = (limit, after=None))]
    fn list_archived_after<'py>(
        &self,
        py: Python<'py>,
        limit: i64,
        after: Option<String>,
    ) -> PyResult<Bound<'py, PyList>> {
        if limit < 0 {
            return Err(Error::invalid("limit", "must not be negative").into());
        }
        let after = match after {
            None => None,
            Some(cursor) => match seq_of(&cursor) {
                -1 => {
                    return Err(
                        Error::invalid("after", format!("{cursor:?} is not a cursor")).into(),
                    )
                }
                seq => Some(seq),
            },
        };
        let storage = self.storage();
        let jobs = py.detach(move || storage.list_archived_after(limit, after))?;
        job_list(py, &jobs)
    }

    /// Deletes complete jobs older than `older_than` seconds, with their errors and logs.
    fn purge_completed(&self, py: Python<'_>, older_than: f64) -> PyResult<usize> {
        let before = before("older_than", older_than)?;
        let storage = self.storage();
        Ok(py.detach(move || storage.purge_completed(before))?)
    }
}
