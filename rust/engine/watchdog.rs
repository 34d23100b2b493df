//! The timeout watchdog, on a thread of its own rather than a timer of the scheduler's
//! runtime: interrupting a task needs the GIL, and a task that passed its deadline inside a
//! C call that keeps the GIL makes that wait as long as the call. On the runtime, the wait
//! would stop this worker's heartbeats and claims too, and after `stale_after` other
//! workers would take it for dead and run its jobs again.
//!
//! It sleeps until the earliest moment a running job needs looking at (its deadline, or the
//! end of the grace after an interrupt), and without a running job it sleeps until one
//! starts: an idle worker pays nothing for it. A job starting is told to the watchdog (the
//! `Alarm` of `alarm.rs`) only when it ends before the moment the watchdog already wakes
//! at, so a busy worker pays no wake-up per job either.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::worker::WorkerPool;

/// How long a stopping engine waits for the watchdog thread to finish its look.
const JOIN_WAIT: Duration = Duration::from_secs(2);

pub struct Watchdog {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(pool: Arc<WorkerPool>, grace: Duration) -> Watchdog {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let alarm = pool.alarm();
        let alarm_of_thread = alarm.clone();
        let spawned = std::thread::Builder::new()
            .name("taskito-watchdog".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    alarm.looking();
                    let next = pool.check_timeouts(grace);
                    alarm.sleep(next);
                }
            });
        let thread = match spawned {
            Ok(t) => {
                alarm_of_thread.set_thread(t.thread().clone());
                // A job may have started before the thread was known to the alarm.
                t.thread().unpark();
                Some(t)
            }
            Err(e) => {
                log::error!("cannot start the timeout watchdog; timeouts are not enforced: {e}");
                None
            }
        };
        Watchdog { stop, thread }
    }

    /// Wakes the watchdog and waits (boundedly) for it to end, so it touches nothing of the
    /// engine after the engine is gone; a watchdog stuck waiting for the GIL is left behind
    /// rather than allowed to hold up the shutdown.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let Some(thread) = self.thread.take() else {
            return;
        };
        thread.thread().unpark();
        let deadline = Instant::now() + JOIN_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}
