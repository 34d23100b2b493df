//! Wires one worker process together: registry row, result handler, worker pool and the
//! scheduler thread; then waits, stops and joins them in order. Shutdown cascades: the
//! scheduler drains and drops the job sender, idle workers exit, the result handler flushes
//! what they sent and stops last.
//!
//! The threads of one worker process, in the order a job meets them: the scheduler claims
//! (`scheduler.rs`, its timer `exact_timer.rs`, its wake thread `waker.rs`); the pool runs
//! (`worker.rs`, through a `Runner` from `runner.rs`; `async def` tasks on `async_lane.rs`);
//! the watchdog enforces deadlines (`watchdog.rs`, told of new ones through `alarm.rs`);
//! the result handler records (`results.rs`, fed by `events.rs`). Beside them: the worker's
//! own upkeep (`housekeeping.rs`, `liveness.rs`, `health.rs`, `load.rs`) and the handle a
//! queue object shares with its engine (`control.rs`). `local.rs` runs one job in the
//! calling thread with the same decisions.

pub mod alarm;
pub mod async_lane;
pub mod control;
pub mod events;
pub mod exact_timer;
pub mod health;
pub mod housekeeping;
pub mod liveness;
pub mod load;
pub mod local;
pub mod results;
pub mod runner;
pub mod scheduler;
pub mod waker;
pub mod watchdog;
pub mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};

use crate::config::WorkerConfig;
use crate::engine::async_lane::AsyncLane;
use crate::engine::control::Control;
use crate::engine::events::Event;
use crate::engine::health::Health;
use crate::engine::liveness::{Clock, SystemClock};
use crate::engine::load::{InFlight, RunTimes};
use crate::engine::runner::Runner;
use crate::engine::scheduler::{Scheduler, MAX_AHEAD};
use crate::engine::worker::WorkerPool;
use crate::error::{Error, Result};
use crate::job::{now_ms, WorkerInfo, WorkerKey};
use crate::storage::Storage;

/// A running engine. `join` must be called to stop it cleanly.
pub struct Engine {
    storage: Arc<dyn Storage>,
    config: WorkerConfig,
    pool: Arc<WorkerPool>,
    events_tx: crossbeam_channel::Sender<Event>,
    scheduler: Option<JoinHandle<()>>,
    results: Option<JoinHandle<()>>,
    scheduler_done: Arc<(Mutex<bool>, Condvar)>,
    processed: Arc<AtomicU64>,
    key: WorkerKey,
}

impl Engine {
    /// Registers the worker and starts every thread.
    pub fn start(
        storage: Arc<dyn Storage>,
        runner: Arc<dyn Runner>,
        config: WorkerConfig,
        control: Arc<Control>,
    ) -> Result<Engine> {
        Engine::start_with(storage, runner, config, control, None)
    }

    /// `start`, with an async lane that runs `async def` jobs beside the worker threads.
    pub fn start_with(
        storage: Arc<dyn Storage>,
        runner: Arc<dyn Runner>,
        config: WorkerConfig,
        control: Arc<Control>,
        lane: Option<Arc<AsyncLane>>,
    ) -> Result<Engine> {
        config.validate()?;
        if lane.as_ref().is_some_and(|l| l.attached()) {
            return Err(Error::Start(
                "an async lane serves one worker run only".into(),
            ));
        }
        // Not armed here: the caller arms `control` when its run begins, so a stop asked for
        // while the run was still starting (spawning prefork children, say) is kept.
        let clock: Arc<dyn Clock> = Arc::new(SystemClock::new());
        // Every start is a new incarnation, so a restart under the id of a dead run does
        // not inherit that run's claims as if they were live.
        let key = WorkerKey::fresh(config.worker_id.clone());
        let health = Arc::new(Health::default());
        let now = clock.wall_ms();
        storage.register_worker(&WorkerInfo {
            worker_id: config.worker_id.clone(),
            incarnation: key.incarnation,
            hostname: config.hostname.clone(),
            pid: config.pid,
            queues: config.queues_label(),
            started_at: now,
            last_heartbeat: now,
            status: "active".into(),
        })?;
        // Built here, before its thread, so a runtime error reaches the caller.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            // The scheduler's timers are heard through the reactor (`exact_timer.rs`).
            .enable_io()
            .max_blocking_threads(2)
            .thread_name("taskito-scheduler-io")
            .build()
            .map_err(|e| Error::Start(format!("cannot build the scheduler runtime: {e}")))?;

        // Room for every job the scheduler may claim (see Scheduler::capacity).
        let (jobs_tx, jobs_rx) = bounded(config.workers + MAX_AHEAD);
        let (events_tx, events_rx) = unbounded();
        let in_flight = Arc::new(InFlight::default());
        let run_times = Arc::new(RunTimes::default());
        let unrecorded = Arc::new(InFlight::default());
        let processed = Arc::new(AtomicU64::new(0));
        let results = results::spawn(
            storage.clone(),
            events_rx,
            control.clone(),
            processed.clone(),
            unrecorded.clone(),
            health.clone(),
        )?;
        if let Some(lane) = &lane {
            lane.attach(
                events_tx.clone(),
                control.clone(),
                unrecorded.clone(),
                &config.worker_id,
            );
        }
        let pool = WorkerPool::new(
            storage.clone(),
            jobs_rx,
            events_tx.clone(),
            runner,
            control.clone(),
            in_flight.clone(),
            run_times.clone(),
            config.worker_id.clone(),
            health.clone(),
            // At most as many stuck threads as the pool has threads.
            config.workers,
        );
        for _ in 0..config.workers {
            pool.spawn_thread()?;
        }
        let scheduler_done = Arc::new((Mutex::new(false), Condvar::new()));
        let scheduler = Scheduler {
            storage: storage.clone(),
            config: config.clone(),
            control,
            pool: pool.clone(),
            in_flight,
            run_times,
            unrecorded,
            jobs_tx,
            events_tx: events_tx.clone(),
            claimed: Arc::new(AtomicU64::new(0)),
            key: key.clone(),
            health,
            clock,
            lane,
        };
        let done = scheduler_done.clone();
        let scheduler = thread::Builder::new()
            .name("taskito-scheduler".into())
            .spawn(move || {
                scheduler.run(runtime);
                let (lock, cv) = &*done;
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
                cv.notify_all();
                crate::doorbell::ring();
            })
            .map_err(|e| Error::Start(format!("cannot start the scheduler: {e}")))?;
        log::debug!(
            "worker {} started: {} threads, queues {}",
            config.worker_id,
            config.workers,
            config.queues_label()
        );
        Ok(Engine {
            storage,
            config,
            pool,
            events_tx,
            scheduler: Some(scheduler),
            results: Some(results),
            scheduler_done,
            processed,
            key,
        })
    }

    /// Waits up to `timeout` for the scheduler to finish (after a stop, or when a run-once
    /// or max-jobs run is done). Returns whether it has.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (lock, cv) = &*self.scheduler_done;
        let done = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (done, _) = cv
            .wait_timeout_while(done, timeout, |d| !*d)
            .unwrap_or_else(|p| p.into_inner());
        *done
    }

    /// Joins everything in order and deregisters; returns the number of jobs processed.
    pub fn join(mut self) -> u64 {
        if let Some(h) = self.scheduler.take() {
            if h.join().is_err() {
                log::error!("the scheduler thread panicked");
            }
        }
        self.pool.join();
        let _ = self.events_tx.send(Event::Stop);
        if let Some(h) = self.results.take() {
            if h.join().is_err() {
                log::error!("the result handler panicked");
            }
        }
        if let Err(e) = self.storage.deregister_worker(&self.key, now_ms()) {
            log::warn!("could not deregister worker {}: {e}", self.config.worker_id);
        }
        let processed = self.processed.load(Ordering::SeqCst);
        log::debug!(
            "worker {} stopped after {processed} job(s)",
            self.config.worker_id
        );
        processed
    }
}
