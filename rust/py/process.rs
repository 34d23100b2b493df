//! Process-wide engine facts for the Python side.

use pyo3::prelude::*;

/// `_taskito.written_off_threads()`: threads written off (stuck in a task past its timeout
/// or at shutdown) that are still alive in this process. While any is, leaving through
/// interpreter teardown could hang on it.
#[pyfunction]
pub fn written_off_threads() -> usize {
    crate::engine::worker::written_off_alive()
}
