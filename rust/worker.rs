//! The worker pool: named OS threads that take claimed jobs from the bounded channel, run
//! them through a `Runner` (the only place Python is entered) and send outcomes to the
//! result handler. Also the timeout watchdog's look at them (`check_timeouts`; its thread is
//! in `watchdog.rs`), which interrupts a job at its deadline and writes its thread off if it
//! does not come back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::control::Control;
use crate::error::{Error, Result};
use crate::events::{Event, JobRef};
use crate::health::Health;
use crate::job::{ClaimedJob, Outcome};
use crate::load::{InFlight, RunTimes};
use crate::storage::Storage;
use crate::watchdog::Alarm;

/// A job taken from the channel this long after its claim was claimed ahead of busy
/// workers (or the pool is swamped): its start is recorded before it runs, one fenced write,
/// so that while it waited it read pending, could be cancelled, and did not count against
/// the crash-loop limit had its worker died. A job taken sooner runs at once and pays
/// nothing; its start is recorded with its outcome (or by the result handler's delayed mark).
/// `cancel` leaves younger claims alone (`storage::CANCEL_CLAIMED_AFTER_MS`, longer).
pub const CLAIMED_AHEAD_AFTER: Duration = Duration::from_millis(20);

/// Written-off threads of this process still alive (stuck in a task). The CLI leaves with
/// `os._exit` only while this is above zero.
static WRITTEN_OFF_ALIVE: AtomicUsize = AtomicUsize::new(0);

/// How many written-off threads of this process are still alive.
pub fn written_off_alive() -> usize {
    WRITTEN_OFF_ALIVE.load(Ordering::SeqCst)
}

/// Runs one job. Implemented over Python in `py/runner.rs` and by closures in tests.
pub trait Runner: Send + Sync + 'static {
    /// Called once on each new worker thread; returns an id `interrupt` understands.
    fn thread_started(&self) -> u64 {
        0
    }
    /// Runs the job to an outcome. Must not panic on task errors.
    fn run(&self, job: &ClaimedJob, thread_id: &str, ident: u64) -> Outcome;
    /// Asks the thread with `ident` to stop the job it runs (best effort).
    fn interrupt(&self, _ident: u64) {}
    /// Interrupts the thread with `ident` if `still_running()` says its job still runs,
    /// checked at a moment the job cannot move on (for Python: while holding the GIL).
    /// Called on a thread of its own, never on the watchdog, so it may wait.
    fn interrupt_if(&self, ident: u64, still_running: &dyn Fn() -> bool) {
        if still_running() {
            self.interrupt(ident)
        }
    }
    /// Called on the worker thread once the engine has settled the job `run` returned:
    /// with the outcome it hands to the result handler (`None`: put back as it was), and
    /// whether that replaced `run`'s own (a timeout). Called before the result is stored.
    fn settled(&self, _ident: u64, _outcome: Option<&Outcome>, _replaced: bool) {}
    /// Called on the watchdog's thread when it gives up on the thread with `ident` at its
    /// job's timeout and stores `outcome` for the job instead (`settled` is not called for
    /// it). Must not wait: for the GIL or for the stuck thread.
    fn written_off(&self, _ident: u64, _outcome: &Outcome) {}
    /// Called on a worker thread just before it exits, to release per-thread resources.
    fn thread_stopping(&self) {}
    /// Runs a worker thread's whole loop; lets an implementation keep per-thread state
    /// (an interpreter thread state, an event loop) alive across jobs.
    fn thread_scope(&self, body: &mut (dyn FnMut() + Send)) {
        body()
    }
}

struct Running {
    job: JobRef,
    /// The thread's `<worker_id>-<n>`, recorded on the job even when the watchdog ends it.
    thread_id: String,
    deadline: Instant,
    interrupted_at: Option<Instant>,
    /// Interrupted because the worker is stopping: unless it completed anyway, the job goes
    /// back to `pending` instead of counting as a failed run.
    for_shutdown: bool,
}

#[derive(Default)]
struct SlotState {
    ident: u64,
    running: Option<Running>,
    /// Set when the watchdog or a forced shutdown gave up on this thread: whatever it
    /// returns is discarded and it exits.
    written_off: bool,
}

/// A worker thread's slot and, until joined, its handle.
type SlotEntry = (Arc<Slot>, Option<JoinHandle<()>>);

struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request to interrupt the job a slot runs, carried out off the watchdog's thread.
struct InterruptRequest {
    slot: Arc<Slot>,
    ident: u64,
    job_id: String,
    token: i64,
}

/// The pool and everything its threads share.
pub struct WorkerPool {
    storage: Arc<dyn Storage>,
    jobs_rx: Receiver<ClaimedJob>,
    events_tx: Sender<Event>,
    runner: Arc<dyn Runner>,
    control: Arc<Control>,
    in_flight: Arc<InFlight>,
    run_times: Arc<RunTimes>,
    worker_id: String,
    slots: Mutex<Vec<SlotEntry>>,
    next_index: AtomicUsize,
    health: Arc<Health>,
    /// Written-off threads of this pool still alive; past `limit`, no replacement starts.
    written_off: AtomicUsize,
    limit: usize,
    interrupts: Mutex<Option<Sender<InterruptRequest>>>,
    /// Tells the watchdog of jobs it must look at sooner than it planned.
    alarm: Arc<Alarm>,
}

impl WorkerPool {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        storage: Arc<dyn Storage>,
        jobs_rx: Receiver<ClaimedJob>,
        events_tx: Sender<Event>,
        runner: Arc<dyn Runner>,
        control: Arc<Control>,
        in_flight: Arc<InFlight>,
        run_times: Arc<RunTimes>,
        worker_id: String,
        health: Arc<Health>,
        limit: usize,
    ) -> Arc<WorkerPool> {
        let interrupts = start_interrupter(runner.clone());
        Arc::new(WorkerPool {
            storage,
            jobs_rx,
            events_tx,
            runner,
            control,
            in_flight,
            run_times,
            worker_id,
            slots: Mutex::new(Vec::new()),
            next_index: AtomicUsize::new(0),
            health,
            written_off: AtomicUsize::new(0),
            limit,
            interrupts: Mutex::new(interrupts),
            alarm: Arc::default(),
        })
    }

    pub fn alarm(&self) -> Arc<Alarm> {
        self.alarm.clone()
    }

    /// Queues an interrupt of the job `running` in `slot` (the caller holds the slot lock).
    fn request_interrupt(&self, slot: &Arc<Slot>, ident: u64, running: &Running) {
        let guard = self.interrupts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            let _ = tx.send(InterruptRequest {
                slot: slot.clone(),
                ident,
                job_id: running.job.id.clone(),
                token: running.job.token,
            });
        }
    }

    /// A written-off thread came back: it leaves, and a replacement owed for it starts.
    fn written_off_returned(self: &Arc<Self>) {
        WRITTEN_OFF_ALIVE.fetch_sub(1, Ordering::SeqCst);
        self.written_off.fetch_sub(1, Ordering::SeqCst);
        if self.control.stop_requested() {
            return;
        }
        if self.health.take_owed_thread() {
            if let Err(e) = self.spawn_thread() {
                log::error!("{e}");
            }
            if self.health.threads_owed() == 0 {
                log::warn!(
                    "worker {}: stuck threads came back; the pool is whole again",
                    self.worker_id
                );
            }
            self.control.wake.notify_one();
        }
    }

    /// Counts one more written-off thread and starts its replacement, unless the stuck
    /// threads already number `limit`: then the replacement is owed (the worker is
    /// unhealthy and claims nothing) until one of them returns.
    fn replace_written_off(self: &Arc<Self>) {
        WRITTEN_OFF_ALIVE.fetch_add(1, Ordering::SeqCst);
        let stuck = self.written_off.fetch_add(1, Ordering::SeqCst) + 1;
        if stuck > self.limit {
            self.health.owe_thread();
            log::error!(
                "worker {}: {stuck} threads are stuck in tasks that ignored their timeout \
                 (limit {}); not starting more threads and claiming no jobs until one returns",
                self.worker_id,
                self.limit
            );
            return;
        }
        if let Err(e) = self.spawn_thread() {
            log::error!("{e}");
        }
    }

    /// Starts one more worker thread, `taskito-worker-{n}`, known as `<worker_id>-<n>`.
    pub fn spawn_thread(self: &Arc<Self>) -> Result<()> {
        let n = self.next_index.fetch_add(1, Ordering::SeqCst);
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState::default()),
        });
        let pool = Arc::clone(self);
        let thread_slot = Arc::clone(&slot);
        let handle = thread::Builder::new()
            .name(format!("taskito-worker-{n}"))
            .spawn(move || pool.worker_loop(&thread_slot, format!("{}-{n}", pool.worker_id)))
            .map_err(|e| Error::Start(format!("cannot start a worker thread: {e}")))?;
        self.lock_slots().push((slot, Some(handle)));
        Ok(())
    }

    fn lock_slots(&self) -> std::sync::MutexGuard<'_, Vec<SlotEntry>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn worker_loop(self: &Arc<Self>, slot: &Slot, thread_id: String) {
        self.runner.thread_scope(&mut || {
            self.serve(slot, &thread_id);
            self.runner.thread_stopping();
        });
    }

    fn serve(self: &Arc<Self>, slot: &Slot, thread_id: &str) {
        let ident = self.runner.thread_started();
        slot.lock().ident = ident;
        while let Ok(job) = self.jobs_rx.recv() {
            let job_ref = JobRef::from(&job);
            if self.control.stop_requested() {
                // Draining: no job starts after the stop; this one goes back as it was.
                let _ = self.events_tx.send(Event::Requeue(job_ref));
                self.in_flight.done();
                continue;
            }
            let start_recorded = match self.record_start_if_waited(&job, thread_id) {
                Some(recorded) => recorded,
                None => {
                    // Cancelled (or put back) while it waited: it must not run. The put-back
                    // is fenced by the lost claim, so it only ends this process's accounting.
                    let _ = self.events_tx.send(Event::Requeue(job_ref));
                    self.in_flight.done();
                    self.control.wake.notify_one();
                    continue;
                }
            };
            let timeout = Duration::from_millis(job.timeout_ms.max(1) as u64);
            let deadline = Instant::now() + timeout;
            slot.lock().running = Some(Running {
                job: job_ref.clone(),
                thread_id: thread_id.to_string(),
                deadline,
                interrupted_at: None,
                for_shutdown: false,
            });
            self.alarm.needed_by(deadline);
            if !start_recorded {
                let _ = self.events_tx.send(Event::Started {
                    id: job.id.clone(),
                    token: job.claim_token,
                    thread_id: thread_id.to_string(),
                });
            }
            let started = Instant::now();
            let mut outcome = self.runner.run(&job, thread_id, ident);
            self.run_times.record(started.elapsed());
            drop(job);
            let mut requeue = false;
            let mut replaced = false;
            {
                let mut state = slot.lock();
                if state.written_off {
                    // The job was already failed or requeued for us: drop the late result.
                    drop(state);
                    self.written_off_returned();
                    return;
                }
                if let Some(running) = state.running.take() {
                    let completed = matches!(outcome, Outcome::Complete(_));
                    if running.for_shutdown {
                        requeue = !completed;
                    } else if running.interrupted_at.is_some() {
                        outcome = timeout_outcome(&running.job);
                        replaced = true;
                    }
                }
            }
            self.runner
                .settled(ident, (!requeue).then_some(&outcome), replaced);
            let event = if requeue {
                Event::Requeue(job_ref)
            } else {
                Event::Finished {
                    job: job_ref,
                    thread_id: thread_id.to_string(),
                    outcome,
                }
            };
            let _ = self.events_tx.send(event);
            self.in_flight.done();
            self.control.wake.notify_one();
        }
    }

    /// Records the start of a job that waited after its claim (or must start eagerly, see
    /// `ClaimedJob::eager_start`) before it runs; see `record_start` for the answer.
    fn record_start_if_waited(&self, job: &ClaimedJob, thread_id: &str) -> Option<bool> {
        if !job.eager_start && job.claimed_at.elapsed() < CLAIMED_AHEAD_AFTER {
            return Some(false);
        }
        record_start(self.storage.as_ref(), job, thread_id)
    }

    /// The watchdog's look: interrupts jobs past their deadline and writes off threads that
    /// did not give their job back within `grace` of the interrupt (the job is failed or
    /// retried now and a fresh thread takes the slot). Never waits for the GIL: interrupts
    /// are carried out by the interrupter thread. Returns when the next look is needed
    /// (`None`: not before another job starts).
    pub fn check_timeouts(self: &Arc<Self>, grace: Duration) -> Option<Instant> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut look_at = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        let slots: Vec<Arc<Slot>> = self.lock_slots().iter().map(|(s, _)| s.clone()).collect();
        let mut replacements = 0;
        for slot in slots {
            let mut state = slot.lock();
            if state.written_off {
                continue;
            }
            let ident = state.ident;
            let Some(running) = state.running.as_mut() else {
                continue;
            };
            match running.interrupted_at {
                None if now >= running.deadline => {
                    running.interrupted_at = Some(now);
                    log::warn!(
                        "job {} ({}) passed its timeout; interrupting it",
                        running.job.id,
                        running.job.task_name
                    );
                    self.request_interrupt(&slot, ident, running);
                    look_at(now + grace);
                }
                None => look_at(running.deadline),
                Some(at) if now >= at + grace && !running.for_shutdown => {
                    let running = state.running.take().expect("checked above");
                    state.written_off = true;
                    log::warn!(
                        "job {} ({}) did not stop after its timeout; its thread is written off",
                        running.job.id,
                        running.job.task_name
                    );
                    let outcome = timeout_outcome(&running.job);
                    self.runner.written_off(state.ident, &outcome);
                    let _ = self.events_tx.send(Event::Finished {
                        thread_id: running.thread_id,
                        outcome,
                        job: running.job,
                    });
                    self.in_flight.done();
                    replacements += 1;
                }
                Some(at) if !running.for_shutdown => look_at(at + grace),
                // Interrupted for the shutdown, which does its own waiting.
                Some(_) => {}
            }
        }
        for _ in 0..replacements {
            self.replace_written_off();
        }
        if replacements > 0 {
            self.control.wake.notify_one();
        }
        next
    }

    /// Interrupts every running job because the worker is stopping (the drain timeout
    /// passed, or a forced stop): a job that then returns goes back to `pending` unless it
    /// completed. Returns how many were interrupted.
    pub fn interrupt_for_shutdown(&self) -> usize {
        let now = Instant::now();
        let mut n = 0;
        for (slot, _) in self.lock_slots().iter() {
            let mut state = slot.lock();
            if state.written_off {
                continue;
            }
            let ident = state.ident;
            if let Some(running) = state.running.as_mut() {
                running.for_shutdown = true;
                running.interrupted_at.get_or_insert(now);
                self.request_interrupt(slot, ident, running);
                n += 1;
            }
        }
        n
    }

    /// Gives up on every running job (shutdown past the drain timeout, or forced): their
    /// threads are written off and the jobs returned so the caller can requeue them. Each
    /// is logged: its thread may go on running the task after the worker stopped.
    pub fn write_off_running(&self) -> Vec<JobRef> {
        let mut taken = Vec::new();
        for (slot, _) in self.lock_slots().iter() {
            let mut state = slot.lock();
            if let Some(running) = state.running.take() {
                state.written_off = true;
                WRITTEN_OFF_ALIVE.fetch_add(1, Ordering::SeqCst);
                self.written_off.fetch_add(1, Ordering::SeqCst);
                log::warn!(
                    "job {} ({}) is still running in a thread that could not be stopped; \
                     it is put back to pending",
                    running.job.id,
                    running.job.task_name
                );
                taken.push(running.job);
                self.in_flight.done();
            }
        }
        taken
    }

    /// Pulls back jobs still waiting in the channel (a stop came before a worker took them).
    pub fn take_queued(&self) -> Vec<JobRef> {
        let mut taken = Vec::new();
        while let Ok(job) = self.jobs_rx.try_recv() {
            taken.push(JobRef::from(&job));
            self.in_flight.done();
        }
        taken
    }

    /// Joins every thread that was not written off. Call after the job sender is dropped.
    pub fn join(&self) {
        // The interrupter ends once its queue is closed (after any interrupt it is doing).
        self.interrupts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let handles: Vec<SlotEntry> = {
            let mut slots = self.lock_slots();
            slots
                .iter_mut()
                .map(|(s, h)| (s.clone(), h.take()))
                .collect()
        };
        for (slot, handle) in handles {
            let written_off = slot.lock().written_off;
            if let (false, Some(h)) = (written_off, handle) {
                if h.join().is_err() {
                    log::error!("a worker thread panicked");
                }
            }
        }
    }
}

/// Starts the thread that carries out interrupts. It may wait long for the GIL (a task
/// holding it in C): that is why it is not the watchdog. It checks, at the moment it can
/// interrupt, that the slot still runs the same claim, so an interrupt never lands in the
/// next job.
fn start_interrupter(runner: Arc<dyn Runner>) -> Option<Sender<InterruptRequest>> {
    let (tx, rx) = crossbeam_channel::unbounded::<InterruptRequest>();
    let spawned = thread::Builder::new()
        .name("taskito-interrupter".into())
        .spawn(move || {
            for req in rx {
                let still_running = || {
                    let state = req.slot.lock();
                    !state.written_off
                        && state.ident == req.ident
                        && state
                            .running
                            .as_ref()
                            .is_some_and(|r| r.job.id == req.job_id && r.job.token == req.token)
                };
                runner.interrupt_if(req.ident, &still_running);
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            log::error!(
                "cannot start the interrupter thread; timeouts cannot interrupt tasks: {e}"
            );
            None
        }
    }
}

/// Records that `job` starts now, before it runs: `Some(true)` if recorded, `None` if its
/// claim is gone (cancelled or put back meanwhile: it must not run), `Some(false)` if the
/// store failed (it runs anyway; its start is then recorded later, as for any job).
pub(crate) fn record_start(
    storage: &dyn Storage,
    job: &ClaimedJob,
    thread_id: &str,
) -> Option<bool> {
    match storage.record_start(&job.id, job.claim_token, thread_id) {
        Ok(true) => Some(true),
        Ok(false) => None,
        Err(e) => {
            log::warn!("could not record the start of job {}: {e}", job.id);
            Some(false)
        }
    }
}

pub(crate) fn timeout_outcome(job: &JobRef) -> Outcome {
    Outcome::Failed {
        error: format!(
            "TaskTimeoutError: job {} ({}) exceeded its timeout of {}s",
            job.id,
            job.task_name,
            job.timeout_ms as f64 / 1000.0
        ),
        traceback: String::new(),
        retryable: true,
        rule: None,
    }
}
