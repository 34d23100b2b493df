//! The PostgreSQL store without Python, against the server named by `TASKITO_TEST_PG_URL`
//! (see tests/pg_server.sh; without it these tests print why and pass vacuously). Each test
//! uses a schema of its own. Covers claim order, exclusivity across threads, server-clock
//! time under skewed callers, and calls made from inside a Tokio runtime.

use std::collections::HashSet;
use std::sync::Arc;
use std::thread;

use _taskito::job::{now_ms, JobStatus, NewJob, WorkerInfo};
use _taskito::storage::{PgOptions, PgStorage, Storage, Write};

fn open() -> Option<PgStorage> {
    let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
        eprintln!(
            "skipped: no PostgreSQL server (set TASKITO_TEST_PG_URL, see tests/pg_server.sh)"
        );
        return None;
    };
    let schema = format!("rt_{:016x}", fastrand::u64(..));
    Some(
        PgStorage::open(&PgOptions {
            url,
            schema,
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
        metadata: None,
    }
}

fn register(s: &dyn Storage, id: &str, now: i64) {
    s.register_worker(&WorkerInfo {
        worker_id: id.into(),
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
    let claimed = s.claim(None, "w", 10, now).unwrap();
    let order: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(order, vec![&ids[2], &ids[1], &ids[3], &ids[0]]);
    assert!(s.claim(None, "w", 10, now).unwrap().is_empty());
    s.close();
}

#[test]
fn a_caller_whose_clock_runs_ahead_never_runs_a_job_early() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let hour = 3_600_000;
    // Enqueued for 30 s from now; a host whose clock is an hour ahead asks for ready work.
    let id = s.enqueue(&[job("q", 0, now + 30_000)]).unwrap().remove(0);
    assert!(s.claim(None, "ahead", 10, now + hour).unwrap().is_empty());
    // A retry written by a host an hour behind, due "now" on its clock, is ready now.
    let ready = s.enqueue(&[job("q", 0, now)]).unwrap().remove(0);
    let c = s.claim(None, "behind", 10, now - hour).unwrap();
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
        }],
        now - hour,
    )
    .unwrap();
    let again = s.claim(None, "w", 10, now).unwrap();
    assert_eq!(again.len(), 1, "retry due now by the server's clock");
    assert_eq!(again[0].id, ready);
    assert_eq!(s.status(&id).unwrap(), Some(JobStatus::Pending));
    s.close();
}

#[test]
fn skewed_hosts_neither_look_dead_nor_declare_live_ones_dead() {
    let Some(s) = open() else { return };
    let now = now_ms();
    let minute = 60_000;
    // A worker whose clock is a minute behind registers, heartbeats and claims.
    register(&s, "slow-clock", now - minute);
    s.heartbeat("slow-clock", now - minute).unwrap();
    s.enqueue(&[job("q", 0, now)]).unwrap();
    let c = s.claim(None, "slow-clock", 10, now - minute).unwrap();
    assert_eq!(c.len(), 1);
    // A host a minute ahead looks for workers silent for 10 s: there are none.
    let ahead = now + minute;
    assert_eq!(s.recover_stale(ahead - 10_000, ahead).unwrap(), 0);
    assert_eq!(s.status(&c[0].id).unwrap(), Some(JobStatus::Running));
    // A worker that really went silent is recovered, whatever the caller's clock.
    assert_eq!(s.recover_stale(ahead, ahead).unwrap(), 1);
    assert_eq!(s.status(&c[0].id).unwrap(), Some(JobStatus::Pending));
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
                    let batch = s.claim(None, &format!("w{t}"), 37, now_ms()).unwrap();
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
        let c = inner.claim(None, "w", 5, now_ms()).unwrap();
        inner.close();
        c
    });
    assert_eq!(claimed.len(), 1);
    drop(rt);
}
