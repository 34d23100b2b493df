//! One child process: started with a pair of pipes (kept off stdin/stdout, which stay the
//! task's own), waited for until it has imported the app, then fed one job at a time.
//! Its pid is published for `kill`, and withdrawn before the process is reaped, so a
//! signal can never reach a recycled pid.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame::{self, Reply};

/// How a child is started.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The command, e.g. `[python, -m, taskito.worker.prefork_child, --app, m:q]`; `--fds R,W`
    /// is appended.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How long a child may take to import the app.
    pub start_timeout: Duration,
}

/// The pid of the live child of a slot, `None` while there is none or once it is reaped.
#[derive(Default)]
pub struct Pid(Mutex<Option<i32>>);

impl Pid {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<i32>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self) -> Option<i32> {
        *self.lock()
    }

    /// Sends `signal` to the child if it is still `pid` (not reaped, not replaced).
    pub fn signal(&self, pid: i32, signal: i32) {
        let guard = self.lock();
        if *guard == Some(pid) {
            // SAFETY: plain syscall; the pid is an unreaped child of ours (held under the lock).
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

pub struct ChildProc {
    child: Child,
    /// Shared with whoever may need to signal this child (`PreforkRunner::interrupt`).
    pub pid: Arc<Pid>,
    /// `None` once closed (the child's cue to exit).
    to_child: Option<File>,
    from_child: File,
    pub jobs: u64,
}

fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for two descriptors; O_CLOEXEC keeps them out of other
    // children started meanwhile.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// A description of how a child ended: `exit code 1` or `signal 11 (SIGSEGV)`.
pub fn describe(status: std::process::ExitStatus) -> String {
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGKILL => "SIGKILL",
            libc::SIGTERM => "SIGTERM",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGILL => "SIGILL",
            libc::SIGINT => "SIGINT",
            _ => "",
        };
        if name.is_empty() {
            format!("signal {sig}")
        } else {
            format!("signal {sig} ({name})")
        }
    } else {
        format!("exit code {}", status.code().unwrap_or(-1))
    }
}

impl ChildProc {
    /// Starts a child and waits until it reports the app imported.
    pub fn start(spec: &Spec) -> Result<ChildProc, String> {
        let (job_r, job_w) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
        let (out_r, out_w) = pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
        let (cr, cw) = (job_r.as_raw_fd(), out_w.as_raw_fd());
        let mut cmd = Command::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..])
            .arg("--fds")
            .arg(format!("{cr},{cw}"))
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        // SAFETY: only fcntl, which is async-signal-safe, runs between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in [cr, cw] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start a child process ({}): {e}", spec.argv[0]))?;
        // The child's ends live on in the child only: closing ours makes its death an EOF.
        drop(job_r);
        drop(out_w);
        let pid = Arc::new(Pid(Mutex::new(Some(child.id() as i32))));
        let mut proc = ChildProc {
            child,
            pid,
            to_child: Some(job_w),
            from_child: out_r,
            jobs: 0,
        };
        match proc.await_ready(spec.start_timeout) {
            Ok(()) => Ok(proc),
            Err(e) => {
                proc.kill_and_reap();
                Err(e)
            }
        }
    }

    fn await_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let mut poll = libc::pollfd {
            fd: self.from_child.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, ms) };
        if ready == 0 {
            return Err(format!(
                "the child process did not load the app within {}s",
                timeout.as_secs_f64()
            ));
        }
        match frame::read_frame(&mut self.from_child) {
            Ok(Some(body)) => match frame::parse_reply(&body) {
                Ok(Reply::Ready) => Ok(()),
                Ok(Reply::StartupError(msg)) => Err(msg),
                Ok(_) | Err(_) => Err("the child process sent a malformed greeting".into()),
            },
            Ok(None) | Err(_) => {
                let how = self.wait_exit(Duration::from_secs(2));
                Err(format!("the child process exited while starting ({how})"))
            }
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends one job; an error means the child is gone.
    pub fn send(&mut self, frame_bytes: &[u8]) -> io::Result<()> {
        match self.to_child.as_mut() {
            Some(w) => frame::write_frame(w, frame_bytes),
            None => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Waits for the child's answer; `None` when it died (end of stream) or broke the
    /// protocol.
    pub fn receive(&mut self) -> Option<Reply> {
        match frame::read_frame(&mut self.from_child) {
            Ok(Some(body)) => frame::parse_reply(&body).ok(),
            _ => None,
        }
    }

    /// Whether the child has exited (without reaping it).
    pub fn exited(&self) -> bool {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child, WNOWAIT leaves it to be reaped later.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for a WEXITED result; zero means nothing changed.
        rc == 0 && unsafe { info.si_pid() } != 0
    }

    /// How the child ended, waiting up to `wait` for it to exit (then killing it).
    fn wait_exit(&mut self, wait: Duration) -> String {
        let until = Instant::now() + wait;
        while !self.exited() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !self.exited() {
            let _ = self.child.kill();
        }
        match self.child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("unknown status: {e}"),
        }
    }

    /// Withdraws the pid, then reaps the child, which must be exiting: returns how it
    /// ended. The order matters: a kill looks the pid up under the same lock.
    pub fn reap(mut self, wait: Duration) -> String {
        let until = Instant::now() + wait;
        while !self.exited() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        *self.pid.lock() = None;
        self.wait_exit(Duration::ZERO)
    }

    fn kill_and_reap(&mut self) {
        *self.pid.lock() = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the child to finish (end of its job stream) and reaps it; kills it if it
    /// does not exit within `wait`.
    pub fn retire(mut self, wait: Duration) {
        self.to_child = None;
        let _ = self.reap(wait);
    }
}
