//! The Python bindings: the only code that knows about Python.

mod convert;
pub mod errors;
pub mod queue;
mod queue_ops;
pub mod runner;
