//! taskito's engine: a SQLite-backed job store, a scheduler thread, a pool of worker threads
//! and a result handler, exposed to Python as `taskito._taskito`.
//!
//! Data flow: `Queue.enqueue` -> storage -> scheduler (claim) -> bounded channel -> worker
//! threads (run) -> result channel -> result handler -> storage.

pub mod async_lane;
pub mod config;
pub mod control;
pub mod engine;
pub mod error;
pub mod job;
pub mod local;
#[cfg(target_os = "linux")]
pub mod prefork;
pub mod results;
pub mod retention;
pub mod scheduler;
pub mod storage;
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
    use super::py::queue_pool::PyAsyncLane;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add("SCHEMA_VERSION", crate::storage::SCHEMA_VERSION)?;
        // The engine's `log` records go to Python's `logging`, under the `taskito` logger.
        // Loggers are cached but their levels are read on every record, so configuring
        // logging after import still takes effect. Fails only if a logger is already set.
        let _ = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers)?
            .set_prefix("taskito")
            .install();
        Ok(())
    }
}
