//! When the timeout watchdog next wakes, and how a worker thread starting a job wakes it
//! sooner. The worker pool holds it and tells it of deadlines; the watchdog sleeps on it.
//! A job starting wakes the watchdog only when it ends before the moment the watchdog
//! already wakes at, so a busy worker pays no wake-up per job.

use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// When the watchdog next wakes, and how to wake it sooner. `None`: only when told.
#[derive(Default)]
pub struct Alarm {
    at: Mutex<Option<Instant>>,
    thread: OnceLock<Thread>,
}

impl Alarm {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job that must be looked at by `deadline` started: wakes the watchdog unless it
    /// wakes by then anyway.
    pub fn needed_by(&self, deadline: Instant) {
        let mut at = self.lock();
        if at.is_some_and(|a| a <= deadline) {
            return;
        }
        *at = Some(deadline);
        drop(at);
        if let Some(t) = self.thread.get() {
            t.unpark();
        }
    }

    /// Tells the alarm which thread to wake: the watchdog's, once it runs.
    pub(super) fn set_thread(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    /// Called by the watchdog before it looks at the running jobs: from now until it
    /// sleeps, every job start wakes it (the look may have missed that job).
    pub(super) fn looking(&self) {
        *self.lock() = None;
    }

    /// Sleeps until `next` (as the look found it) or until a job started since the look
    /// needs an earlier one.
    pub(super) fn sleep(&self, next: Option<Instant>) {
        let wake_at = {
            let mut at = self.lock();
            // A job that started during the look set `at`; the earlier of the two wins.
            let wake_at = match (*at, next) {
                (Some(a), Some(n)) => Some(a.min(n)),
                (a, n) => a.or(n),
            };
            *at = Some(wake_at.unwrap_or_else(far_future));
            wake_at
        };
        match wake_at {
            Some(t) => std::thread::park_timeout(t.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

/// A moment no job deadline reaches: with it stored, every job start wakes the watchdog.
fn far_future() -> Instant {
    // Far enough for any deadline, near enough never to overflow `Instant`.
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
