//! Reading jobs back: listings, counts, and how a claimed job not yet started reads and cancels.

use super::common::*;

#[test]
fn list_and_count() {
    each(|backend| {
        let dir = backend.db();
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
    });
}
