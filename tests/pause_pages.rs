//! Paused queues and keyset pages of the SQLite store, without Python.

use _taskito::job::{now_ms, JobFilter, JobStatus, NewJob};
use _taskito::storage::{Durability, SqliteStorage, Storage};

fn open(dir: &tempfile::TempDir) -> SqliteStorage {
    SqliteStorage::open(
        dir.path().join("q.db").to_str().unwrap(),
        Durability::Normal,
    )
    .unwrap()
}

fn job(queue: &str) -> NewJob {
    NewJob {
        task_name: "t".into(),
        queue: queue.into(),
        payload: vec![7],
        priority: 0,
        scheduled_at: now_ms() - 1,
        max_retries: 0,
        retry_backoff: 1.0,
        timeout_ms: 1000,
        unique_key: None,
        result_ttl_ms: None,
        metadata: None,
    }
}

#[test]
fn a_paused_queue_is_not_claimable_by_any_handle() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(&dir);
    let b = open(&dir); // another process, as far as SQLite is concerned
    a.enqueue(&[job("mail"), job("mail"), job("other")])
        .unwrap();
    assert!(a.pause_queue("mail", now_ms()).unwrap());
    assert!(!a.pause_queue("mail", now_ms()).unwrap());
    assert_eq!(b.paused_queues().unwrap(), vec!["mail".to_string()]);
    let all = b.claim(None, &"w".into(), 10, now_ms()).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].queue, "other");
    let named = b
        .claim(Some(&["mail".to_string()]), &"w".into(), 10, now_ms())
        .unwrap();
    assert!(named.is_empty());
    assert!(b.resume_queue("mail").unwrap());
    assert!(!b.resume_queue("mail").unwrap());
    assert_eq!(a.claim(None, &"w".into(), 10, now_ms()).unwrap().len(), 2);
}

#[test]
fn pages_walk_newest_first_without_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(&dir);
    let ids = s.enqueue(&vec![job("q"); 25]).unwrap();
    let filter = JobFilter::default();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = s.list_jobs_after(&filter, after.as_deref(), 10).unwrap();
        seen.extend(page.items.iter().map(|j| j.id.clone()));
        s.enqueue(&[job("q")]).unwrap(); // newer rows never shift the walk
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let pending = JobFilter {
        status: Some(JobStatus::Pending),
        queue: Some("q".into()),
        ..JobFilter::default()
    };
    assert_eq!(s.list_jobs_after(&pending, None, 5).unwrap().items.len(), 5);
    assert!(s.list_jobs_after(&filter, Some("zz"), 5).is_err());
    assert!(s.list_jobs_after(&filter, None, -1).is_err());
    assert!(s.dead_letters_after(None, 5).unwrap().items.is_empty());
    assert_eq!(s.job_payload(&ids[0]).unwrap(), Some(vec![7]));
}
