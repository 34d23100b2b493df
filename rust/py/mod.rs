//! The Python bindings: the only code that knows about Python.

mod convert;
pub mod errors;
pub mod logs;
pub mod process;
pub mod queue;
mod queue_canvas;
mod queue_ops;
mod queue_pages;
mod queue_pause;
mod queue_periodic;
mod queue_plan;
pub mod queue_pool;
mod queue_retention;
pub mod runner;
mod worker_wait;
