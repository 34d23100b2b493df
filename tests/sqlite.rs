//! What only the SQLite store does: the plans its claim and sweep read, files it refuses
//! untouched, the modes of the files it creates, and files written by earlier code.

use _taskito::error::Error;
use _taskito::job::{now_ms, JobStatus, NewJob, PassResult};
use _taskito::storage::{Durability, SqliteStorage, Storage, Write};

#[path = "storage/common.rs"]
mod common;

fn open(dir: &tempfile::TempDir) -> SqliteStorage {
    SqliteStorage::open(
        dir.path().join("q.db").to_str().unwrap(),
        Durability::Normal,
    )
    .unwrap()
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

/// The jobs of `tests/fixtures/main-v1.sql`, in insertion order.
const DONE: &str = "01a25333-1d8c-7630-980c-000000000001";
const DEAD: &str = "01a25333-1d8c-71ab-b418-000000000002";
const RETRYING: &str = "01a25333-1d8c-7afc-a762-000000000003";
const RUNNING: &str = "01a25333-1d8c-77eb-a263-000000000004";
const PENDING: &str = "01a25333-1d8e-7d21-a823-000000000005";
const CANCELLED: &str = "01a25333-1d8e-750b-9b3b-000000000006";
const PAUSED_QUEUE: &str = "01a25333-1d8e-7001-b194-000000000007";
const CHILD: &str = "01a25333-1d8e-7c62-9a96-000000000008";

/// A store file as the code before the storage folders wrote it, rebuilt from its dump.
fn old_store(dir: &tempfile::TempDir) -> SqliteStorage {
    let path = dir.path().join("old.db");
    let dump = include_str!("fixtures/main-v1.sql");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(dump).unwrap();
    drop(conn);
    // As taskito makes its files: one wider than `file_mode` is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap()
}

#[test]
fn a_store_written_by_earlier_code_opens_and_drains() {
    let dir = tempfile::tempdir().unwrap();
    let s = old_store(&dir);
    let status = |id: &str| s.status(id).unwrap().unwrap();
    assert_eq!(status(DONE), JobStatus::Complete);
    assert_eq!(status(DEAD), JobStatus::Dead);
    assert_eq!(status(RETRYING), JobStatus::Pending);
    assert_eq!(status(RUNNING), JobStatus::Running);
    assert_eq!(status(PENDING), JobStatus::Pending);
    assert_eq!(status(CANCELLED), JobStatus::Cancelled);
    let done = s.get_outcome(DONE).unwrap().unwrap();
    assert_eq!(done.result.as_deref(), Some(&b"result-0"[..]));
    assert_eq!(
        s.get_job(DONE).unwrap().unwrap().metadata.as_deref(),
        Some("{\"m\":1}")
    );
    let letters = s.dead_letters(10, 0).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].original_job_id, DEAD);
    assert_eq!(letters[0].error.as_deref(), Some("boom"));
    assert_eq!(s.job_errors(RETRYING).unwrap().len(), 1);
    assert_eq!(s.get_job(RETRYING).unwrap().unwrap().retry_count, 1);
    let logs = s.task_logs(DONE).unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "hello");
    let periodic = s.list_periodic().unwrap();
    assert_eq!(periodic.len(), 1);
    assert_eq!(periodic[0].name, "nightly");
    assert_eq!(s.paused_queues().unwrap(), vec!["r".to_string()]);
    assert_eq!(s.job_links(CHILD).unwrap().0, vec![PENDING.to_string()]);

    // The worker that held RUNNING is gone: recovery puts its job back.
    let beats = s.worker_beats().unwrap();
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].key.worker_id, "w-old");
    let now = _taskito::job::now_ms();
    assert_eq!(s.recover_workers(&beats, now).unwrap(), 1);
    assert_eq!(status(RUNNING), JobStatus::Pending);
    assert!(s.resume_queue("r").unwrap());

    // Drain: every job left runs once, the child after its parent, with its result.
    let mut ran = Vec::new();
    loop {
        let claimed = s.claim(None, &"w-new".into(), 10, now).unwrap();
        if claimed.is_empty() {
            break;
        }
        let mut writes = Vec::new();
        for j in &claimed {
            if j.id == CHILD {
                let parents = j
                    .parents
                    .as_ref()
                    .expect("the child gets its parent's result");
                assert_eq!(parents.mode, PassResult::First);
                assert_eq!(parents.results, vec![Some(b"out".to_vec())]);
            }
            ran.push(j.id.clone());
            writes.push(Write::Complete {
                id: j.id.clone(),
                token: j.claim_token,
                thread_id: "t".into(),
                result: b"out".to_vec(),
            });
        }
        assert_eq!(s.record(&writes, now).unwrap(), claimed.len());
    }
    ran.sort();
    let mut expected = vec![RETRYING, RUNNING, PENDING, PAUSED_QUEUE, CHILD];
    expected.sort();
    assert_eq!(ran, expected);
    for id in expected {
        assert_eq!(status(id), JobStatus::Complete, "{id}");
    }
    assert_eq!(status(DEAD), JobStatus::Dead);
    assert_eq!(status(CANCELLED), JobStatus::Cancelled);
}

#[test]
fn the_claim_uses_its_partial_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let _s = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT priority, scheduled_at, seq FROM jobs INDEXED BY jobs_ready \
             WHERE status = 0 AND queue = 'q' AND scheduled_at <= 1 \
             ORDER BY priority DESC, scheduled_at, seq LIMIT 4",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(plan.iter().any(|p| p.contains("jobs_ready")), "{plan:?}");
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
}

#[test]
fn bad_files_are_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, b"hello, this is not a database at all").unwrap();
    let err = SqliteStorage::open(foreign.to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert_eq!(
        std::fs::read(&foreign).unwrap(),
        b"hello, this is not a database at all"
    );

    let err = SqliteStorage::open(dir.path().to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("directory"), "{err}");

    let under = foreign.join("q.db");
    let err = SqliteStorage::open(under.to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    drop(open(&dir));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
}

#[test]
fn another_applications_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada');")
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("another application"), "{err}");
    assert!(err.to_string().contains("users"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    // Its own database opens again and again.
    let ours = dir.path().join("q.db");
    drop(SqliteStorage::open(ours.to_str().unwrap(), Durability::Normal).unwrap());
    assert!(SqliteStorage::open(ours.to_str().unwrap(), Durability::Normal).is_ok());
}

#[test]
fn a_new_database_file_is_private_and_an_existing_ones_mode_is_kept_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let private = dir.path().join("private.db");
    let s = SqliteStorage::open(private.to_str().unwrap(), Durability::Normal).unwrap();
    s.enqueue(&[job("a", 0, now_ms())]).unwrap();
    assert_eq!(mode(&private), 0o600);
    for suffix in ["-wal", "-shm"] {
        let side = dir.path().join(format!("private.db{suffix}"));
        assert_eq!(mode(&side), 0o600, "{suffix}");
    }
    let shared = dir.path().join("shared.db");
    drop(
        SqliteStorage::open_with_mode(shared.to_str().unwrap(), Durability::Normal, 0o660).unwrap(),
    );
    assert_eq!(mode(&shared), 0o660);
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Wider than the default 0600: refused, and left as it is.
    let err = SqliteStorage::open(shared.to_str().unwrap(), Durability::Normal)
        .err()
        .unwrap();
    assert!(err.to_string().contains("wider than file_mode"), "{err}");
    drop(
        SqliteStorage::open_with_mode(shared.to_str().unwrap(), Durability::Normal, 0o644).unwrap(),
    );
    assert_eq!(mode(&shared), 0o644);
    for bad in [0o400, 0o1600, 0o200] {
        let err = SqliteStorage::open_with_mode(
            dir.path().join("bad.db").to_str().unwrap(),
            Durability::Normal,
            bad,
        )
        .err()
        .unwrap();
        assert!(matches!(
            err,
            Error::InvalidOption {
                option: "file_mode",
                ..
            }
        ));
    }
    assert!(!dir.path().join("bad.db").exists());
}

#[test]
fn the_sweep_reads_its_partial_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let _s = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN DELETE FROM jobs WHERE result_ttl_ms IS NOT NULL \
             AND completed_at + result_ttl_ms < 1 AND +status BETWEEN 2 AND 5",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        plan.iter().any(|p| p.contains("jobs_result_expiry")),
        "{plan:?}"
    );
}

/// SQLite takes the caller's clock: these tests move time by passing a later `now` (on
/// PostgreSQL the server's clock decides, see tests/postgres.rs).
mod callers_clock {
    use super::common::*;

    #[test]
    fn claims_by_priority_then_schedule_then_insertion() {
        sqlite_only(|backend| {
            let dir = backend.db();
            let s = open(&dir);
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
            assert!(
                s.claim(None, &"w".into(), 10, now).unwrap().is_empty(),
                "future job not claimed"
            );
            let later = s.claim(None, &"w".into(), 10, now + 60_000).unwrap();
            assert_eq!(later.len(), 1);
            assert_eq!(later[0].id, ids[4]);
        });
    }

    #[test]
    fn retry_then_fail_writes_history_and_a_dead_letter() {
        sqlite_only(|backend| {
            let dir = backend.db();
            let s = open(&dir);
            let now = now_ms();
            s.enqueue(&[job("q", 0, now)]).unwrap();
            let j = s.claim(None, &"w".into(), 1, now).unwrap().remove(0);
            s.record(
                &[Write::Retry {
                    id: j.id.clone(),
                    token: j.claim_token,
                    thread_id: "w-0".into(),
                    error: "E: one".into(),
                    traceback: "tb".into(),
                    run_at: now + 1000,
                    counted: true,
                }],
                now,
            )
            .unwrap();
            let rec = s.get_job(&j.id).unwrap().unwrap();
            assert_eq!((rec.status, rec.retry_count), (JobStatus::Pending, 1));
            assert!(s.claim(None, &"w".into(), 1, now).unwrap().is_empty());
            let j = s.claim(None, &"w".into(), 1, now + 1000).unwrap().remove(0);
            assert_eq!(j.retry_count, 1);
            s.record(
                &[Write::Fail {
                    id: j.id.clone(),
                    token: j.claim_token,
                    thread_id: "w-0".into(),
                    error: "E: two".into(),
                    traceback: String::new(),
                    status: JobStatus::Dead,
                    dead_metadata: None,
                }],
                now,
            )
            .unwrap();
            let errors = s.job_errors(&j.id).unwrap();
            assert_eq!(errors.len(), 2);
            assert_eq!((errors[0].attempt, errors[1].attempt), (0, 1)); // counted from 0
            let dead = s.dead_letters(10, 0).unwrap();
            assert_eq!(dead.len(), 1);
            assert_eq!(dead[0].original_job_id, j.id);
            let again = s.retry_dead(&dead[0].id, now).unwrap();
            let rec = s.get_job(&again).unwrap().unwrap();
            assert_eq!((rec.status, rec.retry_count), (JobStatus::Pending, 0));
            assert!(s.dead_letters(10, 0).unwrap().is_empty());
            assert!(matches!(
                s.retry_dead("nope", now),
                Err(Error::NotFound { .. })
            ));
        });
    }

    #[test]
    fn a_claimed_job_not_started_reads_pending_can_be_cancelled_and_is_not_counted() {
        sqlite_only(|backend| {
            let dir = backend.db();
            let s = open(&dir);
            let now = now_ms();
            worker(&*s, "w");
            let ids = s.enqueue(&[job("q", 0, now), job("q", 0, now)]).unwrap();
            let claimed = s.claim(None, &"w".into(), 2, now).unwrap();
            let (run, ahead) = (&claimed[0], &claimed[1]);
            assert!(s.record_start(&run.id, run.claim_token, "w-0").unwrap());
            assert_eq!(s.status(&run.id).unwrap(), Some(JobStatus::Running));
            assert_eq!(s.status(&ahead.id).unwrap(), Some(JobStatus::Pending));
            assert_eq!(
                s.get_job(&ahead.id).unwrap().unwrap().status,
                JobStatus::Pending
            );
            let listed = |status| {
                let filter = JobFilter {
                    status: Some(status),
                    limit: 10,
                    ..Default::default()
                };
                let jobs = s.list_jobs(&filter).unwrap();
                jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
            };
            assert_eq!(listed(JobStatus::Running), vec![ids[0].clone()]);
            assert_eq!(listed(JobStatus::Pending), vec![ids[1].clone()]);
            let counts = s.counts().unwrap();
            assert!(
                counts.contains(&("q".into(), JobStatus::Running, 1)),
                "{counts:?}"
            );
            assert!(
                counts.contains(&("q".into(), JobStatus::Pending, 1)),
                "{counts:?}"
            );
            // Cancel takes the one not started; its start can then not be recorded.
            // Not in the claim's first moments: a worker may be taking it without a write.
            assert!(!s.cancel(&ahead.id, now).unwrap());
            let later = now + 1_000;
            assert!(!s.cancel(&run.id, later).unwrap());
            assert!(s.cancel(&ahead.id, later).unwrap());
            assert!(!s.record_start(&ahead.id, ahead.claim_token, "w-0").unwrap());
            assert_eq!(s.status(&ahead.id).unwrap(), Some(JobStatus::Cancelled));

            // A job lost with its worker before it started goes back uncounted, any number of
            // times; its next claims say it must record its start before running.
            let id = s.enqueue(&[job("r", 0, now)]).unwrap().remove(0);
            for round in 1..=8 {
                let w = format!("lost-{round}");
                worker(&*s, &w);
                let claimed = s
                    .claim(Some(&["r".into()]), &w.as_str().into(), 1, now)
                    .unwrap();
                assert_eq!(claimed.len(), 1, "round {round}");
                assert_eq!(claimed[0].eager_start, round > 1, "round {round}");
                let rows: Vec<WorkerBeat> = s
                    .worker_beats()
                    .unwrap()
                    .into_iter()
                    .filter(|b| b.key.worker_id == w)
                    .collect();
                assert_eq!(s.recover_workers(&rows, now_ms()).unwrap(), 1);
                assert_eq!(s.status(&id).unwrap(), Some(JobStatus::Pending));
            }
            let notes = s.job_errors(&id).unwrap();
            assert_eq!(notes.len(), 8);
            assert!(notes
                .iter()
                .all(|n| n.error.contains("before the job started")));
        });
    }

    #[test]
    fn a_rate_limit_spaces_claims_across_stores() {
        sqlite_only(|backend| {
            let dir = backend.db();
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
            a.enqueue(&[named("slow"), named("slow"), named("slow"), named("fast")])
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
        });
    }

    #[test]
    fn downtime_gives_one_catch_up_fire() {
        sqlite_only(|backend| {
            let dir = backend.db();
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
        });
    }

    #[test]
    fn paused_schedules_do_not_fire_and_resume_without_catching_up() {
        sqlite_only(|backend| {
            let dir = backend.db();
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
        });
    }

    #[test]
    fn racing_stores_fire_each_due_time_once() {
        sqlite_only(|backend| {
            let dir = backend.db();
            let stores: Vec<Arc<dyn Storage>> = (0..4).map(|_| open(&dir)).collect();
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
        });
    }

    #[test]
    fn finished_jobs_go_once_their_own_ttl_runs_out() {
        sqlite_only(|backend| {
            let db = backend.db();
            let s = open(&db);
            let ids = s
                .enqueue(&[with_ttl(Some(1_000)), with_ttl(None), with_ttl(Some(0))])
                .unwrap();
            let now = now_ms();
            let claimed = s.claim(None, &"w".into(), 2, now).unwrap();
            let done: Vec<Write> = claimed
                .iter()
                .map(|c| Write::Complete {
                    id: c.id.clone(),
                    token: c.claim_token,
                    thread_id: "w-0".into(),
                    result: b"r".to_vec(),
                })
                .collect();
            assert_eq!(s.record(&done, now).unwrap(), 2);
            let completed_at = s.get_job(&ids[0]).unwrap().unwrap().completed_at.unwrap();

            assert_eq!(s.expire_results(completed_at + 500).unwrap(), 0);
            assert_eq!(s.expire_results(completed_at + 1_001).unwrap(), 1);
            assert!(s.get_job(&ids[0]).unwrap().is_none());
            // No TTL: the queue's retention decides. Not finished: kept whatever its TTL.
            assert!(s.get_job(&ids[1]).unwrap().is_some());
            assert!(s.get_job(&ids[2]).unwrap().is_some());
            assert_eq!(s.expire_results(i64::MAX / 2).unwrap(), 0);
        });
    }
}
