//! Paused queues, seen by every handle on the store.

use super::common::*;

#[test]
fn a_paused_queue_is_not_claimable_by_any_handle() {
    each(|backend| {
        let dir = backend.db();
        let a = open(&dir);
        let b = open(&dir); // another process, as far as SQLite is concerned
        a.enqueue(&[ready("mail"), ready("mail"), ready("other")])
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
    });
}
