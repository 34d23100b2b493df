//! Dependencies in the store, without Python: a waiting job is never claimed, completing
//! the last parent makes it claimable, a failed parent cancels its dependents transitively.

use _taskito::job::{now_ms, Dep, JobLinks, JobStatus, NewJob, PassResult, WorkerKey};
use _taskito::storage::{Durability, SqliteStorage, Storage, Write};

fn job(name: &str) -> NewJob {
    NewJob {
        task_name: name.into(),
        queue: "default".into(),
        payload: vec![1],
        priority: 0,
        scheduled_at: 0,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 60_000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

fn after(deps: Vec<Dep>) -> JobLinks {
    JobLinks {
        depends_on: deps,
        pass_result: PassResult::First,
        ..JobLinks::default()
    }
}

fn open() -> (tempfile::TempDir, SqliteStorage) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let s = SqliteStorage::open(path.to_str().unwrap(), Durability::Normal).unwrap();
    (dir, s)
}

#[test]
fn chain_runs_in_order_and_passes_results() {
    let (_dir, s) = open();
    let ids = s
        .enqueue_linked(
            &[job("a"), job("b"), job("c")],
            &[
                JobLinks::default(),
                after(vec![Dep::Batch(0)]),
                after(vec![Dep::Batch(1)]),
            ],
            &[],
        )
        .unwrap();
    for (step, id) in ids.iter().enumerate() {
        let claimed = s.claim(None, &WorkerKey::from("w"), 10, now_ms()).unwrap();
        assert_eq!(claimed.len(), 1, "only the next step is claimable");
        assert_eq!(&claimed[0].id, id);
        if step == 0 {
            assert!(claimed[0].parents.is_none());
        } else {
            let parents = claimed[0].parents.as_ref().unwrap();
            assert_eq!(parents.mode, PassResult::First);
            assert_eq!(parents.results, vec![Some(vec![step as u8])]);
        }
        let write = Write::Complete {
            id: id.clone(),
            token: claimed[0].claim_token,
            thread_id: "w-1".into(),
            result: vec![step as u8 + 1],
        };
        assert_eq!(s.record(&[write], now_ms()).unwrap(), 1);
    }
    assert!(s
        .claim(None, &WorkerKey::from("w"), 10, now_ms())
        .unwrap()
        .is_empty());
}

#[test]
fn failed_parent_cancels_dependents_transitively() {
    let (_dir, s) = open();
    let ids = s
        .enqueue_linked(
            &[job("a"), job("b"), job("c"), job("free")],
            &[
                JobLinks::default(),
                after(vec![Dep::Batch(0)]),
                after(vec![Dep::Batch(1)]),
                JobLinks::default(),
            ],
            &[],
        )
        .unwrap();
    let claimed = s.claim(None, &WorkerKey::from("w"), 1, now_ms()).unwrap();
    assert_eq!(claimed[0].id, ids[0]);
    let write = Write::Fail {
        id: ids[0].clone(),
        token: claimed[0].claim_token,
        thread_id: "w-1".into(),
        error: "boom".into(),
        traceback: String::new(),
        status: JobStatus::Dead,
        dead_metadata: None,
    };
    s.record(&[write], now_ms()).unwrap();
    assert_eq!(s.status(&ids[1]).unwrap(), Some(JobStatus::Cancelled));
    assert_eq!(s.status(&ids[2]).unwrap(), Some(JobStatus::Cancelled));
    let (deps, dependents) = s.job_links(&ids[1]).unwrap();
    assert_eq!(deps, vec![ids[0].clone()]);
    assert_eq!(dependents, vec![ids[2].clone()]);
    let rest = s.claim(None, &WorkerKey::from("w"), 10, now_ms()).unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, ids[3]);
}

#[test]
fn missing_dependency_stores_nothing() {
    let (_dir, s) = open();
    let missing = "01234567-89ab-7cde-8f01-0000000000ff".to_string();
    let err = s
        .enqueue_linked(
            &[job("a"), job("b")],
            &[JobLinks::default(), after(vec![Dep::Job(missing.clone())])],
            &[],
        )
        .unwrap_err();
    assert!(err.to_string().contains(&missing));
    assert!(s.counts().unwrap().is_empty());
}
