//! How the thread in `run_worker` waits while the engine runs. It holds the GIL between
//! waits to hand engine records to `logging` and to let Python's signal handlers run; it
//! wakes when records are queued (delivering at most every `DELIVER_GAP`), when the engine
//! stops, when a signal arrives (through `signal.set_wakeup_fd`, see `doorbell.rs`), and
//! otherwise once every `LEVEL_REFRESH` to read changed logger levels. Where signals cannot
//! be heard that way (the wakeup descriptor could not be set), it looks every 100 ms.

use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::doorbell;
use crate::engine::Engine;
use crate::logbridge;

/// The least time between two deliveries while records keep coming.
const DELIVER_GAP: Duration = Duration::from_millis(100);
/// How often an idle worker's calling thread wakes anyway: a logger made more verbose
/// meanwhile starts getting the engine's records within this.
const LEVEL_REFRESH: Duration = Duration::from_secs(1);
/// The look interval when signals cannot wake the thread.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

pub struct WorkerWait {
    /// The wakeup descriptor Python had before (`-1`: none), restored by `finish`; `None`
    /// when this run did not set one.
    previous_fd: Option<i64>,
    /// Whether a signal for this thread wakes it (or none can arrive: not the main thread).
    signals_heard: bool,
    last_delivery: Instant,
    /// The bell's rings when Python last had the chance to run signal handlers.
    seen: doorbell::Rings,
}

impl WorkerWait {
    /// In the main thread, points Python's signal wakeup descriptor at the bell.
    pub fn start(py: Python<'_>) -> WorkerWait {
        let mut wait = WorkerWait {
            previous_fd: None,
            signals_heard: false,
            last_delivery: Instant::now(),
            seen: doorbell::rings(),
        };
        let main = py
            .import("threading")
            .and_then(|t| {
                Ok(t.call_method0("current_thread")?
                    .is(&t.call_method0("main_thread")?))
            })
            .unwrap_or(true);
        if !main {
            // Python runs signal handlers in the main thread only.
            wait.signals_heard = true;
            return wait;
        }
        let Some(fd) = doorbell::signal_fd() else {
            return wait;
        };
        let set = py.import("signal").and_then(|s| {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("warn_on_full_buffer", false)?;
            s.call_method("set_wakeup_fd", (fd,), Some(&kwargs))?
                .extract::<i64>()
        });
        match set {
            Ok(previous) => {
                wait.previous_fd = Some(previous);
                wait.signals_heard = true;
            }
            Err(e) => log::debug!("cannot set the signal wakeup descriptor: {e}"),
        }
        wait
    }

    /// Waits (without the GIL) until there is something for the calling thread to do.
    /// Returns whether the engine has stopped.
    pub fn wait(&self, engine: &Engine) -> bool {
        if !self.signals_heard {
            return engine.wait(SIGNAL_CHECK);
        }
        let mut seen = self.seen;
        loop {
            if engine.wait(Duration::ZERO) {
                return true;
            }
            let gap = if logbridge::waiting() {
                DELIVER_GAP
            } else {
                LEVEL_REFRESH
            };
            let now = Instant::now();
            let until = self.last_delivery + gap;
            if now >= until {
                return false;
            }
            let (rings, signal) = doorbell::wait(seen, until - now);
            if signal {
                return engine.wait(Duration::ZERO);
            }
            seen = rings;
        }
    }

    /// Records that the calling thread delivered records just now; it is about to run
    /// signal handlers, so only a signal after this one needs to wake it.
    pub fn delivered(&mut self) {
        self.last_delivery = Instant::now();
        self.seen = doorbell::rings();
    }

    /// Gives Python back the wakeup descriptor it had.
    pub fn finish(self, py: Python<'_>) {
        if let Some(previous) = self.previous_fd {
            let restored = py
                .import("signal")
                .and_then(|s| s.call_method1("set_wakeup_fd", (previous,)));
            if let Err(e) = restored {
                log::debug!("cannot restore the signal wakeup descriptor: {e}");
            }
        }
    }
}
