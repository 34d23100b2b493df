//! The SQLite store without Python: enqueue, claim order and exclusivity, fencing, retries,
//! dead letters, recovery of stale workers, migrations and bad files.

use std::sync::Arc;
use std::thread;

use _taskito::error::Error;
use _taskito::job::{now_ms, JobFilter, JobStatus, NewJob, WorkerBeat, WorkerInfo, WorkerKey};
use _taskito::storage::{Durability, SqliteStorage, Storage, TaskFilter, Write};

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

fn worker(s: &dyn Storage, id: &str) {
    let now = now_ms();
    s.register_worker(&WorkerInfo {
        worker_id: id.into(),
        incarnation: 0,
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
    let dir = tempfile::tempdir().unwrap();
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
}

#[test]
fn claims_only_the_named_queues() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    s.enqueue(&[job("a", 0, now), job("b", 1, now), job("c", 2, now)])
        .unwrap();
    let queues = vec!["a".to_string(), "c".to_string()];
    let claimed = s.claim(Some(&queues), &"w".into(), 10, now).unwrap();
    let got: Vec<&str> = claimed.iter().map(|j| j.queue.as_str()).collect();
    assert_eq!(got, vec!["c", "a"]);
}

#[test]
fn filtered_claims_take_only_the_allowed_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    let named = |task: &str, priority| NewJob {
        task_name: task.into(),
        ..job("a", priority, now)
    };
    s.enqueue(&[
        named("sync", 9),
        named("aio", 1),
        named("aio2", 5),
        named("sync", 0),
    ])
    .unwrap();
    let async_names = vec!["aio".to_string(), "aio2".to_string()];
    let only = s
        .claim_filtered(None, &"w".into(), 10, now, TaskFilter::Only(&async_names))
        .unwrap();
    let got: Vec<&str> = only.iter().map(|j| j.task_name.as_str()).collect();
    assert_eq!(got, vec!["aio2", "aio"], "by priority, async tasks only");
    let except = s
        .claim_filtered(None, &"w".into(), 1, now, TaskFilter::Except(&async_names))
        .unwrap();
    assert_eq!(except.len(), 1);
    assert_eq!(except[0].task_name, "sync");
    let rest = s
        .claim_filtered(None, &"w".into(), 10, now, TaskFilter::Except(&async_names))
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert!(s.claim(None, &"w".into(), 10, now).unwrap().is_empty());
}

#[test]
fn concurrent_claims_hand_out_each_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(open(&dir));
    let now = now_ms();
    let jobs: Vec<NewJob> = (0..2000).map(|_| job("q", 0, now)).collect();
    s.enqueue(&jobs).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            // Separate stores: separate connections, as separate processes would have.
            let store = open(&dir);
            thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let got = store
                        .claim(
                            None,
                            &WorkerKey::from(format!("w{i}").as_str()),
                            7,
                            now_ms(),
                        )
                        .unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|j| j.id));
                }
            })
        })
        .collect();
    let mut all: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, 2000);
    assert_eq!(all.len(), 2000);
}

#[test]
fn writes_are_fenced_by_the_claim_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    s.enqueue(&[job("q", 0, now)]).unwrap();
    let first = s.claim(None, &"w1".into(), 1, now).unwrap().remove(0);
    // The claim is lost (put back), then claimed again by someone else.
    s.record(
        &[Write::Requeue {
            id: first.id.clone(),
            token: first.claim_token,
        }],
        now,
    )
    .unwrap();
    let second = s.claim(None, &"w2".into(), 1, now).unwrap().remove(0);
    assert_eq!(first.id, second.id);
    assert_ne!(first.claim_token, second.claim_token);
    let late = Write::Complete {
        id: first.id.clone(),
        token: first.claim_token,
        thread_id: "w1-0".into(),
        result: b"late".to_vec(),
    };
    assert_eq!(s.record(&[late], now).unwrap(), 0, "late result discarded");
    let on_time = Write::Complete {
        id: second.id.clone(),
        token: second.claim_token,
        thread_id: "w2-0".into(),
        result: b"ok".to_vec(),
    };
    assert_eq!(s.record(std::slice::from_ref(&on_time), now).unwrap(), 1);
    assert_eq!(
        s.record(&[on_time], now).unwrap(),
        0,
        "never complete twice"
    );
    let o = s.get_outcome(&first.id).unwrap().unwrap();
    assert_eq!(o.status, JobStatus::Complete);
    assert_eq!(o.result.unwrap(), b"ok");
    assert_eq!(
        s.get_job(&first.id).unwrap().unwrap().worker_id.as_deref(),
        Some("w2-0")
    );
}

#[test]
fn retry_then_fail_writes_history_and_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
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
}

#[test]
fn stale_workers_jobs_are_put_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    worker(&s, "alive");
    worker(&s, "gone");
    s.enqueue(&[job("q", 0, now), job("q", 0, now)]).unwrap();
    let a = s.claim(None, &"alive".into(), 1, now).unwrap().remove(0);
    let g = s.claim(None, &"gone".into(), 1, now).unwrap().remove(0);
    for started in [&a, &g] {
        assert!(s
            .record_start(&started.id, started.claim_token, "t")
            .unwrap());
    }
    // Judged dead on the counters read now; "alive" beats meanwhile, so a verdict on it
    // read before that beat is fenced off.
    let seen = s.worker_beats().unwrap();
    s.heartbeat(&"alive".into(), "active", now + 20_000)
        .unwrap();
    assert_eq!(s.recover_workers(&seen, now + 20_000).unwrap(), 1);
    assert_eq!(
        s.get_job(&g.id).unwrap().unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(
        s.get_job(&a.id).unwrap().unwrap().status,
        JobStatus::Running
    );
    let note = &s.job_errors(&g.id).unwrap()[0].error;
    assert!(note.contains("gone"), "{note}");
    let statuses: Vec<(String, String)> = s
        .workers()
        .unwrap()
        .into_iter()
        .map(|w| (w.worker_id, w.status))
        .collect();
    assert!(statuses.contains(&("gone".into(), "dead".into())));
    assert!(statuses.contains(&("alive".into(), "active".into())));
}

#[test]
fn unique_key_returns_the_live_job() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    let mut j = job("q", 0, now);
    j.unique_key = Some("k".into());
    let a = s.enqueue(std::slice::from_ref(&j)).unwrap();
    let b = s.enqueue(std::slice::from_ref(&j)).unwrap();
    assert_eq!(a, b);
    assert!(s.cancel(&a[0], now).unwrap());
    let c = s.enqueue(&[j]).unwrap();
    assert_ne!(a, c);
}

#[test]
fn list_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    s.enqueue(&[job("a", 0, now), job("b", 0, now), job("b", 0, now)])
        .unwrap();
    let mut counts = s.counts().unwrap();
    counts.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        counts,
        vec![
            ("a".into(), JobStatus::Pending, 1),
            ("b".into(), JobStatus::Pending, 2)
        ]
    );
    let filter = JobFilter {
        queue: Some("b".into()),
        limit: 1,
        ..Default::default()
    };
    assert_eq!(s.list_jobs(&filter).unwrap().len(), 1);
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
fn a_job_that_keeps_losing_its_worker_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    let id = s.enqueue(&[job("q", 0, now)]).unwrap().remove(0);
    for round in 1..=6 {
        let w = format!("crashy-{round}");
        worker(&s, &w);
        let claimed = s.claim(None, &WorkerKey::from(w.as_str()), 1, now).unwrap();
        assert_eq!(claimed.len(), 1, "round {round}: the job is back");
        // It starts (only a run that started counts against the limit).
        assert!(s
            .record_start(&id, claimed[0].claim_token, &format!("{w}-0"))
            .unwrap());
        // The worker dies: an observer presumes it dead.
        let rows: Vec<WorkerBeat> = s.worker_beats().unwrap();
        assert_eq!(s.recover_workers(&rows, now_ms()).unwrap(), 1);
    }
    let rec = s.get_job(&id).unwrap().unwrap();
    assert_eq!(rec.status, JobStatus::Dead);
    assert!(rec.error.unwrap().contains("6 times"));
    assert_eq!(s.job_errors(&id).unwrap().len(), 6);
    let dead = s.dead_letters(10, 0).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].original_job_id, id);
}

#[test]
fn a_claimed_job_not_started_reads_pending_can_be_cancelled_and_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let now = now_ms();
    worker(&s, "w");
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
        worker(&s, &w);
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
}

#[cfg(unix)]
#[test]
fn a_new_database_file_is_private_and_an_existing_ones_mode_is_kept() {
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
    drop(SqliteStorage::open(shared.to_str().unwrap(), Durability::Normal).unwrap());
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
