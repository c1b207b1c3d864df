//! The semantics every key-value engine must have, as tests each engine
//! runs against itself: one specification, checked on every engine.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{Kv, KvEngine, KvError, Quota, Usage};

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

pub(super) fn increment_reads_an_integer_as_rust_parses_it(kv: &dyn KvEngine) {
    let cases = [
        (" 7 ", Ok(8)),
        ("+7", Ok(8)),
        ("007", Ok(8)),
        ("-0", Ok(1)),
        ("-8", Ok(-7)),
        ("\u{a0}7\u{3000}", Ok(8)),
        ("\u{2003}\u{85}7\u{2029}", Ok(8)),
        ("\t7\n", Ok(8)),
        ("-9223372036854775808", Ok(i64::MIN + 1)),
        ("9223372036854775808", Err(KvError::NotANumber)),
        ("7.0", Err(KvError::NotANumber)),
        ("", Err(KvError::NotANumber)),
        ("-", Err(KvError::NotANumber)),
        ("+-7", Err(KvError::NotANumber)),
        ("7 7", Err(KvError::NotANumber)),
        ("\u{663}", Err(KvError::NotANumber)),
    ];
    for (stored, sum) in cases {
        kv.set("a", "n", stored.into(), None).unwrap();
        assert_eq!(kv.increment("a", "n", 1, None), sum, "{stored:?} + 1");
    }
    assert_eq!(kv.increment("a", "fresh", i64::MIN, None), Ok(i64::MIN));
    assert!(matches!(kv.increment("a", "fresh", -1, None), Err(KvError::Quota(_))));
    assert_eq!(kv.get("a", "fresh").unwrap().map(|e| e.value), Some(i64::MIN.to_string()), "a refused sum changes nothing");
}

pub(super) fn a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once(kv: &dyn KvEngine) {
    kv.set("a", "zero", "1".into(), Some(Duration::ZERO)).unwrap();
    assert_eq!(kv.get("a", "zero"), Ok(None));
    kv.set("a", "n", "1".into(), None).unwrap();
    assert_eq!(kv.increment("a", "n", 1, Some(Duration::from_millis(1))), Ok(2));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(kv.get("a", "n"), Ok(None), "increment's ttl applies");
    assert_eq!(kv.increment("a", "n", 1, None), Ok(1), "an expired key counts as absent");
    assert!(!kv.delete("a", "zero").unwrap(), "an expired key is not deleted: it was not there");
}

pub(super) fn usage_counts_the_live_keys_and_their_bytes(kv: &dyn KvEngine) {
    assert_eq!(kv.usage("a"), Ok(Usage::default()));
    kv.set("a", "k1", "abc".into(), None).unwrap();
    kv.set("a", "k2", "x".into(), Some(Duration::from_millis(1))).unwrap();
    kv.set("a", "k1", "abcdef".into(), None).unwrap();
    kv.set("b", "other", "app".into(), None).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(kv.usage("a"), Ok(Usage { keys: 1, bytes: 8 }));
    kv.increment("a", "n", 42, None).unwrap();
    assert_eq!(kv.usage("a"), Ok(Usage { keys: 2, bytes: 11 }));
    assert!(kv.delete("a", "k1").unwrap());
    assert!(kv.delete("a", "n").unwrap());
    assert_eq!(kv.usage("a"), Ok(Usage::default()));
    assert_eq!(kv.usage("b"), Ok(Usage { keys: 1, bytes: 8 }));
}

/// Which clock [`usage_matches_a_recount_after_any_mix_of_writes`] runs on.
pub(super) enum Time {
    /// The engine's own (Redis reads its server's): ttls are either past at
    /// once or an hour away.
    Real,
    /// A virtual clock on the test's thread, one millisecond a step, for
    /// the engines that read [`crate::clock`]: keys also expire a few steps
    /// after they are written, so rewritten and deleted keys' old expiries
    /// come due while the test runs.
    Stepped,
}

/// After any mix of writes (keys written with and without a ttl, rewritten
/// with another one, expiring, deleted, incremented, swapped), the engine
/// holds what a plain model of those writes holds, and a namespace's usage
/// is what its live keys add up to. Engines that keep counts and expiry
/// indexes as they write, rather than scan when asked, must keep them exact
/// through all of it.
pub(super) fn usage_matches_a_recount_after_any_mix_of_writes(kv: &dyn KvEngine, time: Time) {
    let clock = Rc::new(SteppedClock(Cell::new(0)));
    let _installed = matches!(time, Time::Stepped).then(|| crate::clock::use_on_this_thread(clock.clone()));
    // (namespace, key) → (value, expires at on the stepped clock).
    let mut model: BTreeMap<(&str, String), (String, Option<u64>)> = BTreeMap::new();
    // A fixed sequence of pseudo-random choices (a linear congruential
    // generator), so a failure is the same on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |below: u64| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % below
    };
    for step in 0..600 {
        let now = clock.0.get() + 1;
        clock.0.set(now);
        model.retain(|_, (_, expires_at)| expires_at.is_none_or(|at| at > now));
        let ns = if next(4) == 0 { "b" } else { "a" };
        let key = format!("k{}", next(8));
        // No ttl, one that has passed already (a zero ttl), an hour, or
        // (on the stepped clock) a few steps.
        let ttl = match (next(4), &time) {
            (0, _) => None,
            (1, _) => Some(Duration::ZERO),
            (2, Time::Stepped) => Some(Duration::from_millis(1 + next(6))),
            _ => Some(Duration::from_secs(3600)),
        };
        let expires_at = ttl.map(|ttl| now + ttl.as_millis() as u64);
        let mut value = "7".repeat(1 + next(12) as usize);
        let op = next(5);
        match op {
            0 | 1 => {
                kv.set(ns, &key, value.clone(), ttl).unwrap();
            }
            2 => {
                kv.delete(ns, &key).unwrap();
            }
            3 => {
                // Every value is digits, so an increment always applies.
                let delta = 1 + next(1000) as i64;
                let before = model.get(&(ns, key.clone())).map_or(0, |(value, _)| value.parse::<i64>().unwrap());
                assert_eq!(kv.increment(ns, &key, delta, ttl), Ok(before + delta));
                value = (before + delta).to_string();
            }
            _ => {
                let version = kv.get(ns, &key).unwrap().map(|entry| entry.version);
                assert!(kv.compare_and_swap(ns, &key, version, value.clone(), ttl).unwrap().is_some());
            }
        }
        if op == 2 || expires_at.is_some_and(|at| at <= now) {
            model.remove(&(ns, key.clone()));
        } else {
            model.insert((ns, key.clone()), (value, expires_at));
        }
        // Every few steps, nothing is asked, so that keys come due unread.
        if next(3) == 0 {
            continue;
        }
        for ns in ["a", "b"] {
            let held = held(kv, ns);
            let modelled: Vec<(String, String)> = model
                .iter()
                .filter(|((n, _), _)| *n == ns)
                .map(|((_, key), (value, _))| (key.clone(), value.clone()))
                .collect();
            assert_eq!(held, modelled, "namespace {ns} after step {step} (operation {op} on {key})");
            assert_eq!(kv.usage(ns).unwrap(), usage_of(&held), "usage of {ns} after step {step} (operation {op} on {key})");
        }
    }
    // A sweep removes what expired, and the counts stay right.
    clock.0.set(clock.0.get() + 10);
    kv.sweep();
    for ns in ["a", "b"] {
        assert_eq!(kv.usage(ns).unwrap(), usage_of(&held(kv, ns)), "usage of {ns} after the sweep");
    }
}

/// The live keys of a namespace and their values, in key order.
fn held(kv: &dyn KvEngine, ns: &str) -> Vec<(String, String)> {
    kv.list_by_prefix(ns, "", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(key, entry)| (key, entry.value))
        .collect()
}

/// What `keys` with their values count against a quota.
fn usage_of(keys: &[(String, String)]) -> Usage {
    Usage {
        keys: keys.len() as u64,
        bytes: keys.iter().map(|(key, value)| (key.len() + value.len()) as u64).sum(),
    }
}

/// A clock that moves only when told, in milliseconds.
struct SteppedClock(Cell<u64>);

impl crate::clock::TimeSource for SteppedClock {
    fn unix_ms(&self) -> u64 {
        1_800_000_000_000 + self.0.get()
    }

    fn monotonic_ns(&self) -> u64 {
        self.0.get() * 1_000_000
    }
}

pub(super) fn quotas_refuse_writes_past_the_limits_of_each_namespace(engine: Arc<dyn KvEngine>) {
    let quota = Quota {
        max_keys: 2,
        max_bytes: 20,
    };
    let a = Kv::new(engine.clone(), "a").with_quota(quota);
    let b = Kv::new(engine, "b").with_quota(quota);
    a.set("k1", "1".into(), None).unwrap();
    a.set("k2", "2".into(), None).unwrap();
    assert!(matches!(a.set("k3", "3".into(), None), Err(KvError::Quota(why)) if why.contains("max_kv_keys")));
    assert!(matches!(a.increment("k3", 1, None), Err(KvError::Quota(_))));
    b.set("k3", "3".into(), None).expect("another namespace has its own quota");
    a.set("k1", "rewritten".into(), None).expect("overwriting adds no key");
    assert!(matches!(
        a.compare_and_swap("k2", None, "x".repeat(20), None),
        Err(KvError::Quota(why)) if why.contains("max_kv_bytes")
    ));
    assert!(a.delete("k2").unwrap());
    a.set("k3", "3".into(), None).expect("a deleted key makes room");
    a.set("k4", "4".into(), Some(Duration::from_millis(1))).unwrap_err();
    assert!(a.delete("k3").unwrap());
    a.set("k4", "4".into(), Some(Duration::from_millis(1))).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    a.set("k5", "5".into(), None).expect("an expired key makes room");
}

pub(super) fn list_by_prefix_takes_the_prefix_literally_in_byte_order(kv: &dyn KvEngine) {
    let keys = ["x\u{10FFFF}", "+x", "-x", "[x", "(x", "x", "é", "xa"];
    for key in keys {
        kv.set("a", key, "v".into(), None).unwrap();
    }
    let listed = |prefix, limit| {
        kv.list_by_prefix("a", prefix, limit)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>()
    };
    assert_eq!(listed("[", 10), ["[x"]);
    assert_eq!(listed("(", 10), ["(x"]);
    assert_eq!(listed("-", 10), ["-x"]);
    assert_eq!(listed("x", 10), ["x", "xa", "x\u{10FFFF}"]);
    assert_eq!(listed("", 10), ["(x", "+x", "-x", "[x", "x", "xa", "x\u{10FFFF}", "é"]);
    assert_eq!(listed("", 0), Vec::<String>::new());
}
