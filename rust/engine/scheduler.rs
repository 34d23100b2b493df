//! The scheduler: one thread running a current-thread Tokio runtime. It claims ready jobs
//! in batches no larger than the free worker slots and sends them down the bounded channel;
//! it wakes on in-process enqueues, on freed slots, on hints from other processes (the
//! store's wake source, heard on a thread of its own), when the earliest delayed job comes
//! due and, as the guarantee, on the poll interval. Beside it, the housekeeping threads
//! heartbeat, recover stale workers' jobs and fire periodic schedules (`housekeeping.rs`),
//! and a watchdog thread enforces timeouts. It does not run jobs and does not record
//! outcomes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use tokio::time::{sleep, Instant};

use crate::config::WorkerConfig;
use crate::engine::async_lane::AsyncLane;
use crate::engine::control::Control;
use crate::engine::events::{Event, JobRef};
use crate::engine::exact_timer::ExactTimer;
use crate::engine::health::Health;
use crate::engine::housekeeping::Housekeeping;
use crate::engine::liveness::Clock;
use crate::engine::load::{InFlight, RunTimes};
use crate::engine::waker::{IdleGate, WakeThread};
use crate::engine::watchdog::Watchdog;
use crate::engine::worker::WorkerPool;
use crate::job::{now_ms, ClaimedJob, WorkerKey};
use crate::storage::{ChangeProbe, Storage, TaskFilter};

/// Claim-ahead is bounded so that a job waiting in the channel waits about this long at
/// most (judged by how long jobs typically run here).
const AHEAD_BUDGET: Duration = Duration::from_millis(10);
/// The most jobs ever claimed ahead of the workers (the channel's extra room).
pub const MAX_AHEAD: usize = 64;
/// Jobs whose arguments average more than this are not claimed ahead: 64 of them waiting
/// in the channel would hold too much memory.
const AHEAD_MAX_PAYLOAD: usize = 256 * 1024;

pub struct Scheduler {
    pub storage: Arc<dyn Storage>,
    pub config: WorkerConfig,
    pub control: Arc<Control>,
    pub pool: Arc<WorkerPool>,
    pub in_flight: Arc<InFlight>,
    pub run_times: Arc<RunTimes>,
    /// Claims whose outcome the result handler has not written yet.
    pub unrecorded: Arc<InFlight>,
    pub jobs_tx: Sender<ClaimedJob>,
    pub events_tx: Sender<Event>,
    /// Jobs handed to workers so far (for `max_jobs`).
    pub claimed: Arc<AtomicU64>,
    /// This run's registry key (worker id and incarnation); claims record it.
    pub key: WorkerKey,
    pub health: Arc<Health>,
    pub clock: Arc<dyn Clock>,
    /// Where `async def` jobs go, when any are registered (`async_lane.rs`).
    pub lane: Option<Arc<AsyncLane>>,
}

impl Scheduler {
    /// Runs until shutdown (or, with `run_once` / `max_jobs`, until done), then drains.
    /// Dropping `self` at the end drops the job sender, which stops idle workers.
    pub fn run(self, runtime: tokio::runtime::Runtime) {
        let watchdog = Watchdog::start(self.pool.clone(), self.config.timeout_grace);
        // Listening starts before the first claim: work committed earlier is claimed by
        // it, work committed later is hinted.
        let gate = Arc::new(IdleGate::default());
        let waker = match self.storage.wake_source(&self.config.worker_id) {
            Ok(Some(source)) => WakeThread::start(source, self.control.clone(), gate.clone()),
            Ok(None) => None,
            Err(e) => {
                log::warn!("no wake-ups from other processes, polling only: {e}");
                None
            }
        };
        let gate = waker.as_ref().map(|_| gate);
        let housekeeping = Housekeeping {
            storage: self.storage.clone(),
            config: self.config.clone(),
            key: self.key.clone(),
            health: self.health.clone(),
            clock: self.clock.clone(),
            control: self.control.clone(),
        }
        .start();
        runtime.block_on(async {
            self.claim_loop(gate.as_deref(), &mut ExactTimer::new())
                .await;
            self.drain().await;
        });
        housekeeping.stop();
        watchdog.stop();
        if let Some(w) = waker {
            w.stop();
        }
        runtime.shutdown_timeout(Duration::from_secs(1));
    }

    fn send(&self, jobs: Vec<ClaimedJob>) {
        for job in jobs {
            // Never blocks: at most `workers` jobs are in flight and the channel holds that many.
            if let Err(e) = self.jobs_tx.try_send(job) {
                let job = e.into_inner();
                log::error!("job channel full; putting {} back", job.id);
                let _ = self.events_tx.send(Event::Requeue(JobRef::from(&job)));
                self.in_flight.done();
            }
        }
    }

    /// How many jobs may be claimed and not yet finished: one per worker, plus as many
    /// waiting in the channel as the workers get through in `AHEAD_BUDGET` at the typical
    /// run time. So a claimed job never waits more than about 10 ms behind busy workers
    /// (jobs of a second or more are never claimed ahead with 100 workers or fewer), while
    /// short jobs are claimed in batches: one transaction per batch instead of one per
    /// finished job, and a worker that finishes finds its next job already waiting. Jobs with large arguments
    /// (`big_payloads`, judged by the last claim) are never claimed ahead either.
    fn capacity(&self, big_payloads: bool) -> usize {
        let workers = self.config.workers;
        let Some(typical) = self.run_times.typical() else {
            return workers;
        };
        if big_payloads {
            return workers;
        }
        // The k-th job waiting in the channel starts after about k * typical / workers.
        let ahead = workers as u128 * AHEAD_BUDGET.as_micros() / typical.as_micros().max(1);
        workers + (ahead as usize).min(MAX_AHEAD)
    }

    /// Whether to claim now, given the room left: always while a worker is idle; with
    /// claim-ahead, otherwise only once half the room is free (batches, not trickles).
    fn worth_claiming(&self, in_flight: usize, free: usize, capacity: usize) -> bool {
        free > 0 && (in_flight < self.config.workers || free * 2 >= capacity)
    }

    /// `gate` is set when a wake thread hears other processes' commits; the loop tells it
    /// each time it goes idle. Without one, other processes' work waits for the poll.
    async fn claim_loop(&self, gate: Option<&IdleGate>, timer: &mut ExactTimer) {
        let mut big_payloads = false;
        let mut idle_errors = 0u32;
        // Idle polls: a poll that finds the store's change counter where the last claim
        // left it (nothing committed by any connection since) and no delayed job due has
        // nothing to claim, and costs one cheap read instead of the claim's queries.
        let mut probe: Option<Box<dyn ChangeProbe>> = self.storage.change_probe().ok();
        let mut seen: Option<i64> = None;
        let mut quiet = false;
        let mut due_at: Option<Instant> = None;
        let mut async_claimed;
        loop {
            if self.control.stop_requested() {
                return;
            }
            let in_flight = self.in_flight.get();
            let capacity = self.capacity(big_payloads);
            let mut free = capacity.saturating_sub(in_flight);
            if !self.worth_claiming(in_flight, free, capacity) {
                free = 0;
            }
            let mut async_free = self.lane.as_ref().map_or(0, |l| l.free());
            let mut left = usize::MAX;
            if let Some(max) = self.config.max_jobs {
                left = max.saturating_sub(self.claimed.load(Ordering::SeqCst)) as usize;
                if left == 0 && self.unrecorded.get() == 0 {
                    return;
                }
                free = free.min(left);
                async_free = async_free.min(left);
            }
            if !self.health.ok() {
                // Outcomes cannot be recorded, or too many threads are stuck: take nothing
                // more until that clears.
                free = 0;
                async_free = 0;
            }
            if free == 0 && async_free == 0 {
                // No room worth claiming for: only a freed slot (or a stop) can change that.
                tokio::select! {
                    _ = self.control.wake.notified() => {}
                    _ = sleep(self.config.poll_interval) => {}
                }
                continue;
            }
            let queues = self.config.queues.as_deref();
            // Read only on polls: a claim woken by anything else pays nothing for this, and
            // the first quiet poll after it claims once more to take a fresh reading.
            let polled = std::mem::take(&mut quiet);
            if polled {
                let version = probe.as_mut().and_then(|p| p.version());
                if version.is_some() && version == seen {
                    self.idle_wait(gate, timer, due_at, &mut quiet).await;
                    continue;
                }
                seen = version;
            } else {
                seen = None;
            }
            // Read before the claim: an outcome written after it (a finished job of a task at
            // its concurrency cap) may make jobs claimable that the claim did not see.
            let unrecorded_before = self.unrecorded.get();
            let claimed = match self.claim_both(queues, free, async_free, left) {
                Ok((jobs, async_n)) => {
                    idle_errors = 0;
                    async_claimed = async_n;
                    jobs
                }
                Err(e) => {
                    idle_errors += 1;
                    log::error!("claiming jobs failed: {e}");
                    sleep(self.config.poll_interval * idle_errors.min(20)).await;
                    continue;
                }
            };
            let n = claimed.len();
            if async_claimed > 0 {
                self.claimed
                    .fetch_add(async_claimed as u64, Ordering::SeqCst);
            }
            // Run-once ends when nothing is ready and every outcome is written (a failure
            // may have just put a job back as ready).
            if n + async_claimed == 0
                && self.config.run_once
                && unrecorded_before == 0
                && self.unrecorded.get() == 0
            {
                return;
            }
            if n > 0 {
                let bytes: usize = claimed.iter().map(|j| j.payload.len()).sum();
                big_payloads = bytes > AHEAD_MAX_PAYLOAD * n;
                self.claimed.fetch_add(n as u64, Ordering::SeqCst);
                self.in_flight.add(n);
                self.unrecorded.add(n);
                self.send(claimed);
            }
            if (n > 0 && n == free) || (async_claimed > 0 && async_claimed == async_free) {
                continue; // maybe more is ready; the next turn waits for a free slot
            }
            // Only when nothing was ready: after a claim, the job's end wakes the loop and
            // the claim then made reads it (a delayed job enqueued meanwhile sends a hint).
            // Not after a quiet poll either: nothing told of a change since the last reading
            // (a retry written here or work committed elsewhere wakes the loop), and a change
            // nobody told of is claimed by a poll anyway, so idle polls cost one look each.
            if n + async_claimed == 0 && !polled {
                due_at = self.until_due(queues).map(|d| Instant::now() + d);
            }
            self.idle_wait(gate, timer, due_at, &mut quiet).await;
        }
    }

    /// Waits with nothing to claim: for a wake-up, the next due time or the poll. Sets
    /// `quiet` when only the poll ended it.
    async fn idle_wait(
        &self,
        gate: Option<&IdleGate>,
        timer: &mut ExactTimer,
        due_at: Option<Instant>,
        quiet: &mut bool,
    ) {
        let poll = Instant::now() + self.config.poll_interval;
        let wake_at = due_at.map_or(poll, |d| d.min(poll));
        if let Some(g) = gate {
            g.entered_idle();
        }
        tokio::select! {
            _ = self.control.wake.notified() => {}
            // A rate-limited job gets its token without any commit: claim then.
            _ = until(self.storage.limited_ready_at()) => {}
            _ = timer.sleep_until(wake_at) => {
                *quiet = due_at.is_none_or(|d| d > Instant::now());
            }
        }
    }

    /// How long until the earliest delayed job or retry of the served queues comes due
    /// (`None` when there is none or the store cannot say).
    fn until_due(&self, queues: Option<&[String]>) -> Option<Duration> {
        let now = now_ms();
        match self.storage.next_due(queues, now) {
            // One millisecond past it: a claim in the same millisecond would find the
            // job not yet due.
            Ok(Some(at)) => Some(Duration::from_millis(
                (at + 1).saturating_sub(now_ms()).max(0) as u64,
            )),
            Ok(None) => None,
            Err(e) => {
                log::debug!("reading the next due time failed: {e}");
                None
            }
        }
    }

    /// Claims up to `free` jobs for the worker threads and up to `async_free` for the
    /// async lane (which hands its own to the loop), `left` in all. Without a lane, one
    /// plain claim.
    fn claim_both(
        &self,
        queues: Option<&[String]>,
        free: usize,
        async_free: usize,
        left: usize,
    ) -> crate::error::Result<(Vec<ClaimedJob>, usize)> {
        let owner = &self.key;
        let Some(lane) = &self.lane else {
            return Ok((self.storage.claim(queues, owner, free, now_ms())?, 0));
        };
        let async_n = lane.claim(self.storage.as_ref(), queues, owner, async_free)?;
        let free = free.min(left - async_n);
        let jobs = if free > 0 {
            let filter = TaskFilter::Except(lane.names());
            self.storage
                .claim_filtered(queues, owner, free, now_ms(), filter)?
        } else {
            Vec::new()
        };
        Ok((jobs, async_n))
    }

    fn lane_in_flight(&self) -> usize {
        self.lane.as_ref().map_or(0, |l| l.in_flight())
    }

    /// Stop claiming, hand back what no worker took, wait for running jobs up to the drain
    /// timeout, then put back whatever still runs.
    async fn drain(&self) {
        for job in self.pool.take_queued() {
            let _ = self.events_tx.send(Event::Requeue(job));
        }
        if let Some(lane) = &self.lane {
            for job in lane.take_queued() {
                let _ = self.events_tx.send(Event::Requeue(job));
            }
        }
        let deadline = Instant::now() + self.config.drain_timeout;
        while self.in_flight.get() + self.lane_in_flight() > 0
            && Instant::now() < deadline
            && !self.control.forced()
        {
            tokio::select! {
                _ = self.control.wake.notified() => {}
                _ = sleep(Duration::from_millis(20)) => {}
            }
        }
        for job in self.pool.take_queued() {
            let _ = self.events_tx.send(Event::Requeue(job));
        }
        if self.in_flight.get() > 0 {
            // Stop the tasks the way the watchdog does; a job that then returns goes back
            // to pending. Threads stuck in C code are written off below.
            let n = self.pool.interrupt_for_shutdown();
            if n > 0 && !self.control.forced() {
                let until = Instant::now() + self.config.timeout_grace;
                while self.in_flight.get() > 0 && Instant::now() < until && !self.control.forced() {
                    tokio::select! {
                        _ = self.control.wake.notified() => {}
                        _ = sleep(Duration::from_millis(20)) => {}
                    }
                }
            }
        }
        let mut unfinished = self.pool.write_off_running();
        if let Some(lane) = &self.lane {
            unfinished.extend(lane.close());
        }
        if !unfinished.is_empty() {
            log::warn!(
                "{} job(s) still running at shutdown were put back to pending",
                unfinished.len()
            );
        }
        for job in unfinished {
            let _ = self.events_tx.send(Event::Requeue(job));
        }
    }
}

/// Sleeps until `at` (epoch ms); never resolves for `None`. Lets a claim that stepped over
/// rate-limited jobs come back when their next token is due rather than on the next poll.
async fn until(at: Option<i64>) {
    match at {
        Some(at) => sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await,
        None => std::future::pending().await,
    }
}
