//! Flow control: rate limits and concurrency caps shared by several handles, and bounded queues.

use super::common::*;

#[test]
fn pending_caps_hold() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let now = now_ms();
        s.enqueue_bounded(&[job("q", 0, now), job("q", 0, now)], 2)
            .unwrap();
        let full = s.enqueue_bounded(&[job("q", 0, now)], 2).unwrap_err();
        assert!(matches!(full, Error::QueueFull { limit: 2, .. }), "{full}");
        let stored: i64 = s.counts().unwrap().iter().map(|c| c.2).sum();
        assert_eq!(stored, 2, "the refused enqueue stored nothing");
        s.close();
    });
}

#[test]
fn a_rate_limit_spaces_claims_across_stores() {
    each(|backend| {
        let db = backend.db();
        let (a, b) = (open(&db), open(&db));
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
        let mut starts: Vec<i64> = ids.iter().map(|id| started_at(&*a, id)).collect();
        starts.sort_unstable();
        assert!(starts.windows(2).all(|w| w[1] - w[0] >= 500), "{starts:?}");
        a.close();
        b.close();
    });
}

#[test]
fn a_concurrency_cap_holds_across_racing_stores() {
    each(|backend| {
        let db = backend.db();
        let first = open(&db);
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
                let (db, barrier) = (db.clone(), barrier.clone());
                thread::spawn(move || {
                    let s = open(&db);
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
    });
}

#[test]
fn a_limited_claim_merges_queues_by_priority() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
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
    });
}

#[test]
fn a_concurrency_cap_counts_running_jobs_of_every_store() {
    each(|backend| {
        let dir = backend.db();
        let (a, b) = (open(&dir), open(&dir));
        let cap = TaskLimit {
            task_name: "capped".into(),
            rate: None,
            max_concurrent: Some(2),
        };
        a.register_task_limits(&[cap], &[]).unwrap();
        b.reload_task_limits().unwrap();
        a.enqueue(&[named("capped"), named("capped"), named("capped")])
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
        a.enqueue(&[named("capped")]).unwrap();
        assert_eq!(a.claim(None, &"a".into(), 10, t).unwrap().len(), 1);
    });
}

#[test]
fn max_pending_refuses_a_batch_atomically() {
    each(|backend| {
        let dir = backend.db();
        let s = open(&dir);
        s.enqueue_bounded(&[named("t"), named("t")], 3).unwrap();
        let err = s.enqueue_bounded(&[named("t"), named("t")], 3).unwrap_err();
        assert!(matches!(err, Error::QueueFull { limit: 3, .. }), "{err}");
        assert_eq!(jobs_of(&*s, "t"), 2);
        s.enqueue_bounded(&[named("t")], 3).unwrap();
        assert_eq!(jobs_of(&*s, "t"), 3);
    });
}
