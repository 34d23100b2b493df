//! The shared settings store: versioned rows every handle on the store sees, written by
//! compare-and-set.

use super::common::*;

#[test]
fn settings_are_shared_and_written_by_compare_and_set() {
    each(|backend| {
        let dir = backend.db();
        let a = open(&dir);
        let b = open(&dir); // another process, as far as SQLite is concerned
                            // Before any write the table may not exist: reads see nothing.
        assert_eq!(a.setting_get("breaker:x").unwrap(), None);
        assert!(a.settings_list("").unwrap().is_empty());
        assert!(!a.setting_delete("breaker:x").unwrap());
        assert_eq!(a.setting_put("breaker:x", "one", Some(0)).unwrap(), Some(1));
        assert_eq!(b.setting_put("breaker:x", "two", Some(0)).unwrap(), None);
        assert_eq!(
            b.setting_get("breaker:x").unwrap(),
            Some(("one".to_string(), 1))
        );
        // A stale version loses; the current one wins and bumps it.
        assert_eq!(b.setting_put("breaker:x", "two", Some(7)).unwrap(), None);
        assert_eq!(b.setting_put("breaker:x", "two", Some(1)).unwrap(), Some(2));
        assert_eq!(a.setting_put("breaker:x", "three", None).unwrap(), Some(3));
        assert_eq!(a.setting_put("budget:y", "b", None).unwrap(), Some(1));
        assert_eq!(
            b.settings_list("breaker:").unwrap(),
            vec![("breaker:x".to_string(), "three".to_string(), 3)]
        );
        assert_eq!(b.settings_list("").unwrap().len(), 2);
        assert!(b.setting_delete("breaker:x").unwrap());
        assert_eq!(a.setting_get("breaker:x").unwrap(), None);
    });
}
