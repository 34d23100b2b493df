//! Periodic fires, task limits and pending caps in the SQLite store, without Python: two
//! stores on one file stand for two processes.

use std::sync::{Arc, Barrier};
use std::thread;

use _taskito::error::Error;
use _taskito::job::{now_ms, JobFilter, NewJob};
use _taskito::storage::{Durability, PeriodicSpec, SqliteStorage, Storage, TaskLimit};

fn open(dir: &tempfile::TempDir) -> SqliteStorage {
    SqliteStorage::open(
        dir.path().join("q.db").to_str().unwrap(),
        Durability::Normal,
    )
    .unwrap()
}

fn job(task: &str) -> NewJob {
    NewJob {
        task_name: task.into(),
        queue: "default".into(),
        payload: vec![1],
        priority: 0,
        scheduled_at: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

fn every_second(name: &str) -> PeriodicSpec {
    PeriodicSpec {
        name: name.into(),
        task_name: "tick".into(),
        cron_expr: "* * * * * *".into(),
        timezone: String::new(),
        queue: "default".into(),
        payload: vec![],
        priority: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 1000,
    }
}

fn jobs_of(s: &dyn Storage, task: &str) -> usize {
    s.list_jobs(&JobFilter {
        task_name: Some(task.into()),
        limit: 100_000,
        ..Default::default()
    })
    .unwrap()
    .len()
}

#[test]
fn racing_stores_fire_each_due_time_once() {
    let dir = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<dyn Storage>> = (0..4).map(|_| Arc::new(open(&dir)) as _).collect();
    let t0 = now_ms();
    stores[0]
        .register_periodic(&[every_second("s")], t0)
        .unwrap();
    let first_due = stores[0].list_periodic().unwrap()[0].next_run;
    // Every store fires at the same instants: 10 due times, each claimed by one store.
    let barrier = Arc::new(Barrier::new(stores.len()));
    let handles: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                let mut fired = 0;
                for k in 0..10 {
                    barrier.wait();
                    fired += s.fire_periodic(first_due + k * 1000).unwrap().0;
                }
                fired
            })
        })
        .collect();
    let fired: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(fired, 10);
    assert_eq!(jobs_of(stores[0].as_ref(), "tick"), 10);
}

#[test]
fn downtime_gives_one_catch_up_fire() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let t0 = now_ms();
    s.register_periodic(&[every_second("s")], t0).unwrap();
    let due = s.list_periodic().unwrap()[0].next_run;
    let later = due + 60_500; // 61 due times missed
    let (fired, next) = s.fire_periodic(later).unwrap();
    assert_eq!(fired, 1);
    assert_eq!(next, Some(due + 61_000));
    assert_eq!(s.fire_periodic(later).unwrap().0, 0);
    let p = &s.list_periodic().unwrap()[0];
    assert_eq!((p.last_run, p.next_run), (Some(later), due + 61_000));
}

#[test]
fn paused_schedules_do_not_fire_and_resume_without_catching_up() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.register_periodic(&[every_second("s")], now_ms()).unwrap();
    let due = s.list_periodic().unwrap()[0].next_run;
    s.set_periodic_enabled("s", false, now_ms()).unwrap();
    assert_eq!(s.fire_periodic(due + 5000).unwrap(), (0, None));
    s.set_periodic_enabled("s", true, due + 5000).unwrap();
    assert_eq!(s.list_periodic().unwrap()[0].next_run, due + 6000);
    assert!(matches!(
        s.set_periodic_enabled("nope", true, 0),
        Err(Error::NotFound { .. })
    ));
    s.delete_periodic("s").unwrap();
    assert!(s.list_periodic().unwrap().is_empty());
    assert!(matches!(
        s.delete_periodic("s"),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn a_rate_limit_spaces_claims_across_stores() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir), open(&dir));
    a.register_task_limits(
        &[TaskLimit {
            task_name: "slow".into(),
            rate: Some((2, 1000)), // one start per 500 ms
            max_concurrent: None,
        }],
        &[],
    )
    .unwrap();
    b.reload_task_limits().unwrap();
    a.enqueue(&[job("slow"), job("slow"), job("slow"), job("fast")])
        .unwrap();
    let t = now_ms();
    let first = a.claim(None, &"a".into(), 10, t).unwrap();
    let names: Vec<_> = first.iter().map(|j| j.task_name.as_str()).collect();
    assert_eq!(names, ["slow", "fast"]);
    // The other store sees the same bucket: empty until 500 ms later.
    assert!(b.claim(None, &"b".into(), 10, t + 100).unwrap().is_empty());
    assert_eq!(b.limited_ready_at(), Some(t + 500));
    assert_eq!(b.claim(None, &"b".into(), 10, t + 500).unwrap().len(), 1);
    assert!(a.claim(None, &"a".into(), 10, t + 600).unwrap().is_empty());
    assert_eq!(a.claim(None, &"a".into(), 10, t + 1000).unwrap().len(), 1);
}

#[test]
fn a_concurrency_cap_counts_running_jobs_of_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (open(&dir), open(&dir));
    let cap = TaskLimit {
        task_name: "capped".into(),
        rate: None,
        max_concurrent: Some(2),
    };
    a.register_task_limits(&[cap], &[]).unwrap();
    b.reload_task_limits().unwrap();
    a.enqueue(&[job("capped"), job("capped"), job("capped")])
        .unwrap();
    let t = now_ms();
    assert_eq!(a.claim(None, &"a".into(), 1, t).unwrap().len(), 1);
    let got = b.claim(None, &"b".into(), 10, t).unwrap();
    assert_eq!(got.len(), 1);
    assert!(a.claim(None, &"a".into(), 10, t).unwrap().is_empty());
    // One finishes: one more may start.
    b.record(
        &[_taskito::storage::Write::Complete {
            id: got[0].id.clone(),
            token: got[0].claim_token,
            thread_id: "b-1".into(),
            result: vec![],
        }],
        t,
    )
    .unwrap();
    assert_eq!(a.claim(None, &"a".into(), 10, t).unwrap().len(), 1);
    // A worker that no longer limits the task lifts the cap.
    b.register_task_limits(&[], &["capped".into()]).unwrap();
    a.reload_task_limits().unwrap();
    a.enqueue(&[job("capped")]).unwrap();
    assert_eq!(a.claim(None, &"a".into(), 10, t).unwrap().len(), 1);
}

#[test]
fn max_pending_refuses_a_batch_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    s.enqueue_bounded(&[job("t"), job("t")], 3).unwrap();
    let err = s.enqueue_bounded(&[job("t"), job("t")], 3).unwrap_err();
    assert!(matches!(err, Error::QueueFull { limit: 3, .. }), "{err}");
    assert_eq!(jobs_of(&s, "t"), 2);
    s.enqueue_bounded(&[job("t")], 3).unwrap();
    assert_eq!(jobs_of(&s, "t"), 3);
}
