//! The hot path: claim order, queue and task filters, exclusivity across handles, fenced writes, retries, dead letters, unique keys.

use super::common::*;

#[test]
fn claims_only_the_named_queues() {
    each(|backend| {
        let dir = backend.db();
        let s = open(&dir);
        let now = now_ms();
        s.enqueue(&[job("a", 0, now), job("b", 1, now), job("c", 2, now)])
            .unwrap();
        let queues = vec!["a".to_string(), "c".to_string()];
        let claimed = s.claim(Some(&queues), &"w".into(), 10, now).unwrap();
        let got: Vec<&str> = claimed.iter().map(|j| j.queue.as_str()).collect();
        assert_eq!(got, vec!["c", "a"]);
    });
}

#[test]
fn filtered_claims_take_only_the_allowed_tasks() {
    each(|backend| {
        let dir = backend.db();
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
    });
}

#[test]
fn concurrent_claims_hand_out_each_job_once() {
    each(|backend| {
        let dir = backend.db();
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
    });
}

#[test]
fn writes_are_fenced_by_the_claim_token() {
    each(|backend| {
        let dir = backend.db();
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
    });
}

#[test]
fn unique_key_returns_the_live_job() {
    each(|backend| {
        let dir = backend.db();
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
    });
}

#[test]
fn claims_by_priority_then_schedule_then_insertion() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
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
    });
}

#[test]
fn a_filtered_claim_takes_only_the_task_names_it_allows() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
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
    });
}

#[test]
fn concurrent_claimers_take_each_job_once() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
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
    });
}

#[test]
fn a_put_off_run_uses_no_retry_and_a_rule_sets_the_dead_letters_metadata() {
    each(|backend| {
        let s = open(&backend.db());
        let now = now_ms();
        s.enqueue(&[job("q", 0, now)]).unwrap();
        let j = s.claim(None, &"w".into(), 1, now).unwrap().remove(0);
        let put_off = Write::Retry {
            id: j.id.clone(),
            token: j.claim_token,
            thread_id: "w-0".into(),
            error: "CircuitBreakerOpenError: open".into(),
            traceback: String::new(),
            run_at: now,
            counted: false,
        };
        s.record(&[put_off], now).unwrap();
        let rec = s.get_job(&j.id).unwrap().unwrap();
        assert_eq!((rec.status, rec.retry_count), (JobStatus::Pending, 0));
        assert!(s.job_errors(&j.id).unwrap().is_empty());
        let j = s.claim(None, &"w".into(), 1, now_ms()).unwrap().remove(0);
        let dead = Write::Fail {
            id: j.id.clone(),
            token: j.claim_token,
            thread_id: "w-0".into(),
            error: "ValueError: bad".into(),
            traceback: String::new(),
            status: JobStatus::Dead,
            dead_metadata: Some("{\"reason\": \"dont_retry_on\"}".into()),
        };
        assert_eq!(s.record(&[dead], now_ms()).unwrap(), 1);
        let letters = s.dead_letters(10, 0).unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(
            letters[0].metadata.as_deref(),
            Some("{\"reason\": \"dont_retry_on\"}")
        );
        assert_eq!(s.job_errors(&j.id).unwrap().len(), 1);
    });
}
