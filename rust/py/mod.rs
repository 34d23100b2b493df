//! The Python bindings: the only code that knows about Python.

mod convert;
pub mod errors;
pub mod logs;
pub mod process;
pub mod queue;
mod queue_admin;
mod queue_inspect;
mod queue_job_control;
mod queue_limits;
mod queue_links;
mod queue_pages;
mod queue_pause;
mod queue_periodic;
pub mod queue_pool;
mod queue_retention;
mod queue_task_logs;
mod queue_workers;
pub mod runner;
mod units;
mod worker_wait;
