//! The in-memory engine: a sorted map per namespace behind one lock.
//!
//! Expired keys are invisible at once and removed lazily: by
//! [`MemoryEngine::sweep`], which the server runs periodically, and by a
//! namespace's [`usage`](KvEngine::usage), which the quota check asks for
//! before a write that adds a key. Each namespace keeps its key and byte
//! counts as it is written and an index of its keys by expiry, so both cost
//! the keys that expired, not the keys the namespace holds.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::monotonic_ms;

use parking_lot::Mutex;

use super::{Entry, KvEngine, KvError, Usage};

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

/// What a stored key counts against its namespace's byte quota.
fn size(key: &str, stored: &Stored) -> u64 {
    (key.len() + stored.value.len()) as u64
}

/// One namespace: its keys, the keys that expire by when they do, and the
/// counts of every stored key, expired or not (a purge removes the expired
/// ones before the counts are read).
#[derive(Default)]
struct Namespace {
    entries: BTreeMap<String, Stored>,
    expiries: BTreeSet<(u64, String)>,
    keys: u64,
    bytes: u64,
}

impl Namespace {
    fn current(&self, key: &str, now: u64) -> Option<&Stored> {
        self.entries.get(key).filter(|stored| stored.live(now))
    }

    fn insert(&mut self, key: &str, stored: Stored) {
        let (bytes, expires_at) = (size(key, &stored), stored.expires_at);
        match self.entries.get_mut(key) {
            Some(slot) => {
                let old = std::mem::replace(slot, stored);
                self.bytes -= size(key, &old);
                if let Some(at) = old.expires_at {
                    self.expiries.remove(&(at, key.to_owned()));
                }
            }
            None => {
                self.entries.insert(key.to_owned(), stored);
                self.keys += 1;
            }
        }
        self.bytes += bytes;
        if let Some(at) = expires_at {
            self.expiries.insert((at, key.to_owned()));
        }
    }

    /// Remove the key, expired or not, with its counts and expiry.
    fn remove(&mut self, key: &str) -> Option<Stored> {
        let stored = self.entries.remove(key)?;
        self.uncount(key, &stored);
        if let Some(at) = stored.expires_at {
            self.expiries.remove(&(at, key.to_owned()));
        }
        Some(stored)
    }

    /// Take a removed key out of the counts.
    fn uncount(&mut self, key: &str, stored: &Stored) {
        self.keys -= 1;
        self.bytes -= size(key, stored);
    }

    /// Remove every key that expired by `now`; returns how many.
    fn purge(&mut self, now: u64) -> usize {
        let mut removed = 0;
        while self.expiries.first().is_some_and(|(at, _)| *at <= now) {
            let Some((at, key)) = self.expiries.pop_first() else {
                break;
            };
            // Every indexed key is stored with that expiry (a write or a
            // delete of the key drops its index entry); checked all the
            // same, so that no slip can ever remove a live key.
            if let btree_map::Entry::Occupied(entry) = self.entries.entry(key)
                && entry.get().expires_at == Some(at)
            {
                let (key, stored) = entry.remove_entry();
                self.uncount(&key, &stored);
                removed += 1;
            }
        }
        removed
    }
}

#[derive(Default)]
pub struct MemoryEngine {
    namespaces: Mutex<HashMap<String, Namespace>>,
    versions: AtomicU64,
}

impl MemoryEngine {
    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn with_ns<R>(&self, ns: &str, f: impl FnOnce(&mut Namespace) -> R) -> R {
        let mut namespaces = self.namespaces.lock();
        if let Some(namespace) = namespaces.get_mut(ns) {
            return f(namespace);
        }
        f(namespaces.entry(ns.to_owned()).or_default())
    }

    fn write(&self, namespace: &mut Namespace, key: &str, value: String, ttl: Option<Duration>) -> u64 {
        let version = self.next_version();
        let stored = Stored {
            value,
            version,
            expires_at: ttl.map(|ttl| monotonic_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))),
        };
        namespace.insert(key, stored);
        version
    }

    /// Remove expired keys from every namespace.
    fn sweep_expired(&self) -> usize {
        let now = monotonic_ms();
        self.namespaces
            .lock()
            .values_mut()
            .map(|namespace| namespace.purge(now))
            .sum()
    }
}

impl KvEngine for MemoryEngine {
    fn sweep(&self) -> usize {
        self.sweep_expired()
    }

    fn usage(&self, ns: &str) -> Result<Usage, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |namespace| {
            namespace.purge(now);
            Usage {
                keys: namespace.keys,
                bytes: namespace.bytes,
            }
        }))
    }

    fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |namespace| {
            namespace.current(key, now).map(|stored| Entry {
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
        Ok(self.with_ns(ns, |namespace| self.write(namespace, key, value, ttl)))
    }

    fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        let now = monotonic_ms();
        Ok(self.with_ns(ns, |namespace| {
            namespace.remove(key).is_some_and(|stored| stored.live(now))
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
        Ok(self.with_ns(ns, |namespace| {
            let version = namespace.current(key, now).map(|stored| stored.version);
            (version == expected).then(|| self.write(namespace, key, value, ttl))
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
        self.with_ns(ns, |namespace| {
            let sum = super::incremented(namespace.current(key, now).map(|stored| stored.value.as_str()), delta)?;
            self.write(namespace, key, sum.to_string(), ttl);
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
        Ok(self.with_ns(ns, |namespace| {
            namespace
                .entries
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
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
    fn usage_matches_a_recount_after_any_mix_of_writes() {
        conformance::usage_matches_a_recount_after_any_mix_of_writes(&MemoryEngine::default(), conformance::Time::Stepped);
    }

    #[test]
    fn quotas_refuse_writes_past_the_limits_of_each_namespace() {
        conformance::quotas_refuse_writes_past_the_limits_of_each_namespace(std::sync::Arc::new(MemoryEngine::default()));
    }
}
