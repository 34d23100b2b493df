//! What only the SQLite store does: files written by earlier code stay readable.

use _taskito::job::{JobStatus, PassResult};
use _taskito::storage::{Durability, SqliteStorage, Storage, Write};

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
