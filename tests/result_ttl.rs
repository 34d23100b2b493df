//! Per-job result TTL in the SQLite store: `expire_results` deletes a finished job once its
//! own TTL has run out since its completion, leaves every other job alone, and reads the
//! partial index of jobs that have a TTL.

use _taskito::job::{now_ms, NewJob};
use _taskito::storage::{Durability, SqliteStorage, Storage, Write};

fn job(result_ttl_ms: Option<i64>) -> NewJob {
    NewJob {
        task_name: "t".into(),
        queue: "q".into(),
        payload: vec![1],
        priority: 0,
        scheduled_at: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 300_000,
        unique_key: None,
        metadata: None,
        result_ttl_ms,
    }
}

#[test]
fn finished_jobs_go_once_their_own_ttl_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let s = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap();
    let ids = s
        .enqueue(&[job(Some(1_000)), job(None), job(Some(0))])
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
