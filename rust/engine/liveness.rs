//! Judging which workers are alive, immune to steps of the wall clock. Every heartbeat adds
//! one to the worker's counter in the registry; an observer (each running worker) remembers,
//! per worker, the last counter it saw and the instant of its own monotonic clock when that
//! counter last changed. A worker whose counter has not moved for `stale_after` of the
//! observer's monotonic time is presumed dead. Wall-clock timestamps (`last_heartbeat`) are
//! only shown to people: a step of the host's clock (NTP, a resumed VM) changes nothing here.
//!
//! A worker restarted under an id a dead run used (a fixed `--worker-id`, or `<host>-<pid>`
//! in a container restarted as pid 1) is a new incarnation: the earlier incarnation's jobs
//! are put back as soon as it is known dead (same host and its pid is gone, or the pid is
//! the newcomer's own), and otherwise (another host) once its counter stays still for three
//! heartbeat intervals. An
//! earlier incarnation whose counter moves is a second live process using the same id: it
//! gets a warning, and recovery still tells the two apart.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::job::{now_ms, WorkerBeat, WorkerKey};
use crate::storage::Storage;

/// The time sources of liveness: monotonic for judging, wall for what is stored and shown.
pub trait Clock: Send + Sync + 'static {
    /// Time since an arbitrary fixed origin; never goes back, unaffected by clock steps.
    fn monotonic(&self) -> Duration;
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
}

/// The host's clocks.
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
    fn wall_ms(&self) -> i64 {
        now_ms()
    }
}

/// Whether process `pid` exists on this host.
fn pid_alive(pid: i64) -> bool {
    if pid <= 0 || pid > i32::MAX as i64 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

struct Seen {
    beats: i64,
    since: Duration,
    warned: bool,
}

/// One worker's view of every other worker's liveness.
pub struct Observer {
    me: WorkerKey,
    hostname: String,
    pid: i64,
    stale_after: Duration,
    /// How long an earlier incarnation of this worker's own id on another host may stay
    /// silent before its jobs are put back (a restart should not wait the full `stale_after`).
    sibling_after: Duration,
    clock: Arc<dyn Clock>,
    seen: HashMap<WorkerKey, Seen>,
    last_check: Option<Duration>,
}

impl Observer {
    pub fn new(
        me: WorkerKey,
        hostname: String,
        pid: i64,
        heartbeat_interval: Duration,
        stale_after: Duration,
        clock: Arc<dyn Clock>,
    ) -> Observer {
        Observer {
            me,
            hostname,
            pid,
            stale_after,
            sibling_after: (heartbeat_interval * 3).min(stale_after),
            clock,
            seen: HashMap::new(),
            last_check: None,
        }
    }

    /// Whether an earlier incarnation of this worker's id is certainly gone: on this host,
    /// its pid is this process's own or no longer exists.
    fn sibling_known_dead(&self, row: &WorkerBeat) -> bool {
        row.key.worker_id == self.me.worker_id
            && !self.hostname.is_empty()
            && row.hostname == self.hostname
            && (row.pid == self.pid || !pid_alive(row.pid))
    }

    /// The workers to presume dead given the registry's live rows now.
    pub fn judge(&mut self, rows: &[WorkerBeat]) -> Vec<WorkerBeat> {
        let now = self.clock.monotonic();
        // An observer that was itself stopped (or starved) for a while has not been
        // watching: it starts its timers over rather than blame others for its own gap.
        let gap = self.last_check.map(|t| now.saturating_sub(t));
        let blind = gap.is_some_and(|g| g >= self.stale_after / 2);
        self.last_check = Some(now);
        let mut dead = Vec::new();
        for row in rows {
            if row.key == self.me {
                continue;
            }
            let sibling = row.key.worker_id == self.me.worker_id;
            let Some(seen) = self.seen.get_mut(&row.key) else {
                self.seen.insert(
                    row.key.clone(),
                    Seen {
                        beats: row.beats,
                        since: now,
                        warned: false,
                    },
                );
                if self.sibling_known_dead(row) {
                    dead.push(row.clone());
                }
                continue;
            };
            if seen.beats != row.beats {
                seen.beats = row.beats;
                seen.since = now;
                if sibling && !seen.warned {
                    seen.warned = true;
                    log::warn!(
                        "another live worker uses the id {} (pid {} on {}); give each worker \
                         process its own --worker-id",
                        row.key.worker_id,
                        row.pid,
                        row.hostname
                    );
                }
                continue;
            }
            if blind {
                seen.since = now;
                continue;
            }
            // An earlier run of this id on another host cannot be asked about its pid: it
            // gets a few heartbeats. On this host a live pid is a second live process
            // (warned about above) and is judged like any other worker.
            let limit = if sibling && row.hostname != self.hostname {
                self.sibling_after
            } else {
                self.stale_after
            };
            if now.saturating_sub(seen.since) >= limit || (sibling && self.sibling_known_dead(row))
            {
                dead.push(row.clone());
            }
        }
        self.seen.retain(|k, _| rows.iter().any(|r| &r.key == k));
        dead
    }

    /// Reads the registry, presumes dead the workers whose counter stood still too long,
    /// and puts back the running jobs that no live incarnation holds. Returns how many.
    pub fn check(&mut self, storage: &dyn Storage) -> Result<usize> {
        let rows = storage.worker_beats()?;
        let dead = self.judge(&rows);
        for d in &dead {
            if d.key.worker_id == self.me.worker_id {
                log::warn!(
                    "an earlier run of worker {} (pid {} on {}) is gone; putting its jobs back",
                    d.key.worker_id,
                    d.pid,
                    d.hostname
                );
            }
        }
        storage.recover_workers(&dead, self.clock.wall_ms())
    }
}
