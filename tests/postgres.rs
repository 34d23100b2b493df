//! What only the PostgreSQL store does, against the server named by `TASKITO_TEST_PG_URL`
//! (see tests/pg_server.sh; without it these tests are skipped, and under `CI` they fail).
//! The server's clock decides what is ready, due or live whatever the callers' clocks say;
//! calls from inside a Tokio runtime work. The behaviour both stores share is the contract
//! suite in tests/storage/.

use std::sync::Arc;

use _taskito::job::{now_ms, JobStatus, NewJob};
use _taskito::storage::{PeriodicSpec, PgOptions, PgStorage, Storage, Write};

#[path = "storage/common.rs"]
mod common;

fn open() -> Option<PgStorage> {
    open_in(&format!("rt_{:016x}", fastrand::u64(..)))
}

/// A store on `schema`: a second one on the same schema stands for another process.
fn open_in(schema: &str) -> Option<PgStorage> {
    let Ok(url) = std::env::var("TASKITO_TEST_PG_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but TASKITO_TEST_PG_URL is not: these tests must run in CI"
        );
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

/// The server's clock decides on PostgreSQL: stored wall times of skewed callers say nothing
/// about liveness, and the cancel window runs on the server (SQLite takes the caller's
/// clock, see tests/sqlite.rs).
mod servers_clock {
    use super::common::*;

    #[test]
    fn a_claimed_job_not_started_reads_pending_can_be_cancelled_and_is_not_counted() {
        postgres_only(|backend| {
            let db = backend.db();
            let s = open(&db);
            let now = now_ms();
            let w = WorkerKey::new("w", 1);
            register(&*s, &w, now);
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
                register(&*s, &lost, now);
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
        });
    }

    #[test]
    fn liveness_counts_beats_and_recovery_is_fenced_by_them() {
        postgres_only(|backend| {
            let db = backend.db();
            let s = open(&db);
            let now = now_ms();
            let minute = 60_000;
            // A worker whose clock is a minute behind registers, heartbeats and claims: the stored
            // wall times say nothing about liveness, the counter does.
            let slow = WorkerKey::new("slow-clock", 7);
            register(&*s, &slow, now - minute);
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
        });
    }
}
