//! Keyset pages: newest first, no row repeated or skipped.

use super::common::*;

#[test]
fn pages_walk_newest_first_without_repeats() {
    each(|backend| {
        let dir = backend.db();
        let s = open(&dir);
        let ids = s.enqueue(&vec![ready("q"); 25]).unwrap();
        let filter = JobFilter::default();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.list_jobs_after(&filter, after.as_deref(), 10).unwrap();
            seen.extend(page.items.iter().map(|j| j.id.clone()));
            s.enqueue(&[ready("q")]).unwrap(); // newer rows never shift the walk
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
    });
}
