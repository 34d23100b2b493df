//! The handle shared by a queue object and the engine it runs: wake-ups for the scheduler,
//! the shutdown state machine (running -> draining -> forced), and a signal for threads
//! waiting on job results.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

const RUNNING: u8 = 0;
const DRAINING: u8 = 1;
const FORCED: u8 = 2;

/// One per queue object; outlives the engines it starts.
#[derive(Default)]
pub struct Control {
    /// Wakes the scheduler: an in-process enqueue, a worker that became free, a stop.
    pub wake: Notify,
    stop: AtomicU8,
    committed: Mutex<u64>,
    committed_cv: Condvar,
}

impl Control {
    pub fn new() -> Control {
        Control::default()
    }

    /// Resets the stop state before an engine starts.
    pub fn arm(&self) {
        self.stop.store(RUNNING, Ordering::SeqCst);
    }

    /// Graceful stop: claim nothing more, let running jobs finish up to the drain timeout.
    pub fn request_shutdown(&self) {
        let _ = self
            .stop
            .compare_exchange(RUNNING, DRAINING, Ordering::SeqCst, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Immediate stop: running jobs are put back at once.
    pub fn force_stop(&self) {
        self.stop.store(FORCED, Ordering::SeqCst);
        self.wake.notify_one();
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != RUNNING
    }

    pub fn forced(&self) -> bool {
        self.stop.load(Ordering::SeqCst) == FORCED
    }

    /// Called by the result handler after each committed batch.
    pub fn results_committed(&self) {
        let mut n = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.wrapping_add(1);
        self.committed_cv.notify_all();
    }

    /// The current commit counter, to pass to `wait_results`.
    pub fn results_epoch(&self) -> u64 {
        *self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Blocks until a batch is committed after `epoch`, or `timeout`.
    pub fn wait_results(&self, epoch: u64, timeout: Duration) {
        let guard = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .committed_cv
            .wait_timeout_while(guard, timeout, |n| *n == epoch);
    }
}
