//! Hands the engine's queued log records to Python's `logging` (see `logbridge.rs`); runs
//! only on threads that hold the GIL anyway.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::logbridge::{self, Record};

/// Loggers of engine records: `taskito.` + the module path with dots (`taskito._taskito.scheduler`).
fn logger_name(target: &str) -> String {
    format!("taskito.{}", target.replace("::", "."))
}

fn emit(py: Python<'_>, logging: &Bound<'_, PyModule>, r: Record) -> PyResult<()> {
    let name = logger_name(&r.target);
    let logger = logging.call_method1("getLogger", (name.as_str(),))?;
    let level = logbridge::python_level(r.level);
    if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        return Ok(());
    }
    let record = logger.call_method1(
        "makeRecord",
        (
            name.as_str(),
            level,
            r.file.as_str(),
            r.line,
            r.message.as_str(),
            PyTuple::empty(py),
            py.None(),
        ),
    )?;
    // When and where it was logged, not when it was delivered.
    record.setattr("created", r.created)?;
    record.setattr("msecs", (r.created.fract() * 1000.0).floor())?;
    if let Ok(start) = logging
        .getattr("_startTime")
        .and_then(|s| s.extract::<f64>())
    {
        record.setattr("relativeCreated", (r.created - start) * 1000.0)?;
    }
    record.setattr("threadName", r.thread.as_str())?;
    logger.call_method1("handle", (record,))?;
    Ok(())
}

/// Reads which levels the `taskito` loggers want, so engine threads queue nothing else.
fn refresh_threshold(logging: &Bound<'_, PyModule>) -> PyResult<()> {
    let mut lowest: i64 = logging
        .call_method1("getLogger", ("taskito",))?
        .call_method0("getEffectiveLevel")?
        .extract()?;
    // A child logger of the engine may be set more verbose than `taskito` itself.
    let manager = logging.getattr("root")?.getattr("manager")?;
    let loggers = manager.getattr("loggerDict")?;
    let names: Vec<String> = loggers
        .call_method0("keys")?
        .try_iter()?
        .filter_map(|k| k.ok()?.extract::<String>().ok())
        .filter(|k| k.starts_with("taskito._taskito"))
        .collect();
    for name in names {
        let level: i64 = logging
            .call_method1("getLogger", (name.as_str(),))?
            .call_method0("getEffectiveLevel")?
            .extract()?;
        lowest = lowest.min(level);
    }
    logbridge::set_threshold(logbridge::filter_for_python_level(lowest));
    Ok(())
}

/// Keeps an error that is not an `Exception` (a `KeyboardInterrupt` a signal handler raised
/// while logging ran Python code): the caller must see it. Others are logging's business.
fn keep_interrupt(py: Python<'_>, err: PyErr, first: &mut Option<PyErr>) {
    if err.is_instance_of::<pyo3::exceptions::PyException>(py) {
        err.print(py);
    } else if first.is_none() {
        *first = Some(err);
    }
}

/// Delivers every queued engine record to `logging` and refreshes the level threshold.
/// Errors of handlers are printed, not raised; only an exception that is not an `Exception`
/// (a signal handler's `KeyboardInterrupt`, raised while this ran Python code) is returned.
pub fn deliver(py: Python<'_>) -> PyResult<()> {
    let logging = py.import("logging")?;
    let mut interrupt = None;
    for record in logbridge::take() {
        if let Err(e) = emit(py, &logging, record) {
            keep_interrupt(py, e, &mut interrupt);
        }
    }
    let dropped = logbridge::take_dropped();
    if dropped > 0 {
        let warned = logging
            .call_method1("getLogger", ("taskito._taskito",))
            .and_then(|l| {
                l.call_method1(
                    "warning",
                    (format!(
                        "{dropped} engine log record(s) were dropped: they came faster than \
                         they could be delivered"
                    ),),
                )
            });
        if let Err(e) = warned {
            keep_interrupt(py, e, &mut interrupt);
        }
    }
    if let Err(e) = refresh_threshold(&logging) {
        keep_interrupt(py, e, &mut interrupt);
    }
    match interrupt {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `_taskito.flush_logs()`: delivers queued engine records now (also run at exit).
#[pyfunction]
pub fn flush_logs(py: Python<'_>) -> PyResult<()> {
    deliver(py)
}
