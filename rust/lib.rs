//! taskito's engine: a SQLite-backed job store, a scheduler thread, a pool of worker threads
//! and a result handler, exposed to Python as `taskito._taskito`.
//!
//! Data flow: `Queue.enqueue` -> storage -> scheduler (claim) -> bounded channel -> worker
//! threads (run) -> result channel -> result handler -> storage.

pub mod async_lane;
pub mod config;
pub mod control;
pub mod doorbell;
pub mod engine;
pub mod error;
pub mod events;
pub mod exact_timer;
pub mod health;
pub mod housekeeping;
pub mod job;
pub mod liveness;
pub mod load;
pub mod local;
pub mod logbridge;
#[cfg(target_os = "linux")]
pub mod prefork;
pub mod results;
pub mod retention;
pub mod retry_rule;
pub mod schedule;
pub mod scheduler;
pub mod storage;
pub mod waker;
pub mod watchdog;
pub mod worker;

mod py;

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
