//! The engine end to end with a Rust runner and no Python: scheduler -> channel -> worker
//! threads -> result handler -> SQLite.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use _taskito::config::WorkerConfig;
use _taskito::engine::control::Control;
use _taskito::engine::runner::Runner;
use _taskito::engine::Engine;
use _taskito::job::{now_ms, ClaimedJob, JobStatus, NewJob, Outcome};
use _taskito::storage::{Durability, SqliteStorage, Storage};

/// Runs jobs by their payload: b"ok", b"fail", b"sleep:<ms>".
struct ScriptRunner {
    runs: AtomicUsize,
}

impl Runner for ScriptRunner {
    fn run(&self, job: &ClaimedJob, _thread_id: &str, _ident: u64) -> Outcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let text = String::from_utf8_lossy(&job.payload).to_string();
        if let Some(ms) = text.strip_prefix("sleep:") {
            thread::sleep(Duration::from_millis(ms.parse().unwrap()));
            return Outcome::Complete(b"slept".to_vec());
        }
        match text.as_str() {
            "ok" => Outcome::Complete(job.id.as_bytes().to_vec()),
            _ => Outcome::Failed {
                error: "RuntimeError: scripted".into(),
                traceback: String::new(),
                retryable: true,
                rule: None,
            },
        }
    }
}

fn setup() -> (tempfile::TempDir, Arc<dyn Storage>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(
        dir.path().join("q.db").to_str().unwrap(),
        Durability::Normal,
    )
    .unwrap();
    (dir, Arc::new(s))
}

fn new_job(payload: &str, max_retries: i64, timeout_ms: i64) -> NewJob {
    NewJob {
        task_name: "t".into(),
        queue: "default".into(),
        payload: payload.as_bytes().to_vec(),
        priority: 0,
        scheduled_at: now_ms(),
        max_retries,
        retry_backoff: 0.0,
        timeout_ms,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

fn config(workers: usize) -> WorkerConfig {
    let mut c = WorkerConfig::new("test-worker", workers);
    c.poll_interval = Duration::from_millis(10);
    c.drain_timeout = Duration::from_secs(5);
    c.timeout_grace = Duration::from_millis(200);
    c
}

fn status(s: &Arc<dyn Storage>, id: &str) -> JobStatus {
    s.get_job(id).unwrap().unwrap().status
}

#[test]
fn run_once_drains_everything_with_retries_and_dead_letters() {
    let (_dir, s) = setup();
    let mut jobs: Vec<NewJob> = (0..300).map(|_| new_job("ok", 0, 60_000)).collect();
    jobs.push(new_job("fail", 2, 60_000));
    let ids = s.enqueue(&jobs).unwrap();
    let runner = Arc::new(ScriptRunner {
        runs: AtomicUsize::new(0),
    });
    let mut c = config(4);
    c.run_once = true;
    let engine = Engine::start(s.clone(), runner.clone(), c, Arc::new(Control::new())).unwrap();
    assert!(engine.wait(Duration::from_secs(60)));
    let processed = engine.join();
    // With zero backoff the retries are ready at once, so run-once runs them too.
    assert_eq!(processed, 303);
    assert_eq!(runner.runs.load(Ordering::SeqCst), 303);
    for id in &ids[..300] {
        let o = s.get_outcome(id).unwrap().unwrap();
        assert_eq!(o.status, JobStatus::Complete);
        assert_eq!(o.result.unwrap(), id.as_bytes());
    }
    assert_eq!(status(&s, &ids[300]), JobStatus::Dead);
    assert_eq!(s.job_errors(&ids[300]).unwrap().len(), 3);
}

#[test]
fn max_jobs_stops_after_that_many() {
    let (_dir, s) = setup();
    let jobs: Vec<NewJob> = (0..50).map(|_| new_job("ok", 0, 60_000)).collect();
    s.enqueue(&jobs).unwrap();
    let runner = Arc::new(ScriptRunner {
        runs: AtomicUsize::new(0),
    });
    let mut c = config(2);
    c.max_jobs = Some(7);
    let engine = Engine::start(s.clone(), runner, c, Arc::new(Control::new())).unwrap();
    assert!(engine.wait(Duration::from_secs(60)));
    assert_eq!(engine.join(), 7);
    let pending = s
        .counts()
        .unwrap()
        .into_iter()
        .filter(|(_, st, _)| *st == JobStatus::Pending)
        .map(|(_, _, n)| n)
        .sum::<i64>();
    assert_eq!(pending, 43);
}

#[test]
fn a_stuck_job_is_written_off_and_the_pool_keeps_serving() {
    let (_dir, s) = setup();
    let stuck = s
        .enqueue(&[new_job("sleep:8000", 0, 300)])
        .unwrap()
        .remove(0);
    let runner = Arc::new(ScriptRunner {
        runs: AtomicUsize::new(0),
    });
    let control = Arc::new(Control::new());
    let engine = Engine::start(s.clone(), runner, config(1), control.clone()).unwrap();
    let start = Instant::now();
    while status(&s, &stuck) != JobStatus::Dead {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timeout not enforced"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // Deadline 0.3 s + grace 0.2 s + watchdog ticks: long before the 8 s sleep ends.
    assert!(start.elapsed() < Duration::from_secs(6));
    assert!(s
        .get_job(&stuck)
        .unwrap()
        .unwrap()
        .error
        .unwrap()
        .contains("timeout"));
    // The only thread is stuck, yet a new job runs: a replacement thread took the slot.
    let quick = s.enqueue(&[new_job("ok", 0, 60_000)]).unwrap().remove(0);
    control.wake.notify_one();
    while status(&s, &quick) != JobStatus::Complete {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "pool did not keep its size"
        );
        thread::sleep(Duration::from_millis(20));
    }
    control.request_shutdown();
    assert!(engine.wait(Duration::from_secs(20)));
    engine.join();
    // The written-off thread returns later; its late result must not change the job.
    thread::sleep(Duration::from_millis(8200).saturating_sub(start.elapsed()));
    assert_eq!(status(&s, &stuck), JobStatus::Dead);
}

#[test]
fn shutdown_past_the_drain_timeout_puts_running_jobs_back() {
    let (_dir, s) = setup();
    let long = s
        .enqueue(&[new_job("sleep:6000", 0, 60_000)])
        .unwrap()
        .remove(0);
    let runner = Arc::new(ScriptRunner {
        runs: AtomicUsize::new(0),
    });
    let control = Arc::new(Control::new());
    let mut c = config(1);
    c.drain_timeout = Duration::from_millis(100);
    let engine = Engine::start(s.clone(), runner, c, control.clone()).unwrap();
    let start = Instant::now();
    while status(&s, &long) != JobStatus::Running {
        assert!(start.elapsed() < Duration::from_secs(20));
        thread::sleep(Duration::from_millis(5));
    }
    control.request_shutdown();
    assert!(engine.wait(Duration::from_secs(10)));
    engine.join();
    assert!(
        start.elapsed() < Duration::from_millis(1900),
        "did not wait for the job"
    );
    let rec = s.get_job(&long).unwrap().unwrap();
    assert_eq!((rec.status, rec.retry_count), (JobStatus::Pending, 0));
    thread::sleep(Duration::from_millis(2200));
    assert_eq!(
        status(&s, &long),
        JobStatus::Pending,
        "late result discarded"
    );
}

/// The async lane end to end, with a Rust thread standing in for the event loop: async
/// jobs are claimed apart from the worker threads, up to the lane's cap, and their
/// outcomes reach the store; one that never finishes is failed after its deadline.
#[test]
fn async_lane_claims_apart_from_threads_and_records_outcomes() {
    use _taskito::engine::async_lane::{AsyncLane, Next};

    let (_dir, s) = setup();
    let named = |task: &str, payload: &str, timeout_ms| NewJob {
        task_name: task.into(),
        ..new_job(payload, 0, timeout_ms)
    };
    let mut jobs: Vec<NewJob> = (0..20).map(|_| named("aio", "ok", 60_000)).collect();
    jobs.push(named("aio", "hang", 300));
    jobs.extend((0..5).map(|_| named("t", "ok", 60_000)));
    let ids = s.enqueue(&jobs).unwrap();
    let lane = Arc::new(AsyncLane::new(
        vec!["aio".into()],
        4,
        Duration::from_millis(100),
    ));
    let runner = Arc::new(ScriptRunner {
        runs: AtomicUsize::new(0),
    });
    let control = Arc::new(Control::new());
    let engine = Engine::start_with(
        s.clone(),
        runner.clone(),
        config(1),
        control.clone(),
        Some(lane.clone()),
    )
    .unwrap();
    // The "loop": takes jobs, holds up to the cap at once, finishes all but the hang.
    let most = Arc::new(AtomicUsize::new(0));
    let (l, m) = (lane.clone(), most.clone());
    let looper = thread::spawn(move || loop {
        match l.next_job(Duration::from_millis(50)) {
            Next::Closed => return,
            Next::Idle => {}
            Next::Job(job) => {
                m.fetch_max(l.in_flight(), Ordering::SeqCst);
                if job.payload != b"hang" {
                    thread::sleep(Duration::from_millis(20));
                    l.finish(&job.id, Outcome::Complete(b"async".to_vec()));
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.iter().any(|id| !status(&s, id).is_finished()) {
        assert!(Instant::now() < deadline, "jobs did not finish");
        thread::sleep(Duration::from_millis(20));
    }
    control.request_shutdown();
    engine.join();
    looper.join().unwrap();
    assert!(most.load(Ordering::SeqCst) <= 4);
    assert_eq!(
        runner.runs.load(Ordering::SeqCst),
        5,
        "threads ran only sync jobs"
    );
    for (i, id) in ids.iter().enumerate() {
        let job = s.get_job(id).unwrap().unwrap();
        match i {
            20 => {
                assert_eq!(job.status, JobStatus::Dead);
                assert!(job.error.unwrap().contains("TaskTimeoutError"));
            }
            _ if i < 20 => {
                assert_eq!(job.status, JobStatus::Complete);
                assert_eq!(job.worker_id.as_deref(), Some("test-worker-async"));
            }
            _ => assert_eq!(job.status, JobStatus::Complete),
        }
    }
}
