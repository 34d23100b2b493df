//! The scheduler's poll timer (and due times): one-shot sleeps that wake the scheduler
//! thread once each.
//!
//! Tokio's timer wheel keeps a sleep of more than a few milliseconds on an upper level of
//! the wheel and moves it down when the level's slot begins: a 50 ms sleep that crosses
//! one of the wheel's 64 ms boundaries (most of them do) wakes the thread twice, once for
//! the move and once when due, and a one-second sleep likewise. An idle worker's scheduler
//! sleeps the poll interval over and over, so on Linux the timer is a `timerfd` armed for
//! exactly its wait and heard through the runtime's reactor instead: one wake-up per sleep,
//! and three system calls (arm, the reactor's wait, one read).
//! Elsewhere, or if the descriptor cannot be made, it is Tokio's sleep.

use tokio::time::Instant;

pub struct ExactTimer {
    #[cfg(target_os = "linux")]
    fd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Default for ExactTimer {
    fn default() -> Self {
        ExactTimer::new()
    }
}

impl ExactTimer {
    /// Must be called inside the runtime (which needs its I/O driver on Linux).
    pub fn new() -> ExactTimer {
        ExactTimer {
            #[cfg(target_os = "linux")]
            fd: linux::timer_fd()
                .map_err(|e| log::debug!("no timerfd for a scheduler timer, Tokio's instead: {e}"))
                .ok(),
        }
    }

    /// Sleeps until `deadline`. Cancel-safe: dropped early, it disarms the timer, so an
    /// abandoned sleep wakes nothing later.
    pub async fn sleep_until(&mut self, deadline: Instant) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.fd {
            if linux::sleep_until(fd, deadline).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep_until(deadline).await
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;
    use tokio::time::Instant;

    pub fn timer_fd() -> io::Result<AsyncFd<OwnedFd>> {
        // SAFETY: plain system call; the descriptor it returns is owned from here on.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an `OwnedFd` stays open, and is the same descriptor, until it is dropped
        // with the `AsyncFd`. (Called on the scheduler's runtime, which has a reactor.)
        unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(io::Error::from)
    }

    /// Arms the timer `after` from now (zero disarms it).
    fn arm(fd: &AsyncFd<OwnedFd>, after: std::time::Duration) -> io::Result<()> {
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: after.as_secs() as libc::time_t,
                tv_nsec: after.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let r = unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Disarms the timer when a sleep ends early (another branch of a `select!` won).
    struct Disarm<'a>(&'a AsyncFd<OwnedFd>);

    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            let _ = arm(self.0, std::time::Duration::ZERO);
        }
    }

    /// `Err` if the timer could not be used (the caller sleeps Tokio's way instead).
    pub async fn sleep_until(fd: &AsyncFd<OwnedFd>, deadline: Instant) -> io::Result<()> {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            return Ok(());
        }
        // Re-arming also forgets an expiry of an earlier sleep that nobody read.
        arm(fd, wait)?;
        let disarm = Disarm(fd);
        loop {
            let mut ready = fd.readable().await?;
            let mut expiries = [0u8; 8];
            // SAFETY: reads at most 8 bytes into an 8-byte buffer.
            let n =
                unsafe { libc::read(fd.as_raw_fd(), expiries.as_mut_ptr().cast(), expiries.len()) };
            // A one-shot timer that was just read cannot be readable again until it is
            // re-armed and expires, which the reactor reports anew; so its readiness is
            // cleared either way, and the next sleep goes straight to the reactor instead of
            // first reading nothing.
            ready.clear_ready();
            if n >= 0 {
                std::mem::forget(disarm);
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            // Readiness left from an earlier sleep: it has been cleared, wait again.
        }
    }
}
