//! The in-memory engine: a sorted map per namespace behind one lock.
//!
//! Expired keys are invisible at once and removed lazily, when touched, and
//! by [`MemoryEngine::sweep`], which the server runs periodically.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::monotonic_ms;

use parking_lot::Mutex;

use super::{Entry, KvEngine, KvError};

struct Stored {
    value: String,
    version: u64,
    /// When the key expires, in milliseconds on the host's monotonic clock
    /// (so a test harness's virtual clock moves expiry too).
    expires_at: Option<u64>,
}

impl Stored {
    fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[derive(Default)]
pub struct MemoryEngine {
    namespaces: Mutex<HashMap<String, BTreeMap<String, Stored>>>,
    versions: AtomicU64,
}

impl MemoryEngine {
    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn with_ns<R>(&self, ns: &str, f: impl FnOnce(&mut BTreeMap<String, Stored>) -> R) -> R {
        let mut namespaces = self.namespaces.lock();
        if let Some(map) = namespaces.get_mut(ns) {
            return f(map);
        }
        f(namespaces.entry(ns.to_owned()).or_default())
    }

    fn write(
        &self,
        map: &mut BTreeMap<String, Stored>,
        key: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> u64 {
        let version = self.next_version();
        let stored = Stored {
            value,
            version,
            expires_at: ttl.map(|ttl| monotonic_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))),
        };
        match map.get_mut(key) {
            Some(slot) => *slot = stored,
            None => {
                map.insert(key.to_owned(), stored);
            }
        }
        version
    }

    /// Drop every expired key. Returns how many were removed.
    fn sweep_expired(&self) -> usize {
        let now = monotonic_ms();
        let mut removed = 0;
        for map in self.namespaces.lock().values_mut() {
            let before = map.len();
            map.retain(|_, stored| stored.live(now));
            removed += before - map.len();
        }
        removed
    }
}

fn current<'m>(map: &'m BTreeMap<String, Stored>, key: &str, now: u64) -> Option<&'m Stored> {
    map.get(key).filter(|stored| stored.live(now))
}

impl KvEngine for MemoryEngine {
    fn sweep(&self) -> usize {
        self.sweep_expired()
    }

    fn usage(&self, ns: &str) -> Result<super::Usage, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |map| {
            map.iter()
                .filter(|(_, stored)| stored.live(now))
                .fold(super::Usage::default(), |usage, (key, stored)| super::Usage {
                    keys: usage.keys + 1,
                    bytes: usage.bytes + (key.len() + stored.value.len()) as u64,
                })
        }))
    }

    fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |map| {
            current(map, key, now).map(|stored| Entry {
                value: stored.value.clone(),
                version: stored.version,
            })
        }))
    }

    fn set(
        &self,
        ns: &str,
        key: &str,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<u64, KvError> {
        Ok(self.with_ns(ns, |map| self.write(map, key, value, ttl)))
    }

    fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |map| {
            map.remove(key).is_some_and(|stored| stored.live(now))
        }))
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |map| {
            let version = current(map, key, now).map(|stored| stored.version);
            (version == expected).then(|| self.write(map, key, value, ttl))
        }))
    }

    fn increment(
        &self,
        ns: &str,
        key: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64, KvError> {
        let now = monotonic_ms();
        self.with_ns(ns, |map| {
            let sum = super::incremented(current(map, key, now).map(|stored| stored.value.as_str()), delta)?;
            self.write(map, key, sum.to_string(), ttl);
            Ok(sum)
        })
    }

    fn list_by_prefix(
        &self,
        ns: &str,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(String, Entry)>, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |map| {
            map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .filter(|(_, stored)| stored.live(now))
                .take(limit)
                .map(|(key, stored)| {
                    (
                        key.clone(),
                        Entry {
                            value: stored.value.clone(),
                            version: stored.version,
                        },
                    )
                })
                .collect()
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::conformance;

    #[test]
    fn compare_and_swap_accepts_only_the_current_version() {
        conformance::compare_and_swap_accepts_only_the_current_version(&MemoryEngine::default());
    }

    #[test]
    fn a_recreated_key_never_reuses_a_version() {
        conformance::a_recreated_key_never_reuses_a_version(&MemoryEngine::default());
    }

    #[test]
    fn namespaces_are_separate() {
        conformance::namespaces_are_separate(&MemoryEngine::default());
    }

    #[test]
    fn ttl_hides_and_sweep_removes() {
        conformance::ttl_hides_and_sweep_removes(&MemoryEngine::default());
    }

    #[test]
    fn increment_counts_from_zero_and_rejects_text() {
        conformance::increment_counts_from_zero_and_rejects_text(&MemoryEngine::default());
    }

    #[test]
    fn list_by_prefix_is_ordered_limited_and_stays_in_its_namespace() {
        conformance::list_by_prefix_is_ordered_limited_and_stays_in_its_namespace(&MemoryEngine::default());
    }

    #[test]
    fn increment_reads_an_integer_as_rust_parses_it() {
        conformance::increment_reads_an_integer_as_rust_parses_it(&MemoryEngine::default());
    }

    #[test]
    fn a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once() {
        conformance::a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once(&MemoryEngine::default());
    }

    #[test]
    fn list_by_prefix_takes_the_prefix_literally_in_byte_order() {
        conformance::list_by_prefix_takes_the_prefix_literally_in_byte_order(&MemoryEngine::default());
    }

    #[test]
    fn usage_counts_the_live_keys_and_their_bytes() {
        conformance::usage_counts_the_live_keys_and_their_bytes(&MemoryEngine::default());
    }

    #[test]
    fn quotas_refuse_writes_past_the_limits_of_each_namespace() {
        conformance::quotas_refuse_writes_past_the_limits_of_each_namespace(std::sync::Arc::new(MemoryEngine::default()));
    }
}
