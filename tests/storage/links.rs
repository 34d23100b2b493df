//! Links between jobs: chains that pass results, cancellation of dependents, concurrent parents.

use super::common::*;

#[test]
fn chain_runs_in_order_and_passes_results() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let ids = s
            .enqueue_linked(
                &[named("a"), named("b"), named("c")],
                &[
                    JobLinks::default(),
                    chained(vec![Dep::Batch(0)]),
                    chained(vec![Dep::Batch(1)]),
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
    });
}

#[test]
fn failed_parent_cancels_dependents_transitively() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let ids = s
            .enqueue_linked(
                &[named("a"), named("b"), named("c"), named("free")],
                &[
                    JobLinks::default(),
                    chained(vec![Dep::Batch(0)]),
                    chained(vec![Dep::Batch(1)]),
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
    });
}

#[test]
fn missing_dependency_stores_nothing() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let missing = "01234567-89ab-7cde-8f01-0000000000ff".to_string();
        let err = s
            .enqueue_linked(
                &[named("a"), named("b")],
                &[
                    JobLinks::default(),
                    chained(vec![Dep::Job(missing.clone())]),
                ],
                &[],
            )
            .unwrap_err();
        assert!(err.to_string().contains(&missing));
        assert!(s.counts().unwrap().is_empty());
    });
}

/// Two parents of one child completing at the same moment in two transactions: each sees
/// the other's completion or waits for it, so the child is released every time, once.
#[test]
fn parents_completing_at_once_release_their_child_once() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let s = Arc::new(s);
        let now = now_ms();
        for round in 0..30 {
            let ids = s
                .enqueue_linked(
                    &[job("p", 0, now), job("p", 0, now), job("c", 0, now)],
                    &[
                        JobLinks::default(),
                        JobLinks::default(),
                        after(vec![Dep::Batch(0), Dep::Batch(1)]),
                    ],
                    &[],
                )
                .unwrap();
            let parents = s
                .claim(Some(&["p".to_string()]), &"w".into(), 2, now_ms())
                .unwrap();
            assert_eq!(parents.len(), 2, "round {round}");
            assert!(s
                .claim(Some(&["c".to_string()]), &"w".into(), 1, now_ms())
                .unwrap()
                .is_empty());
            let gate = Arc::new(std::sync::Barrier::new(2));
            let handles: Vec<_> = parents
                .into_iter()
                .map(|p| {
                    let (s, gate) = (s.clone(), gate.clone());
                    thread::spawn(move || {
                        let done = Write::Complete {
                            id: p.id,
                            token: p.claim_token,
                            thread_id: "w-1".into(),
                            result: vec![7],
                        };
                        gate.wait();
                        s.record(&[done], now_ms()).unwrap()
                    })
                })
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap(), 1);
            }
            let child = s
                .claim(Some(&["c".to_string()]), &"w".into(), 5, now_ms())
                .unwrap();
            assert_eq!(child.len(), 1, "round {round}: the child was not released");
            assert_eq!(child[0].id, ids[2]);
        }
        s.close();
    });
}

/// A failure at the head of a long chain cancels every later step in the transaction that
/// records it, each naming the step before it.
#[test]
fn a_failure_cancels_a_long_chain_at_once() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let now = now_ms();
        let n = 400;
        let jobs: Vec<NewJob> = (0..n).map(|_| job("q", 0, now)).collect();
        let links: Vec<JobLinks> = (0..n)
            .map(|i| match i {
                0 => JobLinks::default(),
                _ => after(vec![Dep::Batch(i - 1)]),
            })
            .collect();
        let ids = s.enqueue_linked(&jobs, &links, &[]).unwrap();
        let head = s.claim(None, &"w".into(), 10, now_ms()).unwrap();
        assert_eq!(head.len(), 1, "only the head is claimable");
        let fail = Write::Fail {
            id: head[0].id.clone(),
            token: head[0].claim_token,
            thread_id: "w-1".into(),
            error: "boom".into(),
            traceback: String::new(),
            status: JobStatus::Failed,
            dead_metadata: None,
        };
        assert_eq!(s.record(&[fail], now_ms()).unwrap(), 1);
        for i in 1..n {
            let j = s.get_job(&ids[i]).unwrap().unwrap();
            assert_eq!(j.status, JobStatus::Cancelled, "step {i}");
            let cause = if i == 1 { "failed" } else { "cancelled" };
            let want = format!("dependency {} ended {cause}", ids[i - 1]);
            assert_eq!(j.error.as_deref(), Some(want.as_str()), "step {i}");
        }
        assert!(s.claim(None, &"w".into(), 10, now_ms()).unwrap().is_empty());
        s.close();
    });
}
