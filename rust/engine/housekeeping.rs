//! A worker's housekeeping, on two plain threads beside the scheduler: heartbeats on one;
//! on the other, watching the other workers (recovering the jobs of those presumed dead),
//! expiry, checkpoints and retention sweeps, and firing periodic schedules.
//!
//! Plain threads, not tasks on the scheduler's runtime: each tick is then one wake-up of
//! one thread (a runtime timer plus a hand-off to its blocking pool and back cost three),
//! which is most of what an idle worker spends; and a slow write, or PostgreSQL's blocking
//! client, never touches the thread that claims. The heartbeat has a thread of its own so
//! that a long recovery or sweep never delays it past other workers' stale limit.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::WorkerConfig;
use crate::engine::control::Control;
use crate::engine::health::Health;
use crate::engine::liveness::{Clock, Observer};
use crate::job::{now_ms, WorkerKey};
use crate::storage::Storage;

/// How often, at most, the retention sweep runs (a short window sweeps more often, but not
/// more than once a second).
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// The longest the periodic check waits: a schedule added, resumed or moved earlier by
/// another process is seen within this.
const PERIODIC_RECHECK: Duration = Duration::from_secs(1);
/// How long `stop` waits for a thread busy in a write (a heartbeat stuck on a busy
/// database must not hold up the shutdown).
const STOP_WAIT: Duration = Duration::from_secs(1);
/// The heartbeat thread and the maintenance thread.
const THREADS: usize = 2;

/// The stop flag the threads sleep on, and how many of them have ended.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    stopping: bool,
    ended: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps until `at`; false as soon as a stop is asked for.
    fn sleep_until(&self, at: Instant) -> bool {
        let guard = self.lock();
        let wait = at.saturating_duration_since(Instant::now());
        let (guard, _) = self
            .cv
            .wait_timeout_while(guard, wait, |s| !s.stopping)
            .unwrap_or_else(|p| p.into_inner());
        !guard.stopping
    }

    fn ended(&self) {
        self.lock().ended += 1;
        self.cv.notify_all();
    }
}

/// What the threads need, handed over by the scheduler.
#[derive(Clone)]
pub struct Housekeeping {
    pub storage: Arc<dyn Storage>,
    pub config: WorkerConfig,
    pub key: WorkerKey,
    pub health: Arc<Health>,
    pub clock: Arc<dyn Clock>,
    pub control: Arc<Control>,
}

/// The running threads; `stop` ends them.
pub struct Running {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Housekeeping {
    /// Starts both threads. A thread that cannot be started is logged and left out (the
    /// worker still claims and runs jobs; other workers will presume it dead without
    /// heartbeats, which the log says).
    pub fn start(self) -> Running {
        let shared = Arc::new(Shared::default());
        let observer = Observer::new(
            self.key.clone(),
            self.config.hostname.clone(),
            self.config.pid,
            self.config.heartbeat_interval,
            self.config.stale_after,
            self.clock.clone(),
        );
        let beat = {
            let (shared, this) = (shared.clone(), self.clone());
            move || {
                this.heartbeat(&shared);
                shared.ended();
            }
        };
        let maintain = {
            let shared = shared.clone();
            move || {
                self.maintain(&shared, observer);
                shared.ended();
            }
        };
        let mut threads = Vec::new();
        for (name, body) in [
            (
                "taskito-heartbeat",
                Box::new(beat) as Box<dyn FnOnce() + Send>,
            ),
            ("taskito-maintain", Box::new(maintain)),
        ] {
            match thread::Builder::new().name(name.into()).spawn(body) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    log::error!("cannot start the {name} thread: {e}");
                    shared.ended();
                }
            }
        }
        Running { shared, threads }
    }

    /// Keeps this worker's registry row fresh: each beat moves its counter (what observers
    /// judge liveness by) and writes its health.
    fn heartbeat(&self, shared: &Shared) {
        let mut was_ok = true;
        loop {
            let next = Instant::now() + self.config.heartbeat_interval;
            let ok = self.health.ok();
            if ok != was_ok {
                self.log_health_change(ok);
                was_ok = ok;
            }
            let now = self.clock.wall_ms();
            if let Err(e) = self.storage.heartbeat(&self.key, self.health.status(), now) {
                log::warn!("heartbeat failed: {e}");
            }
            if !shared.sleep_until(next) {
                return;
            }
        }
    }

    fn log_health_change(&self, ok: bool) {
        let id = &self.key.worker_id;
        if ok {
            log::warn!("worker {id} is healthy again and claims jobs");
        } else {
            log::error!(
                "worker {id} is unhealthy ({}); it claims no jobs until that clears",
                if self.health.store_failing() {
                    "the database refuses writes"
                } else {
                    "too many threads are stuck in tasks"
                }
            );
        }
    }

    /// Maintenance twice per heartbeat interval (so recovery comes soon after
    /// `stale_after`), periodic schedules at their due time. With nothing due the periodic
    /// check rides on a maintenance tick, so an idle worker wakes this thread once per tick.
    fn maintain(&self, shared: &Shared, mut observer: Observer) {
        let every = self.config.heartbeat_interval / 2;
        let mut next_tick = Instant::now();
        let mut next_periodic = Instant::now();
        let mut last_sweep: Option<Instant> = None;
        let mut last_checkpoint: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                let checkpoint =
                    last_checkpoint.is_none_or(|t| t.elapsed() >= self.config.heartbeat_interval);
                if checkpoint {
                    last_checkpoint = Some(now);
                }
                self.maintenance_tick(&mut observer, checkpoint);
                self.sweep_if_due(&mut last_sweep);
                // A fixed rate (missed ticks skipped), so the periodic check below can
                // be placed on a tick.
                while next_tick <= Instant::now() {
                    next_tick += every;
                }
            }
            if now >= next_periodic {
                let due = self.fire_periodic();
                let latest = Instant::now() + PERIODIC_RECHECK;
                next_periodic = match due {
                    Some(at) if at < latest => at,
                    _ => last_tick_by(next_tick, every, latest),
                };
            }
            if !shared.sleep_until(next_tick.min(next_periodic)) {
                return;
            }
        }
    }

    /// Recovery of dead workers' jobs, task limits, expiry, result TTLs, the checkpoint.
    fn maintenance_tick(&self, observer: &mut Observer, checkpoint: bool) {
        let s = self.storage.as_ref();
        match observer.check(s) {
            Ok(n) if n > 0 => {
                log::warn!("put back {n} job(s) of workers that stopped heartbeating")
            }
            Err(e) => log::warn!("checking other workers' heartbeats failed: {e}"),
            _ => {}
        }
        // Limits registered by workers started since (rare; one small read).
        if let Err(e) = s.reload_task_limits() {
            log::debug!("reloading task limits failed: {e}");
        }
        match s.expire_due(now_ms()) {
            Ok(n) if n > 0 => log::info!("cancelled {n} job(s) not started before expiry"),
            Err(e) => log::warn!("expiring jobs failed: {e}"),
            _ => {}
        }
        match s.expire_results(now_ms()) {
            Ok(n) if n > 0 => log::info!("deleted {n} finished job(s) past their result_ttl"),
            Err(e) => log::warn!("deleting jobs past their result_ttl failed: {e}"),
            _ => {}
        }
        if checkpoint {
            if let Err(e) = s.checkpoint() {
                log::debug!("checkpoint skipped: {e}");
            }
        }
    }

    fn sweep_if_due(&self, last_sweep: &mut Option<Instant>) {
        let retention = self.config.retention;
        let Some(shortest) = retention.shortest() else {
            return;
        };
        let sweep_every = Duration::from_millis(shortest.max(0) as u64)
            .clamp(Duration::from_secs(1), SWEEP_EVERY);
        if last_sweep.is_some_and(|t| t.elapsed() < sweep_every) {
            return;
        }
        *last_sweep = Some(Instant::now());
        match self.storage.sweep(&retention, now_ms()) {
            Ok(n) if n.total() > 0 => log::info!(
                "retention removed {} finished job(s), {} dead letter(s), {} error row(s), {} log line(s)",
                n.archived_jobs,
                n.dead_letter,
                n.job_errors,
                n.task_logs
            ),
            Err(e) => log::warn!("retention sweep failed: {e}"),
            _ => {}
        }
    }

    /// Lets the store claim and enqueue the schedules due (every worker runs this; the
    /// store makes each fire happen once), wakes the claim loop for them, and returns when
    /// the next one is due.
    fn fire_periodic(&self) -> Option<Instant> {
        match self.storage.fire_periodic(now_ms()) {
            Ok((fired, next)) => {
                if fired > 0 {
                    log::debug!("fired {fired} periodic schedule(s)");
                    self.control.wake.notify_one();
                }
                next.map(|at| Instant::now() + Duration::from_millis((at - now_ms()).max(0) as u64))
            }
            Err(e) => {
                log::warn!("firing periodic schedules failed: {e}");
                None
            }
        }
    }
}

/// The last tick of the series `next_tick + k * every` (k ≥ 0) not after `latest`, or
/// `latest` itself when the next tick is later.
fn last_tick_by(next_tick: Instant, every: Duration, latest: Instant) -> Instant {
    if next_tick > latest || every.is_zero() {
        return latest;
    }
    let k = (latest - next_tick).as_nanos() / every.as_nanos();
    next_tick + every * k as u32
}

impl Running {
    /// Asks both threads to stop and waits up to `STOP_WAIT` for them; one still inside a
    /// write is left to finish it on its own.
    pub fn stop(self) {
        let mut state = self.shared.lock();
        state.stopping = true;
        self.shared.cv.notify_all();
        let (state, _) = self
            .shared
            .cv
            .wait_timeout_while(state, STOP_WAIT, |s| s.ended < THREADS)
            .unwrap_or_else(|p| p.into_inner());
        let all_ended = state.ended >= THREADS;
        drop(state);
        if all_ended {
            for t in self.threads {
                let _ = t.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_periodic_check_lands_on_a_maintenance_tick() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Ticks every 200 ms from t0 + 100: the last by t0 + 1000 is t0 + 900.
        assert_eq!(
            last_tick_by(t0 + ms(100), ms(200), t0 + ms(1000)),
            t0 + ms(900)
        );
        // A tick exactly at the limit is taken.
        assert_eq!(
            last_tick_by(t0 + ms(1000), ms(1000), t0 + ms(1000)),
            t0 + ms(1000)
        );
        // Ticks sparser than the recheck: the recheck keeps its own time.
        assert_eq!(
            last_tick_by(t0 + ms(2500), ms(2500), t0 + ms(1000)),
            t0 + ms(1000)
        );
    }

    #[test]
    fn a_stop_wakes_a_sleeping_thread_at_once() {
        let shared = Arc::new(Shared::default());
        let sleeper = {
            let shared = shared.clone();
            thread::spawn(move || shared.sleep_until(Instant::now() + Duration::from_secs(60)))
        };
        thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        shared.lock().stopping = true;
        shared.cv.notify_all();
        assert!(!sleeper.join().unwrap());
        assert!(asked.elapsed() < Duration::from_secs(5));
    }
}
