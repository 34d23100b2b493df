//! The worker registry: heartbeat counters, recovery of the jobs of workers that stopped, restarts under one id, the crash-loop limit.

use super::common::*;

#[test]
fn stale_workers_jobs_are_put_back() {
    each(|backend| {
        let dir = backend.db();
        let s = open(&dir);
        let now = now_ms();
        worker(&*s, "alive");
        worker(&*s, "gone");
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
    });
}

#[test]
fn a_job_that_keeps_losing_its_worker_is_dead_lettered() {
    each(|backend| {
        let dir = backend.db();
        let s = open(&dir);
        let now = now_ms();
        let id = s.enqueue(&[job("q", 0, now)]).unwrap().remove(0);
        for round in 1..=6 {
            let w = format!("crashy-{round}");
            worker(&*s, &w);
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
    });
}

#[test]
fn a_restart_under_the_same_id_keeps_its_own_claims_apart() {
    each(|backend| {
        let db = backend.db();
        let s = open(&db);
        let now = now_ms();
        let old = WorkerKey::new("fixed-id", 1);
        let new = WorkerKey::new("fixed-id", 2);
        register(&*s, &old, now);
        s.enqueue(&[job("q", 0, now), job("q", 0, now)]).unwrap();
        let lost = s.claim(None, &old, 1, now).unwrap();
        register(&*s, &new, now);
        let mine = s.claim(None, &new, 1, now).unwrap();
        assert!(s
            .record_start(&mine[0].id, mine[0].claim_token, "t")
            .unwrap());
        assert_eq!(s.workers().unwrap().len(), 2);
        let dead: Vec<_> = s
            .worker_beats()
            .unwrap()
            .into_iter()
            .filter(|b| b.key == old)
            .collect();
        assert_eq!(s.recover_workers(&dead, now).unwrap(), 1);
        assert_eq!(s.status(&lost[0].id).unwrap(), Some(JobStatus::Pending));
        assert_eq!(s.status(&mine[0].id).unwrap(), Some(JobStatus::Running));
        // A clean stop, then a third run: the stopped row is gone, the dead one stays.
        s.deregister_worker(&new, now).unwrap();
        register(&*s, &WorkerKey::new("fixed-id", 3), now);
        let rows = s.workers().unwrap();
        let mut seen: Vec<(i64, String)> = rows
            .into_iter()
            .map(|w| (w.incarnation, w.status))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            vec![(1, "dead".to_string()), (3, "active".to_string())]
        );
        s.close();
    });
}
