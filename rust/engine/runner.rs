//! What runs a job, as the engine sees it: the `Runner` trait (implemented over Python in
//! `py/runner.rs`, by the prefork pool in `prefork/`, and by closures in tests), and the two
//! facts about a run that the worker pool and the async lane both record the same way: a
//! start written before the job runs, and the outcome of a job that passed its timeout.

use crate::engine::events::JobRef;
use crate::job::{ClaimedJob, Outcome};
use crate::storage::Storage;

/// Runs one job. Implemented over Python in `py/runner.rs` and by closures in tests.
pub trait Runner: Send + Sync + 'static {
    /// Called once on each new worker thread; returns an id `interrupt` understands.
    fn thread_started(&self) -> u64 {
        0
    }
    /// Runs the job to an outcome. Must not panic on task errors.
    fn run(&self, job: &ClaimedJob, thread_id: &str, ident: u64) -> Outcome;
    /// Asks the thread with `ident` to stop the job it runs (best effort).
    fn interrupt(&self, _ident: u64) {}
    /// Interrupts the thread with `ident` if `still_running()` says its job still runs,
    /// checked at a moment the job cannot move on (for Python: while holding the GIL).
    /// Called on a thread of its own, never on the watchdog, so it may wait.
    fn interrupt_if(&self, ident: u64, still_running: &dyn Fn() -> bool) {
        if still_running() {
            self.interrupt(ident)
        }
    }
    /// Called on the worker thread once the engine has settled the job `run` returned:
    /// with the outcome it hands to the result handler (`None`: put back as it was), and
    /// whether that replaced `run`'s own (a timeout). Called before the result is stored.
    fn settled(&self, _ident: u64, _outcome: Option<&Outcome>, _replaced: bool) {}
    /// Called on the watchdog's thread when it gives up on the thread with `ident` at its
    /// job's timeout and stores `outcome` for the job instead (`settled` is not called for
    /// it). Must not wait: for the GIL or for the stuck thread.
    fn written_off(&self, _ident: u64, _outcome: &Outcome) {}
    /// Called on a worker thread just before it exits, to release per-thread resources.
    fn thread_stopping(&self) {}
    /// Runs a worker thread's whole loop; lets an implementation keep per-thread state
    /// (an interpreter thread state, an event loop) alive across jobs.
    fn thread_scope(&self, body: &mut (dyn FnMut() + Send)) {
        body()
    }
}

/// Records that `job` starts now, before it runs: `Some(true)` if recorded, `None` if its
/// claim is gone (cancelled or put back meanwhile: it must not run), `Some(false)` if the
/// store failed (it runs anyway; its start is then recorded later, as for any job).
pub(crate) fn record_start(
    storage: &dyn Storage,
    job: &ClaimedJob,
    thread_id: &str,
) -> Option<bool> {
    match storage.record_start(&job.id, job.claim_token, thread_id) {
        Ok(true) => Some(true),
        Ok(false) => None,
        Err(e) => {
            log::warn!("could not record the start of job {}: {e}", job.id);
            Some(false)
        }
    }
}

pub(crate) fn timeout_outcome(job: &JobRef) -> Outcome {
    Outcome::Failed {
        error: format!(
            "TaskTimeoutError: job {} ({}) exceeded its timeout of {}s",
            job.id,
            job.task_name,
            job.timeout_ms as f64 / 1000.0
        ),
        traceback: String::new(),
        retryable: true,
        rule: None,
    }
}
