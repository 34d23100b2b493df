//! Whether an engine may take more work. Two things make a worker unhealthy: its store
//! refuses writes (disk full, file gone: outcomes cannot be recorded), or too many of its
//! threads were written off and are still stuck (replacing them all would grow threads
//! without end). While unhealthy the scheduler claims nothing and the registry row says
//! `unhealthy`; both clear by themselves.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

#[derive(Default)]
pub struct Health {
    store_failing: AtomicBool,
    /// Written-off threads not replaced yet because the bound was reached.
    threads_owed: AtomicUsize,
}

impl Health {
    pub fn ok(&self) -> bool {
        !self.store_failing.load(Ordering::SeqCst) && self.threads_owed.load(Ordering::SeqCst) == 0
    }

    /// The registry status to write.
    pub fn status(&self) -> &'static str {
        if self.ok() {
            "active"
        } else {
            "unhealthy"
        }
    }

    /// Records whether writes fail; returns whether that changed.
    pub fn set_store_failing(&self, failing: bool) -> bool {
        self.store_failing.swap(failing, Ordering::SeqCst) != failing
    }

    pub fn store_failing(&self) -> bool {
        self.store_failing.load(Ordering::SeqCst)
    }

    pub fn owe_thread(&self) {
        self.threads_owed.fetch_add(1, Ordering::SeqCst);
    }

    /// Takes one owed thread, if any; returns whether there was one.
    pub fn take_owed_thread(&self) -> bool {
        self.threads_owed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub fn threads_owed(&self) -> usize {
        self.threads_owed.load(Ordering::SeqCst)
    }
}
