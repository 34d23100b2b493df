//! The PostgreSQL store without Python, against the server named by `TASKITO_TEST_PG_URL`
//! (see tests/pg_server.sh; without it these tests print why and pass vacuously). Each test
//! uses a schema of its own. Covers claim order, exclusivity across threads, server-clock
//! time under skewed callers, heartbeat counters and fenced recovery, restarts under one
//! worker id, filtered claims, rate limits and concurrency caps shared by several stores,
//! calls made from inside a Tokio runtime, and the release and cascade of dependent jobs
//! under concurrent completions.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use _taskito::error::Error;
use _taskito::job::{now_ms, Dep, JobLinks, JobStatus, NewJob, WorkerInfo, WorkerKey};
use _taskito::storage::{
    PeriodicSpec, PgOptions, PgStorage, Storage, TaskFilter, TaskLimit, Write,
};

fn open() -> Option<PgStorage> {
    open_in(&format!("rt_{:016x}", fastrand::u64(..)))
}

/// A store on `schema`: a second one on the same schema stands for another process.
fn open_in(schema: &str) -> Option<PgStorage> {
    let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
        eprintln!(
            "skipped: no PostgreSQL server (set TASKITO_TEST_PG_URL, see tests/pg_server.sh)"
        );
        return None;
    };
    Some(
        PgStorage::open(&PgOptions {
            url,
            schema: schema.to_string(),
            pool_size: Some(4),
            notify: true,
        })
        .unwrap(),
    )
}

fn job(queue: &str, priority: i64, scheduled_at: i64) -> NewJob {
    NewJob {
        task_name: "t".into(),
        queue: queue.into(),
        payload: vec![1, 2, 3],
        priority,
        scheduled_at,
        max_retries: 3,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

fn register(s: &dyn Storage, key: &WorkerKey, now: i64) {
    s.register_worker(&WorkerInfo {
        worker_id: key.worker_id.clone(),
        incarnation: key.incarnation,
        hostname: "h".into(),
        pid: 1,
        queues: "*".into(),
        started_at: now,
        last_heartbeat: now,
        status: "active".into(),
    })
    .unwrap();
}

#[test]
fn claims_by_priority_then_schedule_then_insertion() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let ids = s
        .enqueue(&[
            job("a", 0, now),
            job("a", 5, now),
            job("b", 5, now - 10),
            job("a", 0, now - 5),
            job("a", 9, now + 60_000),
        ])
        .unwrap();
    let claimed = s.claim(None, &"w".into(), 10, now).unwrap();
    let order: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(order, vec![&ids[2], &ids[1], &ids[3], &ids[0]]);
    assert!(s.claim(None, &"w".into(), 10, now).unwrap().is_empty());
    s.close();
}

#[test]
fn a_caller_whose_clock_runs_ahead_never_runs_a_job_early() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let hour = 3_600_000;
    // Enqueued for 30 s from now; a host whose clock is an hour ahead asks for ready work.
    let id = s.enqueue(&[job("q", 0, now + 30_000)]).unwrap().remove(0);
    assert!(s
        .claim(None, &"ahead".into(), 10, now + hour)
        .unwrap()
        .is_empty());
    // A retry written by a host an hour behind, due "now" on its clock, is ready now.
    let ready = s.enqueue(&[job("q", 0, now)]).unwrap().remove(0);
    let c = s.claim(None, &"behind".into(), 10, now - hour).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].id, ready);
    s.record(
        &[Write::Retry {
            id: ready.clone(),
            token: c[0].claim_token,
            thread_id: "behind-1".into(),
            error: "boom".into(),
            traceback: String::new(),
            run_at: now - hour,
            counted: true,
        }],
        now - hour,
    )
    .unwrap();
    let again = s.claim(None, &"w".into(), 10, now).unwrap();
    assert_eq!(again.len(), 1, "retry due now by the server's clock");
    assert_eq!(again[0].id, ready);
    assert_eq!(s.status(&id).unwrap(), Some(JobStatus::Pending));
    s.close();
}

#[test]
fn liveness_counts_beats_and_recovery_is_fenced_by_them() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let minute = 60_000;
    // A worker whose clock is a minute behind registers, heartbeats and claims: the stored
    // wall times say nothing about liveness, the counter does.
    let slow = WorkerKey::new("slow-clock", 7);
    register(&s, &slow, now - minute);
    s.heartbeat(&slow, "active", now - minute).unwrap();
    s.enqueue(&[job("q", 0, now)]).unwrap();
    let c = s.claim(None, &slow, 10, now - minute).unwrap();
    assert_eq!(c.len(), 1);
    assert!(s.record_start(&c[0].id, c[0].claim_token, "t").unwrap());
    let seen = s.worker_beats().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].key, slow);
    assert_eq!(seen[0].beats, 1);
    // Nothing judged dead: nothing put back.
    assert_eq!(s.recover_workers(&[], now + minute).unwrap(), 0);
    assert_eq!(s.status(&c[0].id).unwrap(), Some(JobStatus::Running));
    // It beats after an observer read its counter: that verdict is stale and changes nothing.
    s.heartbeat(&slow, "unhealthy", now).unwrap();
    assert_eq!(s.recover_workers(&seen, now).unwrap(), 0);
    assert_eq!(s.status(&c[0].id).unwrap(), Some(JobStatus::Running));
    assert_eq!(s.workers().unwrap()[0].status, "unhealthy");
    // Judged on its current counter, it is dead and its job goes back.
    let seen = s.worker_beats().unwrap();
    assert_eq!(seen[0].beats, 2);
    assert_eq!(s.recover_workers(&seen, now).unwrap(), 1);
    assert_eq!(s.status(&c[0].id).unwrap(), Some(JobStatus::Pending));
    assert!(s.worker_beats().unwrap().is_empty());
    // A dead row that beats again is live again.
    s.heartbeat(&slow, "active", now).unwrap();
    assert_eq!(s.worker_beats().unwrap().len(), 1);
    s.close();
}

#[test]
fn a_restart_under_the_same_id_keeps_its_own_claims_apart() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let old = WorkerKey::new("fixed-id", 1);
    let new = WorkerKey::new("fixed-id", 2);
    register(&s, &old, now);
    s.enqueue(&[job("q", 0, now), job("q", 0, now)]).unwrap();
    let lost = s.claim(None, &old, 1, now).unwrap();
    register(&s, &new, now);
    let mine = s.claim(None, &new, 1, now).unwrap();
    assert!(s
        .record_start(&mine[0].id, mine[0].claim_token, "t")
        .unwrap());
    assert_eq!(s.workers().unwrap().len(), 2);
    let dead: Vec<_> = s
        .worker_beats()
        .unwrap()
        .into_iter()
        .filter(|b| b.key == old)
        .collect();
    assert_eq!(s.recover_workers(&dead, now).unwrap(), 1);
    assert_eq!(s.status(&lost[0].id).unwrap(), Some(JobStatus::Pending));
    assert_eq!(s.status(&mine[0].id).unwrap(), Some(JobStatus::Running));
    // A clean stop, then a third run: the stopped row is gone, the dead one stays.
    s.deregister_worker(&new, now).unwrap();
    register(&s, &WorkerKey::new("fixed-id", 3), now);
    let rows = s.workers().unwrap();
    let mut seen: Vec<(i64, String)> = rows
        .into_iter()
        .map(|w| (w.incarnation, w.status))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![(1, "dead".to_string()), (3, "active".to_string())]
    );
    s.close();
}

#[test]
fn a_filtered_claim_takes_only_the_task_names_it_allows() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let mut a = job("q", 0, now);
    a.task_name = "async_one".into();
    let b = job("q", 0, now);
    let ids = s.enqueue(&[a, b]).unwrap();
    let names = vec!["async_one".to_string()];
    let w: WorkerKey = "w".into();
    let other = s
        .claim_filtered(None, &w, 10, now, TaskFilter::Except(&names))
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].id, ids[1]);
    let only = s
        .claim_filtered(None, &w, 10, now, TaskFilter::Only(&names))
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].id, ids[0]);
    assert!(s
        .claim_filtered(None, &w, 10, now, TaskFilter::Only(&names))
        .unwrap()
        .is_empty());
    s.close();
}

#[test]
fn concurrent_claimers_take_each_job_once() {
    let Some(s) = open() else { return };
    let s = Arc::new(s);
    let now = now_ms();
    let jobs: Vec<NewJob> = (0..2000).map(|i| job("q", i % 3, now)).collect();
    let ids: HashSet<String> = s.enqueue(&jobs).unwrap().into_iter().collect();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let batch = s
                        .claim(None, &WorkerKey::new(format!("w{t}"), 1), 37, now_ms())
                        .unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    let writes: Vec<Write> = batch
                        .iter()
                        .map(|j| Write::Complete {
                            id: j.id.clone(),
                            token: j.claim_token,
                            thread_id: format!("w{t}-1"),
                            result: vec![],
                        })
                        .collect();
                    assert_eq!(s.record(&writes, now_ms()).unwrap(), batch.len());
                    got.extend(batch.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    assert_eq!(all.len(), ids.len());
    assert_eq!(all.into_iter().collect::<HashSet<_>>(), ids);
    s.close();
}

#[test]
fn calls_from_inside_a_tokio_runtime_do_not_panic() {
    let Some(s) = open() else { return };
    let s = Arc::new(s);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let inner = s.clone();
    let claimed = rt.block_on(async move {
        inner.enqueue(&[job("q", 0, now_ms())]).unwrap();
        let c = inner.claim(None, &"w".into(), 5, now_ms()).unwrap();
        inner.close();
        c
    });
    assert_eq!(claimed.len(), 1);
    drop(rt);
}

#[test]
fn a_host_whose_clock_runs_ahead_never_fires_a_schedule_early() {
    let Some(s) = open() else { return };
    let spec = PeriodicSpec {
        name: "minutely".into(),
        task_name: "t".into(),
        cron_expr: "0 * * * * *".into(),
        timezone: String::new(),
        queue: "q".into(),
        payload: vec![],
        priority: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 1_000,
    };
    s.register_periodic(&[spec], now_ms()).unwrap();
    let due = s.list_periodic().unwrap()[0].next_run;
    // Two minutes ahead on the caller's clock: by the server's, nothing is due yet.
    let (fired, next) = s.fire_periodic(now_ms() + 120_000).unwrap();
    assert!(fired == 0 || now_ms() >= due, "fired {fired} before {due}");
    if fired == 0 {
        assert_eq!(next, Some(due));
        assert_eq!(s.counts().unwrap().len(), 0);
    }
    s.close();
}

#[test]
fn pending_caps_hold() {
    let Some(s) = open() else { return };
    let now = now_ms();
    s.enqueue_bounded(&[job("q", 0, now), job("q", 0, now)], 2)
        .unwrap();
    let full = s.enqueue_bounded(&[job("q", 0, now)], 2).unwrap_err();
    assert!(matches!(full, Error::QueueFull { limit: 2, .. }), "{full}");
    let stored: i64 = s.counts().unwrap().iter().map(|c| c.2).sum();
    assert_eq!(stored, 2, "the refused enqueue stored nothing");
    s.close();
}

fn task_job(task: &str) -> NewJob {
    NewJob {
        task_name: task.into(),
        ..job("q", 0, 0)
    }
}

fn started_at(s: &dyn Storage, id: &str) -> i64 {
    s.get_job(id).unwrap().unwrap().started_at.unwrap()
}

#[test]
fn a_rate_limit_spaces_claims_across_stores() {
    let schema = format!("rt_{:016x}", fastrand::u64(..));
    let (Some(a), Some(b)) = (open_in(&schema), open_in(&schema)) else {
        return;
    };
    let limit = TaskLimit {
        task_name: "slow".into(),
        rate: Some((2, 1000)), // one start per 500 ms
        max_concurrent: None,
    };
    a.register_task_limits(&[limit], &[]).unwrap();
    b.reload_task_limits().unwrap();
    a.enqueue(&[
        task_job("slow"),
        task_job("slow"),
        task_job("slow"),
        task_job("fast"),
    ])
    .unwrap();
    let (ka, kb) = (WorkerKey::new("a", 1), WorkerKey::new("b", 1));
    let t = now_ms();
    let first = a.claim(None, &ka, 10, t).unwrap();
    let names: Vec<_> = first.iter().map(|j| j.task_name.as_str()).collect();
    assert_eq!(names, ["slow", "fast"]);
    // The other store shares the bucket: nothing until the next token, and it knows when.
    let second = b.claim(None, &kb, 10, now_ms()).unwrap();
    if now_ms() - t < 400 {
        assert!(second.is_empty(), "a second start within the period");
        let at = b.limited_ready_at().expect("a wake-up for the next token");
        assert!(at > now_ms() && at <= t + 600, "{at} vs {t}");
    }
    let mut ids = vec![first[0].id.clone()];
    ids.extend(second.into_iter().map(|j| j.id));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ids.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the limited jobs never started"
        );
        let wait = b
            .limited_ready_at()
            .map_or(10, |at| (at - now_ms()).clamp(0, 600));
        thread::sleep(std::time::Duration::from_millis(wait as u64));
        let store = if ids.len() % 2 == 0 { &a } else { &b };
        let key = if ids.len() % 2 == 0 { &ka } else { &kb };
        ids.extend(
            store
                .claim(None, key, 10, now_ms())
                .unwrap()
                .into_iter()
                .map(|j| j.id),
        );
    }
    // Starts by the server's clock: spaced by the rate whichever store made them.
    let mut starts: Vec<i64> = ids.iter().map(|id| started_at(&a, id)).collect();
    starts.sort_unstable();
    assert!(starts.windows(2).all(|w| w[1] - w[0] >= 500), "{starts:?}");
    a.close();
    b.close();
}

#[test]
fn a_concurrency_cap_holds_across_racing_stores() {
    let schema = format!("rt_{:016x}", fastrand::u64(..));
    let Some(first) = open_in(&schema) else {
        return;
    };
    let cap = TaskLimit {
        task_name: "capped".into(),
        rate: None,
        max_concurrent: Some(3),
    };
    first.register_task_limits(&[cap], &[]).unwrap();
    let jobs: Vec<NewJob> = (0..40)
        .map(|i| task_job(if i % 2 == 0 { "capped" } else { "free" }))
        .collect();
    first.enqueue(&jobs).unwrap();
    // Six stores (six processes) claim at once, a few jobs each, without finishing any.
    let barrier = Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let (schema, barrier) = (schema.clone(), barrier.clone());
            thread::spawn(move || {
                let s = open_in(&schema).unwrap();
                let key = WorkerKey::new(format!("w{t}"), 1);
                barrier.wait();
                let mut got = Vec::new();
                for _ in 0..5 {
                    got.extend(s.claim(None, &key, 2, now_ms()).unwrap());
                }
                s.close();
                got
            })
        })
        .collect();
    let mut claimed: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // Racing claims may step over rows another one held: one more store takes the rest.
    let key = WorkerKey::new("again", 1);
    loop {
        let more = first.claim(None, &key, 10, now_ms()).unwrap();
        if more.is_empty() {
            break;
        }
        claimed.extend(more);
    }
    let capped: Vec<_> = claimed.iter().filter(|j| j.task_name == "capped").collect();
    assert_eq!(capped.len(), 3, "the cap, and no more, across every store");
    assert_eq!(
        claimed.len() - capped.len(),
        20,
        "the unlimited task is not held back"
    );
    // One finishes: exactly one more may start; a worker that drops the limit lifts it.
    let done = Write::Complete {
        id: capped[0].id.clone(),
        token: capped[0].claim_token,
        thread_id: "w-1".into(),
        result: vec![],
    };
    assert_eq!(first.record(&[done], now_ms()).unwrap(), 1);
    assert_eq!(first.claim(None, &key, 10, now_ms()).unwrap().len(), 1);
    assert!(first.claim(None, &key, 10, now_ms()).unwrap().is_empty());
    first
        .register_task_limits(&[], &["capped".to_string()])
        .unwrap();
    assert_eq!(first.claim(None, &key, 50, now_ms()).unwrap().len(), 16);
    first.close();
}

#[test]
fn a_limited_claim_merges_queues_by_priority() {
    let Some(s) = open() else { return };
    let cap = TaskLimit {
        task_name: "capped".into(),
        rate: None,
        max_concurrent: Some(5),
    };
    s.register_task_limits(&[cap], &[]).unwrap();
    let at = |queue: &str, task: &str, priority: i64| NewJob {
        task_name: task.into(),
        ..job(queue, priority, 0)
    };
    s.enqueue(&[at("q", "free", 0), at("q", "free", 0), at("q", "capped", 0)])
        .unwrap();
    s.enqueue(&[at("r", "capped", 5), at("r", "free", 9)])
        .unwrap();
    // Every queue is read before the merge: the best two are both in the second queue.
    let got = s.claim(None, &WorkerKey::new("w", 1), 2, now_ms()).unwrap();
    let seen: Vec<_> = got
        .iter()
        .map(|j| (j.queue.as_str(), j.task_name.as_str()))
        .collect();
    assert_eq!(seen, [("r", "free"), ("r", "capped")]);
    s.close();
}

#[test]
fn a_claimed_job_not_started_reads_pending_can_be_cancelled_and_is_not_counted() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let w = WorkerKey::new("w", 1);
    register(&s, &w, now);
    s.enqueue(&[job("q", 0, now), job("q", 0, now)]).unwrap();
    let claimed = s.claim(None, &w, 2, now).unwrap();
    let (run, ahead) = (&claimed[0], &claimed[1]);
    assert!(s.record_start(&run.id, run.claim_token, "w-0").unwrap());
    assert_eq!(s.status(&run.id).unwrap(), Some(JobStatus::Running));
    assert_eq!(s.status(&ahead.id).unwrap(), Some(JobStatus::Pending));
    let counts = s.counts().unwrap();
    assert!(
        counts.contains(&("q".into(), JobStatus::Running, 1)),
        "{counts:?}"
    );
    assert!(
        counts.contains(&("q".into(), JobStatus::Pending, 1)),
        "{counts:?}"
    );
    // Not in the claim's first moments (server clock): a worker may be taking it unseen.
    assert!(!s.cancel(&ahead.id, now).unwrap());
    thread::sleep(std::time::Duration::from_millis(300));
    assert!(!s.cancel(&run.id, now).unwrap());
    assert!(s.cancel(&ahead.id, now).unwrap());
    assert!(!s.record_start(&ahead.id, ahead.claim_token, "w-0").unwrap());
    assert_eq!(s.status(&ahead.id).unwrap(), Some(JobStatus::Cancelled));

    // Lost with its worker before it started: back uncounted, then claimed as eager.
    let id = s.enqueue(&[job("r", 0, now)]).unwrap().remove(0);
    for round in 1..=7 {
        let lost = WorkerKey::new(format!("lost-{round}"), 1);
        register(&s, &lost, now);
        let c = s.claim(Some(&["r".into()]), &lost, 1, now).unwrap();
        assert_eq!(c.len(), 1, "round {round}");
        assert_eq!(c[0].eager_start, round > 1, "round {round}");
        let dead: Vec<_> = s
            .worker_beats()
            .unwrap()
            .into_iter()
            .filter(|b| b.key == lost)
            .collect();
        assert_eq!(s.recover_workers(&dead, now).unwrap(), 1);
        assert_eq!(s.status(&id).unwrap(), Some(JobStatus::Pending));
    }
    s.close();
}
fn after(deps: Vec<Dep>) -> JobLinks {
    JobLinks {
        depends_on: deps,
        ..JobLinks::default()
    }
}

/// Two parents of one child completing at the same moment in two transactions: each sees
/// the other's completion or waits for it, so the child is released every time, once.
#[test]
fn parents_completing_at_once_release_their_child_once() {
    let Some(s) = open() else { return };
    let s = Arc::new(s);
    let now = now_ms();
    for round in 0..30 {
        let ids = s
            .enqueue_linked(
                &[job("p", 0, now), job("p", 0, now), job("c", 0, now)],
                &[
                    JobLinks::default(),
                    JobLinks::default(),
                    after(vec![Dep::Batch(0), Dep::Batch(1)]),
                ],
                &[],
            )
            .unwrap();
        let parents = s
            .claim(Some(&["p".to_string()]), &"w".into(), 2, now_ms())
            .unwrap();
        assert_eq!(parents.len(), 2, "round {round}");
        assert!(s
            .claim(Some(&["c".to_string()]), &"w".into(), 1, now_ms())
            .unwrap()
            .is_empty());
        let gate = Arc::new(std::sync::Barrier::new(2));
        let handles: Vec<_> = parents
            .into_iter()
            .map(|p| {
                let (s, gate) = (s.clone(), gate.clone());
                thread::spawn(move || {
                    let done = Write::Complete {
                        id: p.id,
                        token: p.claim_token,
                        thread_id: "w-1".into(),
                        result: vec![7],
                    };
                    gate.wait();
                    s.record(&[done], now_ms()).unwrap()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 1);
        }
        let child = s
            .claim(Some(&["c".to_string()]), &"w".into(), 5, now_ms())
            .unwrap();
        assert_eq!(child.len(), 1, "round {round}: the child was not released");
        assert_eq!(child[0].id, ids[2]);
    }
    s.close();
}

/// A failure at the head of a long chain cancels every later step in the transaction that
/// records it, each naming the step before it.
#[test]
fn a_failure_cancels_a_long_chain_at_once() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let n = 400;
    let jobs: Vec<NewJob> = (0..n).map(|_| job("q", 0, now)).collect();
    let links: Vec<JobLinks> = (0..n)
        .map(|i| match i {
            0 => JobLinks::default(),
            _ => after(vec![Dep::Batch(i - 1)]),
        })
        .collect();
    let ids = s.enqueue_linked(&jobs, &links, &[]).unwrap();
    let head = s.claim(None, &"w".into(), 10, now_ms()).unwrap();
    assert_eq!(head.len(), 1, "only the head is claimable");
    let fail = Write::Fail {
        id: head[0].id.clone(),
        token: head[0].claim_token,
        thread_id: "w-1".into(),
        error: "boom".into(),
        traceback: String::new(),
        status: JobStatus::Failed,
        dead_metadata: None,
    };
    assert_eq!(s.record(&[fail], now_ms()).unwrap(), 1);
    for i in 1..n {
        let j = s.get_job(&ids[i]).unwrap().unwrap();
        assert_eq!(j.status, JobStatus::Cancelled, "step {i}");
        let cause = if i == 1 { "failed" } else { "cancelled" };
        let want = format!("dependency {} ended {cause}", ids[i - 1]);
        assert_eq!(j.error.as_deref(), Some(want.as_str()), "step {i}");
    }
    assert!(s.claim(None, &"w".into(), 10, now_ms()).unwrap().is_empty());
    s.close();
}
