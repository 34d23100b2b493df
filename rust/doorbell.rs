//! What wakes the thread waiting in `run_worker` (the one that holds the GIL anyway and
//! hands engine records to `logging`): engine records queued, an engine stopped, a signal
//! arrived. Without it that thread would have to look every 100 ms; with it an idle worker's
//! calling thread sleeps until there is something to do (and looks once a second for
//! changed logger levels).
//!
//! Records and stops ring a process-wide bell (a counter and a condition variable: every
//! waiting thread wakes and checks its own engine). Signals reach it through Python's
//! `signal.set_wakeup_fd`: Python's C-level handler writes the signal number to a pipe, and
//! a thread blocked on the pipe's other end rings the bell, so Ctrl-C is seen at once.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub struct Rings {
    /// Every ring so far.
    all: u64,
    /// Rings for signals so far.
    signals: u64,
}

#[derive(Default)]
struct Bell {
    rings: Mutex<Rings>,
    cv: Condvar,
}

fn bell() -> &'static Bell {
    static BELL: OnceLock<Bell> = OnceLock::new();
    BELL.get_or_init(Bell::default)
}

impl Bell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Rings> {
        self.rings.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ring(&self, signal: bool) {
        let mut r = self.lock();
        r.all = r.all.wrapping_add(1);
        if signal {
            r.signals = r.signals.wrapping_add(1);
        }
        self.cv.notify_all();
    }
}

/// Wakes every thread waiting in `run_worker`: records are queued, or an engine stopped.
pub fn ring() {
    bell().ring(false);
}

/// The rings so far, to pass to `wait`.
pub fn rings() -> Rings {
    *bell().lock()
}

/// Waits up to `timeout` for a ring after `seen`; returns the rings then and whether a
/// signal arrived since `seen`.
pub fn wait(seen: Rings, timeout: Duration) -> (Rings, bool) {
    let b = bell();
    let guard = b.lock();
    let (guard, _) =
        b.cv.wait_timeout_while(guard, timeout, |r| *r == seen)
            .unwrap_or_else(|p| p.into_inner());
    (*guard, guard.signals != seen.signals)
}

/// The descriptor to give `signal.set_wakeup_fd`: a signal written to it rings the bell.
/// Made (with the thread that listens to it) on first use; `None` if that failed.
pub fn signal_fd() -> Option<RawFd> {
    static WRITE_END: OnceLock<Option<OwnedFd>> = OnceLock::new();
    WRITE_END
        .get_or_init(|| match signal_pipe() {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::debug!(
                    "no signal pipe, the calling thread looks for signals every 100 ms: {e}"
                );
                None
            }
        })
        .as_ref()
        .map(|fd| fd.as_raw_fd())
}

/// A pipe whose write end is non-blocking (as `set_wakeup_fd` requires) and whose read end
/// a thread of its own blocks on for good: it wakes only when a signal came.
fn signal_pipe() -> std::io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors nothing else owns.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read_end, &write_end] {
        // SAFETY: plain fcntl calls on descriptors owned here.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: as above.
    let flags = unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_GETFL) };
    if flags < 0
        || unsafe {
            libc::fcntl(
                write_end.as_raw_fd(),
                libc::F_SETFL,
                flags | libc::O_NONBLOCK,
            )
        } != 0
    {
        return Err(std::io::Error::last_os_error());
    }
    let mut reader = std::fs::File::from(read_end);
    std::thread::Builder::new()
        .name("taskito-signals".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => bell().ring(true),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(write_end)
}
