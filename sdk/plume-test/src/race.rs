//! Racing calls: what two clients pushing at the same instant do to the
//! key-value store.
//!
//! On a server, two channels' `handle_in` calls run at once on two workers:
//! both may read a key before either writes it, and then the second
//! compare-and-swap fails and its plugin retries. The harness runs calls
//! one after another on one thread, so on its own it never shows that
//! interleaving, and a read-then-write that loses updates passes its tests.
//!
//! [`Harness::race`](crate::Harness::race) makes the interleaving happen,
//! every time: while a race runs, the [`Referee`] in front of the app's
//! store gives each call's *first* read of a key the key as it was when the
//! race began, as if every racing call had read before any of them wrote.
//! Writes go to the real store, so a compare-and-swap against that version
//! fails exactly as on a server (and is counted), the plugin's retry reads
//! the current value, and a plain `set` overwrites what the others wrote.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use plume::kv::{Entry, KvEngine, KvError, Usage};

/// A key of one namespace.
type Key = (String, String);

/// The store as racing calls see it.
pub(crate) struct Referee {
    inner: Arc<dyn KvEngine>,
    race: Mutex<Race>,
}

#[derive(Default)]
struct Race {
    running: bool,
    /// Each key touched during the race as it was when the race began
    /// (taken before the first write to it).
    before: HashMap<Key, Option<Entry>>,
    /// The keys the current call has read.
    read: HashSet<Key>,
    /// Compare-and-swaps that found another version than expected.
    conflicts: u64,
}

impl Referee {
    pub(crate) fn new(inner: Arc<dyn KvEngine>) -> Referee {
        Referee {
            inner,
            race: Mutex::new(Race::default()),
        }
    }

    fn race(&self) -> MutexGuard<'_, Race> {
        self.race.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Start a race: nothing read yet, no conflict.
    pub(crate) fn begin(&self) {
        *self.race() = Race {
            running: true,
            ..Race::default()
        };
    }

    /// The next racing call starts: its first reads see the race's start.
    pub(crate) fn next_call(&self) {
        self.race().read.clear();
    }

    /// End the race; returns how many compare-and-swaps conflicted.
    pub(crate) fn end(&self) -> u64 {
        let mut race = self.race();
        let conflicts = race.conflicts;
        *race = Race::default();
        conflicts
    }

    /// Remember `key` as the race found it, before anything changes it.
    fn keep(&self, race: &mut Race, key: &Key) -> Result<(), KvError> {
        if race.running && !race.before.contains_key(key) {
            let entry = self.inner.get(&key.0, &key.1)?;
            race.before.insert(key.clone(), entry);
        }
        Ok(())
    }

    /// Before a write to `key`: remember it as the race found it, and let
    /// the writing call read its own write from now on.
    fn writing(&self, ns: &str, k: &str) -> Result<MutexGuard<'_, Race>, KvError> {
        let mut race = self.race();
        let key = key(ns, k);
        self.keep(&mut race, &key)?;
        if race.running {
            race.read.insert(key);
        }
        Ok(race)
    }
}

fn key(ns: &str, key: &str) -> Key {
    (ns.to_owned(), key.to_owned())
}

impl KvEngine for Referee {
    fn get(&self, ns: &str, k: &str) -> Result<Option<Entry>, KvError> {
        let mut race = self.race();
        let key = key(ns, k);
        if race.running && race.read.insert(key.clone()) {
            self.keep(&mut race, &key)?;
            return Ok(race.before.get(&key).cloned().flatten());
        }
        drop(race);
        self.inner.get(ns, k)
    }

    fn set(&self, ns: &str, k: &str, value: String, ttl: Option<Duration>) -> Result<u64, KvError> {
        let _race = self.writing(ns, k)?;
        self.inner.set(ns, k, value, ttl)
    }

    fn delete(&self, ns: &str, k: &str) -> Result<bool, KvError> {
        let _race = self.writing(ns, k)?;
        self.inner.delete(ns, k)
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        k: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        let mut race = self.writing(ns, k)?;
        let written = self.inner.compare_and_swap(ns, k, expected, value, ttl)?;
        if written.is_none() && race.running {
            race.conflicts += 1;
        }
        Ok(written)
    }

    fn increment(&self, ns: &str, k: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        let _race = self.writing(ns, k)?;
        self.inner.increment(ns, k, delta, ttl)
    }

    /// Listing reads the current store: a race is about single keys.
    fn list_by_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, KvError> {
        self.inner.list_by_prefix(ns, prefix, limit)
    }

    fn sweep(&self) -> usize {
        self.inner.sweep()
    }

    fn usage(&self, ns: &str) -> Result<Usage, KvError> {
        self.inner.usage(ns)
    }
}
