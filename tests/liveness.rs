//! Liveness judged on heartbeat counters and the observer's monotonic clock: steps of the
//! wall clock change nothing, and a restart under a dead run's id recovers that run's jobs
//! at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use _taskito::engine::liveness::{Clock, Observer};
use _taskito::job::{now_ms, JobStatus, NewJob, WorkerInfo, WorkerKey};
use _taskito::storage::{Durability, SqliteStorage, Storage};

/// A clock the test moves by hand: monotonic time only forward, wall time anywhere.
struct FakeClock {
    mono: Mutex<Duration>,
    wall: AtomicI64,
}

impl FakeClock {
    fn new() -> Arc<FakeClock> {
        Arc::new(FakeClock {
            mono: Mutex::new(Duration::from_secs(1000)),
            wall: AtomicI64::new(now_ms()),
        })
    }
    fn advance(&self, d: Duration) {
        *self.mono.lock().unwrap() += d;
        self.wall.fetch_add(d.as_millis() as i64, Ordering::SeqCst);
    }
    fn step_wall(&self, ms: i64) {
        self.wall.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn monotonic(&self) -> Duration {
        *self.mono.lock().unwrap()
    }
    fn wall_ms(&self) -> i64 {
        self.wall.load(Ordering::SeqCst)
    }
}

fn open(dir: &tempfile::TempDir) -> SqliteStorage {
    SqliteStorage::open(
        dir.path().join("q.db").to_str().unwrap(),
        Durability::Normal,
    )
    .unwrap()
}

fn register(s: &dyn Storage, key: &WorkerKey, hostname: &str, pid: i64, wall: i64) {
    s.register_worker(&WorkerInfo {
        worker_id: key.worker_id.clone(),
        incarnation: key.incarnation,
        hostname: hostname.into(),
        pid,
        queues: "*".into(),
        started_at: wall,
        last_heartbeat: wall,
        status: "active".into(),
    })
    .unwrap();
}

/// A job `owner` claimed and started.
fn claimed_job(s: &dyn Storage, owner: &WorkerKey) -> String {
    let now = now_ms();
    s.enqueue(&[NewJob {
        task_name: "t".into(),
        queue: "q".into(),
        payload: vec![],
        priority: 0,
        scheduled_at: now - 1,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 1000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }])
    .unwrap();
    // Claimed and started: a job claimed ahead and not started reads pending.
    let job = s.claim(None, owner, 1, now).unwrap().remove(0);
    assert!(s.record_start(&job.id, job.claim_token, "t-0").unwrap());
    job.id
}

fn status(s: &dyn Storage, id: &str) -> JobStatus {
    s.get_job(id).unwrap().unwrap().status
}

/// One live worker heartbeats every second, one died at the start; the observer checks
/// every second. The wall clock is stepped by `step_ms` after 3 s. Returns the second (of
/// observer time) at which the dead worker's job was put back, after checking that the live
/// worker's job never was.
fn run_with_wall_step(step_ms: i64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let live = WorkerKey::new("live", 1);
    let dead = WorkerKey::new("dead", 2);
    let me = WorkerKey::new("observer", 3);
    for k in [&live, &dead, &me] {
        register(&s, k, "other-host", 1, clock.wall_ms());
    }
    let live_job = claimed_job(&s, &live);
    let dead_job = claimed_job(&s, &dead);
    let stale_after = Duration::from_secs(10);
    let mut observer = Observer::new(
        me,
        "this-host".into(),
        1,
        Duration::from_secs(1),
        stale_after,
        clock.clone(),
    );
    let mut recovered_at = None;
    for second in 0..30u64 {
        if second == 3 {
            clock.step_wall(step_ms);
        }
        s.heartbeat(&live, "active", clock.wall_ms()).unwrap();
        observer.check(&s).unwrap();
        assert_eq!(
            status(&s, &live_job),
            JobStatus::Running,
            "second {second}: a live worker's job was taken"
        );
        if recovered_at.is_none() && status(&s, &dead_job) == JobStatus::Pending {
            recovered_at = Some(second);
        }
        clock.advance(Duration::from_secs(1));
    }
    let rows = s.workers().unwrap();
    let st = |id: &str| {
        rows.iter()
            .find(|w| w.worker_id == id)
            .unwrap()
            .status
            .clone()
    };
    assert_eq!(st("live"), "active");
    assert_eq!(st("dead"), "dead");
    recovered_at.expect("the dead worker's job was never put back")
}

#[test]
fn a_wall_clock_step_forward_recovers_no_live_worker_and_delays_no_dead_one() {
    let at = run_with_wall_step(3_600_000);
    // First seen at second 0; silent for stale_after (10 s) of monotonic time at second 10.
    assert_eq!(at, 10);
}

#[test]
fn a_wall_clock_step_back_recovers_no_live_worker_and_delays_no_dead_one() {
    let at = run_with_wall_step(-3_600_000);
    assert_eq!(at, 10);
}

#[test]
fn without_a_step_the_figure_is_the_same() {
    assert_eq!(run_with_wall_step(0), 10);
}

#[test]
fn a_paused_observer_starts_its_timers_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let other = WorkerKey::new("other", 1);
    register(&s, &other, "h", 1, clock.wall_ms());
    let job = claimed_job(&s, &other);
    let mut observer = Observer::new(
        WorkerKey::new("me", 2),
        "h2".into(),
        1,
        Duration::from_secs(1),
        Duration::from_secs(10),
        clock.clone(),
    );
    observer.check(&s).unwrap();
    // The observer itself was frozen for a minute: what it did not watch it cannot judge.
    clock.advance(Duration::from_secs(60));
    s.heartbeat(&other, "active", clock.wall_ms()).unwrap();
    let rows = s.worker_beats().unwrap();
    assert!(observer.judge(&rows).is_empty());
    assert_eq!(status(&s, &job), JobStatus::Running);
}

#[test]
fn an_earlier_run_of_the_same_id_whose_process_is_gone_is_recovered_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let before = WorkerKey::new("fixed-id", 1);
    // A pid no process has (above Linux's largest pid_max).
    register(&s, &before, "host-a", 1 << 30, clock.wall_ms());
    let orphan = claimed_job(&s, &before);
    let now_key = WorkerKey::new("fixed-id", 2);
    register(
        &s,
        &now_key,
        "host-a",
        std::process::id() as i64,
        clock.wall_ms(),
    );
    let mut observer = Observer::new(
        now_key,
        "host-a".into(),
        std::process::id() as i64,
        Duration::from_secs(2),
        Duration::from_secs(600),
        clock.clone(),
    );
    assert_eq!(observer.check(&s).unwrap(), 1);
    assert_eq!(status(&s, &orphan), JobStatus::Pending);
}

#[test]
fn a_live_process_with_the_same_id_keeps_its_jobs_while_it_beats() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let twin = WorkerKey::new("fixed-id", 1);
    // The test's parent process: alive, so only its counter can tell.
    let parent = std::os::unix::process::parent_id() as i64;
    register(&s, &twin, "host-b", parent, clock.wall_ms());
    let job = claimed_job(&s, &twin);
    let me = WorkerKey::new("fixed-id", 2);
    let mut observer = Observer::new(
        me,
        "host-a".into(),
        std::process::id() as i64,
        Duration::from_secs(2),
        Duration::from_secs(600),
        clock.clone(),
    );
    for _ in 0..20 {
        s.heartbeat(&twin, "active", clock.wall_ms()).unwrap();
        assert_eq!(observer.check(&s).unwrap(), 0);
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(status(&s, &job), JobStatus::Running);
    // It stops beating: an earlier run of this id on another host is given three
    // heartbeats, not stale_after.
    let mut waited = 0;
    while status(&s, &job) == JobStatus::Running {
        observer.check(&s).unwrap();
        clock.advance(Duration::from_secs(1));
        waited += 1;
        assert!(waited <= 7, "not recovered after {waited} s");
    }
}

#[test]
fn a_live_pid_on_this_host_under_the_same_id_is_judged_like_any_worker() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let twin = WorkerKey::new("fixed-id", 1);
    let parent = std::os::unix::process::parent_id() as i64;
    register(&s, &twin, "host-a", parent, clock.wall_ms());
    let job = claimed_job(&s, &twin);
    let mut observer = Observer::new(
        WorkerKey::new("fixed-id", 2),
        "host-a".into(),
        std::process::id() as i64,
        Duration::from_secs(2),
        Duration::from_secs(30),
        clock.clone(),
    );
    for second in 0..40 {
        observer.check(&s).unwrap();
        let expected = if second < 30 {
            JobStatus::Running
        } else {
            JobStatus::Pending
        };
        assert_eq!(status(&s, &job), expected, "second {second}");
        clock.advance(Duration::from_secs(1));
    }
}

#[test]
fn an_earlier_run_with_this_very_pid_is_recovered_at_once() {
    // A container restarted as pid 1 under `<hostname>-<pid>`: the same id, host and pid.
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let clock = FakeClock::new();
    let pid = std::process::id() as i64;
    let before = WorkerKey::new("box-1", 1);
    register(&s, &before, "box", pid, clock.wall_ms());
    let orphan = claimed_job(&s, &before);
    let now_key = WorkerKey::new("box-1", 2);
    register(&s, &now_key, "box", pid, clock.wall_ms());
    let mut observer = Observer::new(
        now_key,
        "box".into(),
        pid,
        Duration::from_secs(2),
        Duration::from_secs(600),
        clock.clone(),
    );
    assert_eq!(observer.check(&s).unwrap(), 1);
    assert_eq!(status(&s, &orphan), JobStatus::Pending);
}
