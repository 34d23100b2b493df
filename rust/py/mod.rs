//! The Python bindings: the only code that knows about Python. `queue.rs` is the
//! `QueueCore` class (its constructor and the enqueue hot path); `queue_<area>.rs` hold its
//! other methods, one file per storage area (inspect, pages, workers, retention, periodic,
//! limits, links, job_control, admin, task_logs, pause, settings). `queue_pool.rs` is the
//! async lane and the prefork pool's runner, `runner.rs` runs a job through Python,
//! `worker_wait.rs` is how the thread in `run_worker` waits; `convert.rs` (records to
//! dicts), `units.rs` (seconds checked and saturated), `errors.rs` and `logs.rs` serve them
//! all.

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
mod queue_plan;
pub mod queue_pool;
mod queue_retention;
mod queue_settings;
mod queue_task_logs;
mod queue_workers;
pub mod runner;
mod units;
mod worker_wait;
