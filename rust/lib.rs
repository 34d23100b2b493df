//! taskito's engine, exposed to Python as `taskito._taskito`. A job flows
//! `Queue.enqueue` (`py/`) -> `storage/` -> the scheduler claims it -> a worker thread runs
//! it -> the result handler records it (`engine/`) -> `storage/`.
//!
//! This file is the table of contents:
//! - the shared vocabulary, imported by the engine, the bindings and storage alike:
//!   `job.rs` (jobs, statuses, outcomes), `error.rs`, `config.rs` (a worker's settings),
//!   `retention.rs`, `schedule.rs` (cron), and `logbridge.rs` with `doorbell.rs` (engine
//!   records to Python's `logging`, and the bell that wakes the thread delivering them);
//! - `storage/`: the `Storage` trait and its SQLite and PostgreSQL backends, all the SQL;
//! - `engine/`: the threads of one worker process (scheduler, worker pool, watchdog, result
//!   handler, housekeeping) and the wiring that starts and stops them in order;
//! - `prefork/`: child processes that run tasks, and their pipe protocol;
//! - `py/`: the bindings, one file per storage area; with this file, the only code that
//!   knows about Python.

// The shared vocabulary.
pub mod config;
pub mod doorbell;
pub mod error;
pub mod job;
pub mod logbridge;
pub mod retention;
pub mod retry_rule;
pub mod schedule;

// The parts.
pub mod engine;
#[cfg(target_os = "linux")]
pub mod prefork;
mod py;
pub mod storage;

use pyo3::pymodule;

/// The compiled module. Everything public is re-exported by the `taskito` package.
#[pymodule]
mod _taskito {
    use pyo3::prelude::*;

    #[pymodule_export]
    use super::py::queue::PyQueueCore;

    #[pymodule_export]
    use super::py::logs::flush_logs;

    #[pymodule_export]
    use super::py::process::written_off_threads;

    #[pymodule_export]
    use super::py::queue_pool::PyAsyncLane;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("SCHEMA_VERSION", crate::storage::SCHEMA_VERSION)?;
        // The engine's `log` records go to Python's `logging`, under the `taskito` logger,
        // through a queue that engine threads never wait on (see logbridge.rs).
        crate::logbridge::install();
        crate::py::logs::deliver(m.py())?;
        Ok(())
    }
}
