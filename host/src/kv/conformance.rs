//! The semantics every key-value engine must have, as tests each engine
//! runs against itself: one specification, checked on every engine.

use std::time::Duration;

use super::{KvEngine, KvError};

pub(super) fn compare_and_swap_accepts_only_the_current_version(kv: &dyn KvEngine) {
    assert_eq!(kv.compare_and_swap("a", "k", Some(1), "x".into(), None), Ok(None));
    let v1 = kv.compare_and_swap("a", "k", None, "x".into(), None).unwrap().unwrap();
    assert_eq!(kv.compare_and_swap("a", "k", None, "y".into(), None), Ok(None));
    let v2 = kv.compare_and_swap("a", "k", Some(v1), "y".into(), None).unwrap().unwrap();
    assert!(v2 > v1);
    assert_eq!(kv.compare_and_swap("a", "k", Some(v1), "z".into(), None), Ok(None));
    assert_eq!(kv.get("a", "k").unwrap().unwrap().value, "y");
}

pub(super) fn a_recreated_key_never_reuses_a_version(kv: &dyn KvEngine) {
    let v1 = kv.set("a", "k", "x".into(), None).unwrap();
    assert!(kv.delete("a", "k").unwrap());
    assert!(!kv.delete("a", "k").unwrap());
    let v2 = kv.set("a", "k", "x".into(), None).unwrap();
    assert_ne!(v1, v2);
}

pub(super) fn namespaces_are_separate(kv: &dyn KvEngine) {
    kv.set("a", "k", "1".into(), None).unwrap();
    assert_eq!(kv.get("b", "k"), Ok(None));
    assert_eq!(kv.list_by_prefix("b", "", 10), Ok(vec![]));
}

pub(super) fn ttl_hides_and_sweep_removes(kv: &dyn KvEngine) {
    kv.set("a", "k", "1".into(), Some(Duration::from_millis(1))).unwrap();
    kv.set("a", "kept", "1".into(), Some(Duration::from_secs(3600))).unwrap();
    kv.set("a", "rewritten", "1".into(), Some(Duration::from_millis(1))).unwrap();
    kv.set("a", "rewritten", "2".into(), None).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(kv.get("a", "k"), Ok(None));
    assert_eq!(kv.compare_and_swap("a", "k", None, "again".into(), Some(Duration::from_millis(1))).map(|v| v.is_some()), Ok(true));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(kv.sweep(), 1);
    assert_eq!(kv.sweep(), 0);
    assert!(kv.get("a", "kept").unwrap().is_some());
    assert_eq!(kv.get("a", "rewritten").unwrap().map(|e| e.value), Some("2".into()));
}

pub(super) fn increment_counts_from_zero_and_rejects_text(kv: &dyn KvEngine) {
    assert_eq!(kv.increment("a", "n", 5, None), Ok(5));
    assert_eq!(kv.increment("a", "n", -2, None), Ok(3));
    kv.set("a", "t", "abc".into(), None).unwrap();
    assert_eq!(kv.increment("a", "t", 1, None), Err(KvError::NotANumber));
    kv.set("a", "max", i64::MAX.to_string(), None).unwrap();
    assert!(matches!(kv.increment("a", "max", 1, None), Err(KvError::Quota(_))));
}

pub(super) fn list_by_prefix_is_ordered_limited_and_stays_in_its_namespace(kv: &dyn KvEngine) {
    for key in ["m:3", "m:1", "n:1", "m:2"] {
        kv.set("a", key, key.into(), None).unwrap();
    }
    kv.set("b", "m:0", "other app".into(), None).unwrap();
    let keys = |limit| {
        kv.list_by_prefix("a", "m:", limit)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(2), ["m:1", "m:2"]);
    assert_eq!(keys(10), ["m:1", "m:2", "m:3"]);
}
