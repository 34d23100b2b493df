//! The async lane: jobs of `async def` tasks, claimed apart from the worker threads' jobs
//! and run concurrently on one event loop per worker process, up to `async_concurrency`
//! at once. The scheduler claims for it (`claim`); a Python thread takes the jobs
//! (`next_job`) and hands them to the loop without holding a worker thread; each outcome
//! comes back through `finish` to the one result handler, fenced like any other.
//! Deadlines are enforced by the loop (the task is cancelled at its timeout); the lane
//! writes off a job still running `grace` after its deadline (a coroutine that blocks the
//! loop cannot be cancelled) so its claim is never held forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

use crate::engine::control::Control;
use crate::engine::events::{Event, JobRef};
use crate::engine::load::InFlight;
use crate::engine::runner::record_start;
use crate::error::Result;
use crate::job::{now_ms, ClaimedJob, Outcome, WorkerKey};
use crate::storage::{Storage, TaskFilter};

/// How often a waiting `next_job` looks for jobs past their deadline and for a close.
const TICK: Duration = Duration::from_millis(100);

/// What `next_job` found.
pub enum Next {
    Job(Box<ClaimedJob>),
    /// Nothing within the wait.
    Idle,
    /// The lane is closed: the run is over.
    Closed,
}

struct Running {
    job: JobRef,
    deadline: Instant,
}

/// What the engine attaches when it starts: where outcomes go and whom to wake.
struct Wiring {
    events_tx: Sender<Event>,
    control: Arc<Control>,
    unrecorded: Arc<InFlight>,
    thread_id: String,
}

pub struct AsyncLane {
    names: Vec<String>,
    cap: usize,
    grace: Duration,
    in_flight: InFlight,
    jobs_tx: Sender<ClaimedJob>,
    jobs_rx: Receiver<ClaimedJob>,
    running: Mutex<HashMap<String, Running>>,
    wiring: OnceLock<Wiring>,
    closed: AtomicBool,
}

impl AsyncLane {
    /// A lane for the task names `names`, running at most `cap` jobs at once.
    pub fn new(names: Vec<String>, cap: usize, grace: Duration) -> AsyncLane {
        let (jobs_tx, jobs_rx) = unbounded();
        AsyncLane {
            names,
            cap: cap.max(1),
            grace,
            in_flight: InFlight::default(),
            jobs_tx,
            jobs_rx,
            running: Mutex::new(HashMap::new()),
            wiring: OnceLock::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Connects the lane to one engine run; a lane serves one run only.
    pub fn attach(
        &self,
        events_tx: Sender<Event>,
        control: Arc<Control>,
        unrecorded: Arc<InFlight>,
        worker_id: &str,
    ) -> bool {
        self.wiring
            .set(Wiring {
                events_tx,
                control,
                unrecorded,
                thread_id: format!("{worker_id}-async"),
            })
            .is_ok()
    }

    /// The id recorded on the lane's jobs: `<worker_id>-async` (empty before `attach`).
    pub fn thread_id(&self) -> &str {
        self.wiring.get().map_or("", |w| w.thread_id.as_str())
    }

    /// Whether an engine run already uses this lane.
    pub fn attached(&self) -> bool {
        self.wiring.get().is_some()
    }

    /// The async task names, which the worker threads must not claim.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Jobs claimed for the lane and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Room for more jobs.
    pub fn free(&self) -> usize {
        if self.closed.load(Ordering::SeqCst) {
            return 0;
        }
        self.cap.saturating_sub(self.in_flight.get())
    }

    /// Claims up to `limit` ready async jobs and hands them to the loop; returns how many.
    pub fn claim(
        &self,
        storage: &dyn Storage,
        queues: Option<&[String]>,
        owner: &WorkerKey,
        limit: usize,
    ) -> Result<usize> {
        let Some(w) = self.wiring.get() else {
            return Ok(0);
        };
        let jobs = storage.claim_filtered(
            queues,
            owner,
            limit,
            now_ms(),
            TaskFilter::Only(&self.names),
        )?;
        let n = jobs.len();
        self.in_flight.add(n);
        w.unrecorded.add(n);
        for job in jobs {
            let job_ref = JobRef::from(&job);
            // The lane claims only for free room, so its jobs start at once and their start
            // is marked later, unless a claim of theirs was lost before a start was known:
            // then it is recorded now (see `ClaimedJob::eager_start`).
            let recorded = if job.eager_start {
                match record_start(storage, &job, &w.thread_id) {
                    Some(recorded) => recorded,
                    None => {
                        // Cancelled since the claim: it must not run (the put-back is fenced).
                        let _ = w.events_tx.send(Event::Requeue(job_ref));
                        self.in_flight.done();
                        continue;
                    }
                }
            } else {
                false
            };
            let timeout = Duration::from_millis(job.timeout_ms.max(1) as u64);
            self.lock().insert(
                job.id.clone(),
                Running {
                    job: job_ref,
                    deadline: Instant::now() + timeout,
                },
            );
            if !recorded {
                let _ = w.events_tx.send(Event::Started {
                    id: job.id.clone(),
                    token: job.claim_token,
                    thread_id: w.thread_id.clone(),
                });
            }
            // Unbounded and never closed while the lane lives: cannot fail.
            let _ = self.jobs_tx.send(job);
        }
        Ok(n)
    }

    /// The next job for the loop, waiting up to `wait`. Writes off jobs past their
    /// deadline and grace while it waits.
    pub fn next_job(&self, wait: Duration) -> Next {
        let until = Instant::now() + wait;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Next::Closed;
            }
            self.check_timeouts();
            if self
                .wiring
                .get()
                .is_some_and(|w| w.control.stop_requested())
            {
                // Draining: no job starts after the stop; the drain puts queued ones back.
                std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
                if Instant::now() >= until {
                    return Next::Idle;
                }
                continue;
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.jobs_rx.recv_timeout(left.min(TICK)) {
                Ok(job) => {
                    if self.closed.load(Ordering::SeqCst) {
                        // Closed while it waited: the drain puts it back.
                        let _ = self.jobs_tx.send(job);
                        return Next::Closed;
                    }
                    return Next::Job(Box::new(job));
                }
                Err(RecvTimeoutError::Timeout) if Instant::now() >= until => return Next::Idle,
                Err(_) => {}
            }
        }
    }

    /// Records a job's outcome. Ignored when the lane no longer holds the job (written off
    /// past its deadline, or put back at shutdown): the store would fence it anyway.
    pub fn finish(&self, id: &str, outcome: Outcome) -> bool {
        let Some(w) = self.wiring.get() else {
            return false;
        };
        let mut running = self.lock();
        let Some(r) = running.remove(id) else {
            return false;
        };
        // Sent under the lock so a shutdown that writes off the rest cannot overtake it.
        let _ = w.events_tx.send(Event::Finished {
            job: r.job,
            thread_id: w.thread_id.clone(),
            outcome,
        });
        drop(running);
        self.in_flight.done();
        w.control.wake.notify_one();
        true
    }

    fn check_timeouts(&self) {
        let Some(w) = self.wiring.get() else {
            return;
        };
        let now = Instant::now();
        let mut running = self.lock();
        let late: Vec<String> = running
            .iter()
            .filter(|(_, r)| now >= r.deadline + self.grace)
            .map(|(id, _)| id.clone())
            .collect();
        for id in late {
            let r = running.remove(&id).expect("listed above");
            log::warn!(
                "async job {} ({}) did not stop after its timeout; it is written off",
                r.job.id,
                r.job.task_name
            );
            let _ = w.events_tx.send(Event::Finished {
                outcome: crate::engine::runner::timeout_outcome(&r.job),
                thread_id: w.thread_id.clone(),
                job: r.job,
            });
            self.in_flight.done();
        }
    }

    /// Takes back jobs claimed for the lane that the loop has not started.
    pub fn take_queued(&self) -> Vec<JobRef> {
        let mut taken = Vec::new();
        let mut running = self.lock();
        while let Ok(job) = self.jobs_rx.try_recv() {
            running.remove(&job.id);
            taken.push(JobRef::from(&job));
            self.in_flight.done();
        }
        taken
    }

    /// Stops handing out jobs and returns every job the lane still holds (queued or
    /// running), for the drain to put back; late outcomes of those are ignored.
    pub fn close(&self) -> Vec<JobRef> {
        self.closed.store(true, Ordering::SeqCst);
        let mut taken = self.take_queued();
        let mut running = self.lock();
        for (_, r) in running.drain() {
            taken.push(r.job);
            self.in_flight.done();
        }
        taken
    }
}
