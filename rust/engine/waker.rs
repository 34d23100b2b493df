//! The wake thread: listens to the store's `WakeSource` (hints that another process made
//! work ready) on a plain OS thread and wakes the scheduler. A thread of its own because a
//! wake source blocks (a socket read, a database notification) and must never hold up a
//! Tokio runtime thread.
//!
//! Coalescing: after waking the scheduler, the thread does not listen again until the
//! scheduler has gone idle once more. While it claims or runs jobs, hints pile up in the
//! source (a datagram socket drops what does not fit) and cost nothing; the first one read
//! after the scheduler idles wakes it once, so no hint is lost and a busy worker pays no
//! wake-up per job enqueued elsewhere.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::control::Control;
use crate::storage::WakeSource;

/// How long one wait on the source lasts before the thread looks at its stop flag.
const SLICE: Duration = Duration::from_secs(1);

/// Counts the scheduler's entries into its idle wait.
#[derive(Default)]
pub struct IdleGate {
    state: Mutex<GateState>,
    cv: Condvar,
}

#[derive(Default)]
struct GateState {
    epoch: u64,
    /// Whether the wake thread waits for the next entry (only then is there anyone to
    /// notify: an idle scheduler enters its wait once per poll and pays no system call).
    waiting: bool,
}

impl IdleGate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called by the scheduler each time it is about to wait with nothing to do.
    pub fn entered_idle(&self) {
        let mut g = self.lock();
        g.epoch = g.epoch.wrapping_add(1);
        if g.waiting {
            self.cv.notify_all();
        }
    }

    fn current(&self) -> u64 {
        self.lock().epoch
    }

    /// Waits up to `timeout` for an idle entry after `seen`; true if there was one.
    fn wait_past(&self, seen: u64, timeout: Duration) -> bool {
        let mut guard = self.lock();
        guard.waiting = true;
        let (mut guard, _) = self
            .cv
            .wait_timeout_while(guard, timeout, |g| g.epoch == seen)
            .unwrap_or_else(|p| p.into_inner());
        guard.waiting = false;
        guard.epoch != seen
    }
}

pub struct WakeThread {
    stop: Arc<AtomicBool>,
    _thread: JoinHandle<()>,
}

impl WakeThread {
    /// Starts listening; `None` (polling only) if the thread cannot be started.
    pub fn start(
        mut source: Box<dyn WakeSource>,
        control: Arc<Control>,
        gate: Arc<IdleGate>,
    ) -> Option<WakeThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("taskito-wake".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    if !source.wait(SLICE) {
                        continue;
                    }
                    let seen = gate.current();
                    control.wake.notify_one();
                    while !flag.load(Ordering::SeqCst) && !gate.wait_past(seen, SLICE) {}
                }
            });
        match spawned {
            Ok(t) => Some(WakeThread { stop, _thread: t }),
            Err(e) => {
                log::warn!("cannot start the wake thread, polling only: {e}");
                None
            }
        }
    }

    /// Asks the thread to stop. Not joined: it ends within one slice and then closes its
    /// source (the socket file goes with it); a shutdown does not wait for that.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Hears that jobs finished in other processes and wakes the threads waiting on results
/// (`Control::wait_results`). One per queue object, started by its first result wait and
/// stopped when the object goes.
pub struct ResultWaker {
    stop: Arc<AtomicBool>,
}

impl ResultWaker {
    pub fn start(mut source: Box<dyn WakeSource>, control: Arc<Control>) -> Option<ResultWaker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("taskito-result-wake".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    if source.wait(SLICE) {
                        control.results_committed();
                    }
                }
            });
        match spawned {
            Ok(_) => Some(ResultWaker { stop }),
            Err(e) => {
                log::debug!("cannot start the result wake thread: {e}");
                None
            }
        }
    }
}

impl Drop for ResultWaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A source holding `n` hints, handed out one per wait.
    struct Hints(Arc<AtomicUsize>);

    impl WakeSource for Hints {
        fn wait(&mut self, timeout: Duration) -> bool {
            let taken = self
                .0
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if taken.is_err() {
                std::thread::sleep(timeout.min(Duration::from_millis(5)));
            }
            taken.is_ok()
        }
    }

    fn woken(control: &Control) -> bool {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), control.wake.notified())
                .await
                .is_ok()
        })
    }

    #[test]
    fn a_burst_wakes_the_scheduler_once_until_it_idles_again() {
        let left = Arc::new(AtomicUsize::new(3));
        let control = Arc::new(Control::new());
        let gate = Arc::new(IdleGate::default());
        let thread =
            WakeThread::start(Box::new(Hints(left.clone())), control.clone(), gate.clone())
                .unwrap();
        assert!(woken(&control));
        // The scheduler is busy (no idle entry yet): the other hints wait in the source.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(left.load(Ordering::SeqCst), 2);
        gate.entered_idle();
        assert!(woken(&control));
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while left.load(Ordering::SeqCst) != 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(left.load(Ordering::SeqCst), 1);
        thread.stop();
    }
}
