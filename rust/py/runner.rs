//! `PyRunner`: the `Runner` that enters Python. A worker thread attaches once per job to
//! call the dispatch function (`taskito/worker/dispatch.py`), turns whatever happens into an
//! `Outcome` before detaching, and never lets a task's exception escape.

use std::os::raw::c_long;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use super::errors::TaskTimeoutError;
use crate::engine::runner::Runner;
use crate::job::{ClaimedJob, Outcome};

pub struct PyRunner {
    dispatch: Py<PyAny>,
    timeout_error: Py<PyAny>,
    /// `taskito.worker.dispatch.thread_exit`: closes the thread's event loop.
    thread_exit: Py<PyAny>,
}

impl PyRunner {
    pub fn new(py: Python<'_>, dispatch: Py<PyAny>) -> PyResult<PyRunner> {
        Ok(PyRunner {
            dispatch,
            timeout_error: py.get_type::<TaskTimeoutError>().into_any().unbind(),
            thread_exit: py
                .import("taskito.worker.dispatch")?
                .getattr("thread_exit")?
                .unbind(),
        })
    }
}

/// Clears an asynchronous exception left pending on this thread (an interrupt that arrived
/// after the job had already returned), so it cannot fire inside the next job.
fn clear_pending_interrupt(ident: u64) {
    if ident != 0 {
        // SAFETY: called while attached; a NULL exception clears the pending one.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(ident as c_long, std::ptr::null_mut());
        }
    }
}

pub(super) fn failure(py: Python<'_>, err: PyErr) -> Outcome {
    let traceback = err
        .traceback(py)
        .and_then(|tb| tb.format().ok())
        .unwrap_or_default();
    Outcome::Failed {
        error: format!(
            "{}: {}",
            err.get_type(py)
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default(),
            err.value(py)
        ),
        traceback,
        retryable: true,
        rule: None,
    }
}

/// Reads the dispatch function's answer: `(True, result_bytes)` or
/// `(False, error, traceback, retryable)`.
pub(super) fn read_answer(answer: &Bound<'_, PyAny>) -> PyResult<Outcome> {
    let tuple = answer.cast::<PyTuple>()?;
    if tuple.get_item(0)?.is_truthy()? {
        let item = tuple.get_item(1)?;
        let bytes = item.cast::<PyBytes>()?;
        return Ok(Outcome::Complete(bytes.as_bytes().to_vec()));
    }
    // A fifth item is the task's retry rule: `(kind, delay_ms, metadata)` as
    // `RetryRule::from_parts` reads it.
    let rule = match tuple.len() > 4 {
        true => {
            let (kind, delay, metadata): (i64, i64, Option<String>) =
                tuple.get_item(4)?.extract()?;
            crate::retry_rule::RetryRule::from_parts(kind, delay, metadata)
        }
        false => None,
    };
    Ok(Outcome::Failed {
        error: tuple.get_item(1)?.extract()?,
        traceback: tuple.get_item(2)?.extract()?,
        retryable: tuple.get_item(3)?.is_truthy()?,
        rule,
    })
}

impl Runner for PyRunner {
    fn thread_started(&self) -> u64 {
        Python::attach(|py| {
            py.import("threading")
                .and_then(|t| t.call_method0("get_ident"))
                .and_then(|i| i.extract::<u64>())
                .unwrap_or(0)
        })
    }

    fn run(&self, job: &ClaimedJob, thread_id: &str, ident: u64) -> Outcome {
        Python::attach(|py| {
            clear_pending_interrupt(ident);
            let payload = PyBytes::new(py, &job.payload);
            let args = (
                job.task_name.as_str(),
                payload,
                job.id.as_str(),
                job.queue.as_str(),
                job.retry_count,
                job.max_retries,
                thread_id,
            );
            // A canvas step also gets its parents' stored results (one more argument, so
            // every other job calls dispatch exactly as before).
            let called = match &job.parents {
                None => self.dispatch.call1(py, args),
                Some(p) => {
                    let results: Vec<Option<Bound<'_, PyBytes>>> = p
                        .results
                        .iter()
                        .map(|r| r.as_deref().map(|b| PyBytes::new(py, b)))
                        .collect();
                    let (a0, a1, a2, a3, a4, a5, a6) = args;
                    let parents = (p.mode as i64, results);
                    self.dispatch
                        .call1(py, (a0, a1, a2, a3, a4, a5, a6, parents))
                }
            };
            let outcome = match called {
                Ok(answer) => read_answer(answer.bind(py)).unwrap_or_else(|e| failure(py, e)),
                Err(e) => failure(py, e),
            };
            clear_pending_interrupt(ident);
            outcome
        })
    }

    fn thread_scope(&self, body: &mut (dyn FnMut() + Send)) {
        // Attach once and detach for the thread's whole life: the thread state then
        // survives between jobs, so each job's attach is a cheap re-acquire and Python
        // thread-locals (the thread's event loop) persist.
        Python::attach(|py| py.detach(body));
    }

    fn thread_stopping(&self) {
        Python::attach(|py| {
            if let Err(e) = self.thread_exit.call0(py) {
                e.print(py);
            }
        });
    }

    fn interrupt(&self, ident: u64) {
        self.interrupt_if(ident, &|| true);
    }

    fn interrupt_if(&self, ident: u64, still_running: &dyn Fn() -> bool) {
        if ident == 0 {
            return;
        }
        Python::attach(|py| {
            // Checked while attached: the job's thread cannot leave the task meanwhile.
            if !still_running() {
                return;
            }
            // SAFETY: attached; the exception type is a live class object we own a reference to.
            unsafe {
                pyo3::ffi::PyThreadState_SetAsyncExc(
                    ident as c_long,
                    self.timeout_error.bind(py).as_ptr(),
                );
            }
        });
    }
}
