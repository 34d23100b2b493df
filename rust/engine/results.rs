//! The result handler: one thread that drains the outcome channel and writes each batch in
//! one transaction — complete, retry with full-jitter backoff, or fail / dead-letter. It
//! also owns the retry policy, so `process_one` and `execute` decide exactly as workers do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use std::collections::{HashSet, VecDeque};

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::engine::control::Control;
use crate::engine::events::{Event, JobRef};
use crate::engine::health::Health;
use crate::engine::load::InFlight;
use crate::error::{Error, Result};
use crate::job::{now_ms, JobStatus, Outcome};
use crate::retry_rule::RetryRule;
use crate::storage::{Storage, Write};

/// How long a "started" mark waits before it is written (see `plan`).
const STARTED_DELAY: Duration = Duration::from_millis(100);
/// Most events written in one transaction.
const MAX_BATCH: usize = 512;
/// How long a stopping worker keeps retrying outcomes the store refuses (disk full, I/O
/// error) before it gives up; its jobs then stay `running` and stale recovery puts them back.
/// A running worker retries until the writes succeed.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// Longest wait before a retry, seconds (API: min(backoff * 2**(k-1), 300)).
const MAX_BACKOFF_S: f64 = 300.0;

/// The delay before retry `k` (1-based): uniform in `[0, min(backoff * 2**(k-1), 300)]`.
pub fn backoff_ms(retry_backoff: f64, k: i64) -> i64 {
    let exp = (k - 1).clamp(0, 62) as i32;
    let cap = (retry_backoff.max(0.0) * 2f64.powi(exp)).min(MAX_BACKOFF_S);
    (fastrand::f64() * cap * 1000.0) as i64
}

/// Longest error message stored for a failed run, in bytes (the rest is cut with a note).
pub const MAX_ERROR_BYTES: usize = 4096;
/// Longest traceback stored for a failed run, in bytes.
pub const MAX_TRACEBACK_BYTES: usize = 64 * 1024;

/// `text` cut to at most `limit` bytes at a character boundary, with a note of how much
/// was cut: a task cannot fill the error table with one exception's message.
pub fn cut_text(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let total = text.len();
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("… ({} more bytes cut)", total - end));
    text
}

/// Turns one finished run into the write that records it.
pub fn decide(job: &JobRef, thread_id: &str, outcome: Outcome, now: i64) -> Write {
    let (id, token, thread_id) = (job.id.clone(), job.token, thread_id.to_string());
    let outcome = match outcome {
        Outcome::Failed {
            error,
            traceback,
            retryable,
            rule,
        } => Outcome::Failed {
            error: cut_text(error, MAX_ERROR_BYTES),
            traceback: cut_text(traceback, MAX_TRACEBACK_BYTES),
            retryable,
            rule,
        },
        complete => complete,
    };
    match outcome {
        Outcome::Complete(result) => Write::Complete {
            id,
            token,
            thread_id,
            result,
        },
        Outcome::Failed {
            error,
            traceback,
            retryable: true,
            rule: Some(RetryRule::After(delay_ms)),
        } if job.retry_count < job.max_retries => Write::Retry {
            id,
            token,
            thread_id,
            error,
            traceback,
            run_at: now.saturating_add(delay_ms),
            counted: true,
        },
        Outcome::Failed {
            error,
            traceback,
            rule: Some(RetryRule::Postpone(delay_ms)),
            ..
        } => Write::Retry {
            id,
            token,
            thread_id,
            error,
            traceback,
            run_at: now.saturating_add(delay_ms),
            counted: false,
        },
        Outcome::Failed {
            error,
            traceback,
            retryable: true,
            rule: Some(RetryRule::DeadLetter { metadata }),
        } => Write::Fail {
            id,
            token,
            thread_id,
            error,
            traceback,
            status: JobStatus::Dead,
            dead_metadata: metadata,
        },
        Outcome::Failed {
            error,
            traceback,
            retryable: true,
            rule: None,
        } if job.retry_count < job.max_retries => Write::Retry {
            id,
            token,
            thread_id,
            error,
            traceback,
            run_at: now + backoff_ms(job.retry_backoff, job.retry_count + 1),
            counted: true,
        },
        Outcome::Failed {
            error,
            traceback,
            retryable,
            ..
        } => Write::Fail {
            id,
            token,
            thread_id,
            error,
            traceback,
            status: if retryable {
                JobStatus::Dead
            } else {
                JobStatus::Failed
            },
            dead_metadata: None,
        },
    }
}

/// A "started" mark not yet written: which thread runs a claimed job.
struct StartedMark {
    arrived: Instant,
    id: String,
    token: i64,
    thread_id: String,
}

/// Turns a batch of events into writes. "Started" marks wait `STARTED_DELAY` in `marks`
/// before they are written: a job that ends sooner is recorded by its completion alone,
/// which names the thread too, so short jobs cost one write instead of two.
/// Returns the writes, the runs that finished, and the claims ended (finished or put back).
fn plan(
    batch: Vec<Event>,
    now: i64,
    marks: &mut VecDeque<StartedMark>,
) -> (Vec<Write>, u64, usize) {
    let mut writes = Vec::with_capacity(batch.len());
    let mut ended_claims: HashSet<(String, i64)> = HashSet::new();
    let mut processed = 0;
    for event in batch {
        match event {
            Event::Started {
                id,
                token,
                thread_id,
            } => marks.push_back(StartedMark {
                arrived: Instant::now(),
                id,
                token,
                thread_id,
            }),
            Event::Finished {
                job,
                thread_id,
                outcome,
            } => {
                processed += 1;
                ended_claims.insert((job.id.clone(), job.token));
                writes.push(decide(&job, &thread_id, outcome, now));
            }
            Event::Requeue(job) => {
                ended_claims.insert((job.id.clone(), job.token));
                writes.push(Write::Requeue {
                    id: job.id,
                    token: job.token,
                })
            }
            Event::Stop => {}
        }
    }
    if !ended_claims.is_empty() {
        marks.retain(|m| !ended_claims.contains(&(m.id.clone(), m.token)));
    }
    while marks
        .front()
        .is_some_and(|m| m.arrived.elapsed() >= STARTED_DELAY)
    {
        let m = marks.pop_front().expect("checked");
        writes.push(Write::Started {
            id: m.id,
            token: m.token,
            thread_id: m.thread_id,
        });
    }
    (writes, processed, ended_claims.len())
}

/// The write that fails a job whose own outcome could not be written (a value the store
/// refuses, such as a result too big): the error says why. `None` for writes that end no run.
fn unrecordable(write: &Write, cause: &Error) -> Option<Write> {
    let (id, token, thread_id) = match write {
        Write::Complete {
            id,
            token,
            thread_id,
            ..
        }
        | Write::Retry {
            id,
            token,
            thread_id,
            ..
        }
        | Write::Fail {
            id,
            token,
            thread_id,
            ..
        } => (id, token, thread_id),
        Write::Started { .. } | Write::Requeue { .. } => return None,
    };
    Some(Write::Fail {
        id: id.clone(),
        token: *token,
        thread_id: thread_id.clone(),
        error: format!("could not record the result: {cause}"),
        traceback: String::new(),
        status: JobStatus::Failed,
        dead_metadata: None,
    })
}

/// Writes what it can of a batch that failed as a whole, one write at a time: a write the
/// store refuses fails its own job instead (with the reason); other jobs are unaffected.
/// Returns the writes still unwritten because the store refuses every write (disk full,
/// file gone), to retry later.
fn persist_one_by_one(storage: &dyn Storage, writes: Vec<Write>) -> Vec<Write> {
    let mut left = writes.into_iter();
    while let Some(w) = left.next() {
        let Err(e) = storage.record(std::slice::from_ref(&w), now_ms()) else {
            continue;
        };
        // A store out of reach (a server restarting) says nothing about this value; and a
        // value the store refuses is refused again, while a passing failure is not.
        let e = match e.is_unavailable() {
            false => match storage.record(std::slice::from_ref(&w), now_ms()) {
                Ok(_) => continue,
                Err(again) => again,
            },
            true => e,
        };
        if e.is_unavailable() {
            let mut rest = vec![w];
            rest.extend(left);
            return rest;
        }
        match unrecordable(&w, &e) {
            Some(fail) => match storage.record(std::slice::from_ref(&fail), now_ms()) {
                Ok(_) => {
                    let id = match &w {
                        Write::Complete { id, .. }
                        | Write::Retry { id, .. }
                        | Write::Fail { id, .. } => id.as_str(),
                        _ => "",
                    };
                    log::error!("could not record the outcome of job {id} ({e}); it is failed");
                }
                Err(_) => {
                    // Even a small write fails: the store is unwritable, not this value.
                    let mut rest = vec![w];
                    rest.extend(left);
                    return rest;
                }
            },
            // A lost "started" mark only hides which thread runs a job; a put-back that
            // cannot be written leaves the job to stale recovery. Neither blocks the rest.
            None if matches!(w, Write::Started { .. }) => {}
            None => {
                let mut rest = vec![w];
                rest.extend(left);
                return rest;
            }
        }
    }
    Vec::new()
}

/// Writes a batch. A batch that fails is written one write at a time, so one bad value
/// costs only its own job. While the store refuses every write, the worker is unhealthy
/// (claims nothing, says so) and the writes are retried until they succeed; only a
/// stopping worker gives up, after `GIVE_UP_AFTER`, leaving the jobs to stale recovery.
pub fn persist(storage: &dyn Storage, writes: Vec<Write>, health: &Health, control: &Control) {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut pending = writes;
    loop {
        let failed = match storage.record(&pending, now_ms()) {
            Ok(_) => Vec::new(),
            Err(e) => {
                if !health.store_failing() {
                    log::warn!(
                        "could not record {} job outcome(s) together ({e}); recording them one \
                         by one",
                        pending.len()
                    );
                }
                persist_one_by_one(storage, pending)
            }
        };
        if failed.is_empty() {
            if health.set_store_failing(false) {
                log::warn!("the database accepts writes again; job outcomes are recorded");
            }
            return;
        }
        if health.set_store_failing(true) {
            log::error!(
                "the database refuses writes (disk full? file removed?): {} job outcome(s) wait \
                 to be recorded; this worker claims no jobs until writes succeed",
                failed.len()
            );
        }
        if control.stop_requested() && start.elapsed() >= GIVE_UP_AFTER {
            log::error!(
                "giving up recording {} job outcome(s) at shutdown; the jobs will be recovered \
                 as stale",
                failed.len()
            );
            return;
        }
        pending = failed;
        thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Starts the result handler thread. `processed` counts finished runs it recorded;
/// `unrecorded` (claims whose outcome is not yet written) goes down as batches commit.
pub fn spawn(
    storage: Arc<dyn Storage>,
    events: Receiver<Event>,
    control: Arc<Control>,
    processed: Arc<AtomicU64>,
    unrecorded: Arc<InFlight>,
    health: Arc<Health>,
) -> Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("taskito-results".into())
        .spawn(move || {
            let mut marks: VecDeque<StartedMark> = VecDeque::new();
            loop {
                // Sleep until the next event, or until the oldest mark is due.
                let first = match marks.front() {
                    None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    Some(m) => {
                        events.recv_timeout(STARTED_DELAY.saturating_sub(m.arrived.elapsed()))
                    }
                };
                let mut batch = Vec::new();
                let mut stop = false;
                match first {
                    Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    Ok(e) => batch.push(e),
                    Err(RecvTimeoutError::Timeout) => {}
                }
                while !batch.is_empty() && batch.len() < MAX_BATCH {
                    match events.try_recv() {
                        Ok(Event::Stop) => {
                            stop = true;
                            break;
                        }
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let (writes, finished, ended) = plan(batch, now_ms(), &mut marks);
                if !writes.is_empty() {
                    persist(storage.as_ref(), writes, &health, &control);
                }
                if ended > 0 {
                    processed.fetch_add(finished, Ordering::SeqCst);
                    unrecorded.sub(ended);
                    control.results_committed();
                    control.wake.notify_one();
                }
                if stop {
                    return;
                }
            }
        })
        .map_err(|e| Error::Start(format!("cannot start the result handler: {e}")))
}
