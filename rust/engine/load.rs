//! What the scheduler knows of its pool's load: how many claimed jobs are not yet handed
//! back, and how long jobs typically run here (which decides how far it claims ahead).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// What the engine counts: jobs claimed and not yet handed back (in the channel or running).
#[derive(Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::SeqCst);
    }
    pub fn done(&self) {
        self.sub(1);
    }
    pub fn sub(&self, n: usize) {
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

/// A moving average of how long jobs take to run here, which decides whether the
/// scheduler may claim ahead of free workers.
#[derive(Default)]
pub struct RunTimes(AtomicU64);

impl RunTimes {
    /// Folds one run into the average (weight 1/8; racy updates only lose a sample).
    pub fn record(&self, took: Duration) {
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        let old = self.0.load(Ordering::Relaxed);
        let new = if old == 0 {
            us.max(1)
        } else {
            old - old / 8 + us / 8
        };
        self.0.store(new.max(1), Ordering::Relaxed);
    }

    /// The average run time; `None` before the first job.
    pub fn typical(&self) -> Option<Duration> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }
}
