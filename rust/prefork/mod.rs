//! The prefork pool: a `Runner` whose worker threads each own one child process and run
//! their jobs there, so a task can be stopped whatever it is doing (a thread cannot be
//! stopped inside C code; a process can be killed), a leaking extension is reset by
//! recycling, and CPU-bound tasks use every core. The thread writes a job frame to its
//! child and blocks on the answer without the GIL. At the deadline the watchdog's
//! `interrupt` kills the child (SIGTERM, then SIGKILL after a short grace); the end of the
//! stream tells the thread, which reports the job's failure and starts a replacement in
//! the background. A child that dies on its own (a segfault, `os._exit`) fails or retries
//! only its job, with the signal or exit code in the error. An optional observer sees each
//! job's outcome and run time in the parent (the worker's metrics count prefork jobs there).
//!
//! Job events fire in the parent only, through an optional relay: the child sends the
//! events a job raises as it runs at once, and holds back its closing events (completed,
//! failed, retrying, dead, cancelled) until its answer. The parent relays those once the
//! engine has settled the job (`Runner::settled`), unless the engine decided otherwise (a
//! timeout) or the child died: then it relays the failure the engine stores instead. A
//! thread the watchdog writes off relays its timeout at once (`Runner::written_off`).

mod child;
mod frame;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use child::Spec;
use child::{ChildProc, Pid};
use frame::Reply;

use crate::engine::runner::Runner;
use crate::job::{ClaimedJob, Outcome};

/// How long a child asked to finish (recycling, shutdown) may take before it is killed.
const RETIRE_WAIT: Duration = Duration::from_secs(5);
/// How long a dead child's exit status is waited for after its pipe closed.
const REAP_WAIT: Duration = Duration::from_secs(2);

thread_local! {
    /// The ident of the slot the calling worker thread owns.
    static IDENT: Cell<u64> = const { Cell::new(0) };
}

/// One worker thread's child.
#[derive(Default)]
struct Slot {
    /// The child, held by `run` for the whole job; `None` while being replaced.
    io: Mutex<Option<ChildProc>>,
    /// The pid handle of the child now in `io`, for `interrupt` (which must not wait for
    /// `io`: a running job holds it).
    live: Mutex<Option<Arc<Pid>>>,
    stopped: AtomicBool,
    /// The last job's closing events, from its run until the engine settles it.
    held: Mutex<Option<Held>>,
}

/// A job run in a child whose closing events wait for the engine's word.
struct Held {
    job: JobInfo,
    /// The child's closing events; `None` when the child died before answering.
    events: Option<Vec<String>>,
}

impl Slot {
    fn io(&self) -> MutexGuard<'_, Option<ChildProc>> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn live(&self) -> MutexGuard<'_, Option<Arc<Pid>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn held(&self) -> MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Puts a fresh child in the slot (the caller holds `io`).
    fn install(&self, io: &mut Option<ChildProc>, proc: ChildProc) {
        *self.live() = Some(proc.pid.clone());
        *io = Some(proc);
    }
}

/// Called on the worker thread after each job with its outcome and how long it ran: the
/// child's own timing, or the time since the job was sent when the child died.
pub type Observer = Box<dyn Fn(&ClaimedJob, &Outcome, Duration) + Send + Sync>;

/// What an event names of its job.
#[derive(Clone)]
pub struct JobInfo {
    pub id: String,
    pub task_name: String,
    pub queue: String,
    pub retry_count: i64,
    pub max_retries: i64,
}

/// What the relay fires for a job.
pub enum Relayed<'a> {
    /// Events as the child raised them (JSON texts).
    Forwarded(&'a [String]),
    /// The events of a failure the child could not report (it died, or the engine replaced
    /// its outcome): failed, then retrying or dead as `retryable` and the retries left say.
    Failed { error: &'a str, retryable: bool },
}

/// Fires job events in the parent; called on worker threads only.
pub type Relay = Box<dyn Fn(&JobInfo, Relayed<'_>) + Send + Sync>;

pub struct PreforkRunner {
    spec: Arc<Spec>,
    observer: Option<Observer>,
    relay: Option<Arc<Relay>>,
    max_tasks_per_child: Option<u64>,
    kill_grace: Duration,
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next_ident: AtomicU64,
    /// The child started by `new` (to fail fast on an app the child cannot load), handed
    /// to the first worker thread.
    spare: Mutex<Option<ChildProc>>,
}

impl PreforkRunner {
    /// Starts one child to check the app loads; its error is the caller's.
    pub fn new(
        spec: Spec,
        max_tasks_per_child: Option<u64>,
        kill_grace: Duration,
    ) -> Result<PreforkRunner, String> {
        let first = ChildProc::start(&spec)?;
        Ok(PreforkRunner {
            spec: Arc::new(spec),
            observer: None,
            relay: None,
            max_tasks_per_child,
            kill_grace,
            slots: Mutex::new(HashMap::new()),
            next_ident: AtomicU64::new(1),
            spare: Mutex::new(Some(first)),
        })
    }

    /// Sets the observer of every job's outcome (see `Observer`).
    pub fn with_observer(mut self, observer: Observer) -> PreforkRunner {
        self.observer = Some(observer);
        self
    }

    /// Sets the relay of job events (see `Relay`).
    pub fn with_relay(mut self, relay: Relay) -> PreforkRunner {
        self.relay = Some(Arc::new(relay));
        self
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<u64, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, ident: u64) -> Option<Arc<Slot>> {
        self.slots().get(&ident).cloned()
    }

    /// The pids of the live children (for tests and logs).
    pub fn pids(&self) -> Vec<i32> {
        self.slots()
            .values()
            .filter_map(|s| s.live().as_ref().and_then(|p| p.get()))
            .collect()
    }

    /// Starts a replacement child for `slot` on a thread of its own (reaping `old` first,
    /// if given), so the outcome of the job that ended the old one is not held up.
    fn refill_later(&self, slot: Arc<Slot>, old: Option<ChildProc>) {
        let spec = self.spec.clone();
        let spawned = std::thread::Builder::new()
            .name("taskito-prefork-refill".into())
            .spawn(move || {
                if let Some(old) = old {
                    old.retire(RETIRE_WAIT);
                }
                let mut io = slot.io();
                if io.is_none() && !slot.stopped.load(Ordering::SeqCst) {
                    match ChildProc::start(&spec) {
                        Ok(p) => slot.install(&mut io, p),
                        Err(e) => log::error!("cannot start a prefork child: {e}"),
                    }
                }
            });
        if let Err(e) = spawned {
            // The next job starts a child itself.
            log::warn!("cannot start a thread to replace a prefork child: {e}");
        }
    }

    /// Kills every child still alive: after the engine has stopped, jobs of threads it
    /// wrote off were put back and must not go on running.
    pub fn kill_all(&self) {
        let slots: Vec<Arc<Slot>> = self.slots().drain().map(|(_, s)| s).collect();
        for slot in slots {
            slot.stopped.store(true, Ordering::SeqCst);
            if let Some(pid) = slot.live().take() {
                if let Some(p) = pid.get() {
                    pid.signal(p, libc::SIGKILL);
                }
            }
        }
        if let Some(spare) = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take() {
            spare.retire(Duration::ZERO);
        }
    }
}

fn crashed(job: &ClaimedJob, pid: i32, how: &str) -> Outcome {
    Outcome::Failed {
        error: format!(
            "WorkerCrashedError: the child process (pid {pid}) running job {} ({}) died: {how}",
            job.id, job.task_name
        ),
        traceback: String::new(),
        retryable: true,
        rule: None,
    }
}

impl PreforkRunner {
    /// Waits for the child's answer, relaying the events the job raises meanwhile.
    fn receive(&self, proc: &mut ChildProc, info: &JobInfo) -> Option<Reply> {
        loop {
            match proc.receive() {
                Some(Reply::Event(event)) => {
                    if let Some(relay) = &self.relay {
                        relay(info, Relayed::Forwarded(std::slice::from_ref(&event)));
                    }
                }
                other => return other,
            }
        }
    }

    /// Runs one job in this thread's child: its outcome and run time (the child's timing,
    /// else the time since the job was sent).
    fn run_in_child(&self, job: &ClaimedJob, thread_id: &str, ident: u64) -> (Outcome, Duration) {
        let Some(slot) = self.slot(ident) else {
            let failed = Outcome::Failed {
                error: "WorkerCrashedError: this worker thread has no child process".into(),
                traceback: String::new(),
                retryable: true,
                rule: None,
            };
            return (failed, Duration::ZERO);
        };
        let mut io = slot.io();
        // A child that died while idle is replaced before it can take a job down with it.
        if io.as_ref().is_some_and(|p| p.exited()) {
            if let Some(dead) = io.take() {
                let pid = dead.pid();
                let how = dead.reap(REAP_WAIT);
                log::warn!("prefork child {pid} died while idle ({how}); replacing it");
            }
        }
        if io.is_none() {
            match ChildProc::start(&self.spec) {
                Ok(p) => slot.install(&mut io, p),
                Err(e) => {
                    let failed = Outcome::Failed {
                        error: format!("WorkerCrashedError: cannot start a child process: {e}"),
                        traceback: String::new(),
                        retryable: true,
                        rule: None,
                    };
                    return (failed, Duration::ZERO);
                }
            }
        }
        let proc = io.as_mut().expect("installed above");
        let request = frame::job_frame(job, thread_id);
        let info = JobInfo {
            id: job.id.clone(),
            task_name: job.task_name.clone(),
            queue: job.queue.clone(),
            retry_count: job.retry_count,
            max_retries: job.max_retries,
        };
        if self.relay.is_some() {
            *slot.held() = Some(Held {
                job: info.clone(),
                events: None,
            });
        }
        let sent = Instant::now();
        let reply = match proc.send(&request) {
            Ok(()) => self.receive(proc, &info),
            Err(_) => None,
        };
        let (reply, events) = match reply {
            Some(Reply::Done(outcome, took, events)) => (Some((outcome, took)), Some(events)),
            _ => (None, None),
        };
        // Unless the watchdog wrote this thread off meanwhile (and relayed the timeout).
        if let Some(held) = slot.held().as_mut() {
            held.events = events;
        }
        match reply {
            Some((outcome, took)) => {
                proc.jobs += 1;
                if self.max_tasks_per_child.is_some_and(|max| proc.jobs >= max) {
                    let old = io.take();
                    *slot.live() = None;
                    drop(io);
                    self.refill_later(slot, old);
                }
                (outcome, took)
            }
            _ => {
                let took = sent.elapsed();
                let dead = io.take().expect("present above");
                *slot.live() = None;
                drop(io);
                let pid = dead.pid();
                let how = dead.reap(REAP_WAIT);
                self.refill_later(slot, None);
                (crashed(job, pid, &how), took)
            }
        }
    }
}

impl Runner for PreforkRunner {
    fn thread_started(&self) -> u64 {
        let slot = Arc::new(Slot::default());
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        {
            let mut io = slot.io();
            match spare
                .map(Ok)
                .unwrap_or_else(|| ChildProc::start(&self.spec))
            {
                Ok(p) => slot.install(&mut io, p),
                // The first job of this thread tries again and reports the error.
                Err(e) => log::error!("cannot start a prefork child: {e}"),
            }
        }
        let ident = self.next_ident.fetch_add(1, Ordering::SeqCst);
        self.slots().insert(ident, slot);
        IDENT.with(|i| i.set(ident));
        ident
    }

    fn run(&self, job: &ClaimedJob, thread_id: &str, ident: u64) -> Outcome {
        let (outcome, took) = self.run_in_child(job, thread_id, ident);
        if let Some(observe) = &self.observer {
            observe(job, &outcome, took);
        }
        outcome
    }

    fn settled(&self, ident: u64, outcome: Option<&Outcome>, replaced: bool) {
        let (Some(relay), Some(slot)) = (&self.relay, self.slot(ident)) else {
            return;
        };
        let Some(held) = slot.held().take() else {
            return;
        };
        match (outcome, held.events) {
            // Put back as it was (the worker stopped): nothing closed.
            (None, _) => {}
            (Some(_), Some(events)) if !replaced => relay(&held.job, Relayed::Forwarded(&events)),
            (
                Some(Outcome::Failed {
                    error, retryable, ..
                }),
                _,
            ) => relay(
                &held.job,
                Relayed::Failed {
                    error,
                    retryable: *retryable,
                },
            ),
            (Some(Outcome::Complete(_)), _) => {}
        }
    }

    fn written_off(&self, ident: u64, outcome: &Outcome) {
        let (Some(relay), Some(slot)) = (self.relay.clone(), self.slot(ident)) else {
            return;
        };
        let (
            Some(held),
            Outcome::Failed {
                error, retryable, ..
            },
        ) = (slot.held().take(), outcome)
        else {
            return;
        };
        // On the watchdog's thread: the relay, which needs the GIL, runs on one of its own.
        let (error, retryable) = (error.clone(), *retryable);
        let spawned = std::thread::Builder::new()
            .name("taskito-prefork-events".into())
            .spawn(move || {
                relay(
                    &held.job,
                    Relayed::Failed {
                        error: &error,
                        retryable,
                    },
                )
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a thread to fire a timed-out job's events: {e}");
        }
    }
    fn interrupt(&self, ident: u64) {
        let Some(slot) = self.slot(ident) else {
            return;
        };
        let Some(pid) = slot.live().clone() else {
            return;
        };
        let Some(p) = pid.get() else {
            return;
        };
        pid.signal(p, libc::SIGTERM);
        let grace = self.kill_grace;
        let _ = std::thread::Builder::new()
            .name("taskito-prefork-kill".into())
            .spawn(move || {
                std::thread::sleep(grace);
                pid.signal(p, libc::SIGKILL);
            });
    }

    fn thread_stopping(&self) {
        let ident = IDENT.with(|i| i.replace(0));
        let Some(slot) = self.slots().remove(&ident) else {
            return;
        };
        slot.stopped.store(true, Ordering::SeqCst);
        let proc = slot.io().take();
        *slot.live() = None;
        if let Some(proc) = proc {
            proc.retire(RETIRE_WAIT);
        }
    }
}
